// Everything the system stores, read straight from DynamoDB Local (Scan) and the S3 server (ListObjectsV2), so a
// test can prove that a rejected request wrote nothing.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListBucketsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { TABLE_DEFINITIONS } from '../../../lambdas/aws/tables.ts';
import type { TestCloud } from '../../support/local-cloud.ts';

export interface Snapshot {
  /** `table/key` → the item as canonical JSON. */
  readonly items: Map<string, string>;
}

export interface SnapshotOptions {
  /** Drops an item (e.g. one a concurrent workflow step may write) by its `table/key` name. */
  readonly skip?: (name: string) => boolean;
  /** Attributes that legitimately change on reads, e.g. a data center's `agent` (seenAt on polls). */
  readonly ignoreAttributes?: Readonly<Record<string, readonly string[]>>;
}

const canonical = (v: unknown): unknown =>
  v instanceof Set
    ? [...v].map(String).sort()
    : Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([k, x]) => [k, canonical(x)]),
          )
        : v;

export function snapshotter(t: TestCloud, defaults: SnapshotOptions = {}) {
  const region = 'ap-northeast-1';
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: t.cloud.endpoints.dynamodb, region, credentials }),
  );
  const s3 = new S3Client({ endpoint: t.cloud.endpoints.s3, region, credentials, forcePathStyle: true });

  async function take(options: SnapshotOptions = {}): Promise<Snapshot> {
    const skip = options.skip ?? defaults.skip ?? (() => false);
    const ignore = { ...defaults.ignoreAttributes, ...options.ignoreAttributes };
    const items = new Map<string, string>();
    for (const def of TABLE_DEFINITIONS) {
      const keys = [def.partitionKey.name, ...(def.sortKey ? [def.sortKey.name] : [])];
      let start: Record<string, unknown> | undefined;
      do {
        const out = await doc.send(
          new ScanCommand({ TableName: def.id, ExclusiveStartKey: start, ConsistentRead: true }),
        );
        for (const item of out.Items ?? []) {
          const name = `${def.id}/${keys.map((k) => String(item[k])).join('/')}`;
          if (skip(name)) continue;
          const kept = { ...item };
          for (const a of ignore[def.id] ?? []) delete kept[a];
          items.set(name, JSON.stringify(canonical(kept)));
        }
        start = out.LastEvaluatedKey;
      } while (start);
    }
    const buckets = (await s3.send(new ListBucketsCommand({}))).Buckets ?? [];
    for (const { Name: bucket } of buckets) {
      let token: string | undefined;
      do {
        const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        for (const o of out.Contents ?? []) {
          const name = `s3:${bucket}/${o.Key}`;
          if (!skip(name)) items.set(name, JSON.stringify({ etag: o.ETag, size: o.Size }));
        }
        token = out.NextContinuationToken;
      } while (token);
    }
    return { items };
  }

  /** The differences between two snapshots, one line each: empty when nothing changed. */
  function diff(before: Snapshot, after: Snapshot): string[] {
    const out: string[] = [];
    for (const [name, value] of after.items) {
      const was = before.items.get(name);
      if (was === undefined) out.push(`added ${name}: ${value.slice(0, 300)}`);
      else if (was !== value)
        out.push(`changed ${name}:\n  was ${was.slice(0, 600)}\n  now ${value.slice(0, 600)}`);
    }
    for (const name of before.items.keys()) if (!after.items.has(name)) out.push(`removed ${name}`);
    return out;
  }

  const close = () => {
    doc.destroy();
    s3.destroy();
  };
  return { take, diff, close };
}
