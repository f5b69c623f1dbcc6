// The CMN content index (table ContentIndex: pk cacheNodeId, sk sha256): which cache node holds which verified
// chunk. Lookups are batched at DynamoDB's limit of 100 keys per call.
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
} from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../domain/concurrency.ts';

export const BATCH_GET_LIMIT = 100;
/** Claims live under this pseudo cache node id: a chunk some migration is uploading right now. */
const CLAIMS = '#upload-claims';
/** A claim outlives any sane upload; a failed uploader's claims are also taken over at once (see check-shared). */
export const CLAIM_TTL_SECONDS = 6 * 3600;
const BATCH_WRITE_LIMIT = 25;

export interface IndexedChunk {
  readonly sha256: string;
  readonly length: number;
}

export class ContentIndex {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** For each digest, the subset of `cacheNodeIds` that holds it. Digests held nowhere are absent. */
  async holders(
    digests: readonly string[],
    cacheNodeIds: readonly string[],
  ): Promise<Map<string, Set<string>>> {
    const keys = cacheNodeIds.flatMap((cacheNodeId) => digests.map((sha256) => ({ cacheNodeId, sha256 })));
    const batches: (typeof keys)[] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_LIMIT) batches.push(keys.slice(i, i + BATCH_GET_LIMIT));
    const result = new Map<string, Set<string>>();
    await mapLimit(batches, 8, async (batch) => {
      let pending: { cacheNodeId: string; sha256: string }[] = batch;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed keys from the content index');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: {
              [this.table]: {
                Keys: pending,
                ProjectionExpression: 'cacheNodeId, sha256',
                ConsistentRead: true,
              },
            },
          }),
        );
        for (const item of (out.Responses?.[this.table] ?? []) as { cacheNodeId: string; sha256: string }[]) {
          const set = result.get(item.sha256) ?? new Set<string>();
          set.add(item.cacheNodeId);
          result.set(item.sha256, set);
        }
        pending = (out.UnprocessedKeys?.[this.table]?.Keys ?? []) as typeof pending;
      }
    });
    return result;
  }

  /** Records chunks as present and verified at a cache node (idempotent). */
  async record(cacheNodeId: string, chunks: readonly IndexedChunk[]): Promise<void> {
    const storedAt = this.now().toISOString();
    const batches: IndexedChunk[][] = [];
    for (let i = 0; i < chunks.length; i += BATCH_WRITE_LIMIT)
      batches.push(chunks.slice(i, i + BATCH_WRITE_LIMIT));
    await mapLimit(batches, 4, async (batch) => {
      let pending: unknown[] = batch.map((c) => ({
        PutRequest: { Item: { cacheNodeId, sha256: c.sha256, length: c.length, storedAt } },
      }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed writes to the content index');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const out = await this.doc.send(
          new BatchWriteCommand({ RequestItems: { [this.table]: pending as never } }),
        );
        pending = out.UnprocessedItems?.[this.table] ?? [];
      }
    });
  }

  /** Forgets a chunk at a cache node (its copy there turned out corrupt and was deleted); idempotent. */
  async remove(cacheNodeId: string, sha256: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.table, Key: { cacheNodeId, sha256 } }));
  }

  /**
   * Claims the upload of each chunk for a migration, so that migrations sharing content (clones of one base, a
   * batch) upload each shared chunk once: one conditional put per chunk. Returns the chunks now claimed by this
   * migration and, for the others, which migration holds the claim.
   */
  async claimUploads(
    digests: readonly string[],
    migrationId: string,
    takeOverFrom: ReadonlySet<string> = new Set(),
  ): Promise<{ mine: Set<string>; others: Map<string, string> }> {
    const now = Math.floor(this.now().getTime() / 1000);
    const mine = new Set<string>();
    const others = new Map<string, string>();
    await mapLimit(digests, 16, async (sha256) => {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { cacheNodeId: CLAIMS, sha256, migrationId, expiresAt: now + CLAIM_TTL_SECONDS },
            ConditionExpression:
              'attribute_not_exists(sha256) OR migrationId = :me OR expiresAt < :now' +
              (takeOverFrom.size > 0
                ? ' OR migrationId IN (:t0' +
                  [...takeOverFrom]
                    .slice(1)
                    .map((_, i) => `, :t${i + 1}`)
                    .join('') +
                  ')'
                : ''),
            ExpressionAttributeValues: {
              ':me': migrationId,
              ':now': now,
              ...Object.fromEntries([...takeOverFrom].map((m, i) => [`:t${i}`, m])),
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        );
        mine.add(sha256);
      } catch (err) {
        if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
        // lib-dynamodb leaves the old item marshalled on this error.
        const old = (err as { Item?: { migrationId?: { S?: string } | string } }).Item?.migrationId;
        others.set(sha256, (typeof old === 'string' ? old : old?.S) ?? 'unknown');
      }
    });
    return { mine, others };
  }

  /** Who holds the upload claims of these chunks (expired claims are not returned). */
  async claimHolders(digests: readonly string[]): Promise<Map<string, string>> {
    const now = Math.floor(this.now().getTime() / 1000);
    const out = new Map<string, string>();
    const batches: string[][] = [];
    for (let i = 0; i < digests.length; i += BATCH_GET_LIMIT)
      batches.push(digests.slice(i, i + BATCH_GET_LIMIT));
    await mapLimit(batches, 8, async (batch) => {
      let pending = batch.map((sha256) => ({ cacheNodeId: CLAIMS, sha256 }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed keys for upload claims');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const res = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true } } }),
        );
        for (const item of (res.Responses?.[this.table] ?? []) as {
          sha256: string;
          migrationId: string;
          expiresAt: number;
        }[]) {
          if (item.expiresAt >= now) out.set(item.sha256, item.migrationId);
        }
        pending = (res.UnprocessedKeys?.[this.table]?.Keys ?? []) as typeof pending;
      }
    });
    return out;
  }
}
