// The local cloud as the benchmarks use it: in this process on free ports, one agent process per data center,
// state in a scratch directory that is deleted afterwards, the log kept in a file for post-mortems.
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { ApiClient } from '../../cli/client.ts';
import { type LocalCloud, type LocalPorts, startLocalCloud } from '../../local/cloud.ts';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import { loadTopology, type Topology } from '../../protocol/topology.ts';

export const topology: Topology = loadTopology(fileURLToPath(new URL('../../cdk.json', import.meta.url)));

/** What the workflow's copy task reported, per migration: server-side copies made and skipped (already there). */
export interface CopyTally {
  copied: number;
  skipped: number;
}

export interface BenchCloud {
  readonly cloud: LocalCloud;
  /** Copy task results by migration id (the copy-batch handler, wrapped). */
  readonly copies: Map<string, CopyTally>;
  readonly dataDir: string;
  readonly admin: ApiClient;
  readonly s3: S3Client;
  readonly startupMs: number;
  /** The ports it listens on (a replacement cloud in this process must reuse them). */
  readonly ports: LocalPorts;
  /** Bucket of a cache node. */
  bucket(cacheNodeId: string): string;
  /** Cache node a data center uses (its home node, else the nearest). */
  cacheNodeOf(dataCenterId: string): string;
  imagePath(dataCenterId: string, imageId: string): string;
  /** Sum of object sizes under a prefix of a bucket. */
  bucketBytes(bucket: string, prefix?: string): Promise<{ objects: number; bytes: number }>;
  /** Deletes every object under a prefix (the server keeps bodies in files). */
  emptyPrefix(bucket: string, prefix: string): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * Starts the cloud on free ports, or on `ports` to replace an earlier one in this process: the in-process Lambda
 * code keeps its SDK clients (and their endpoints) for the life of the process, as on Lambda.
 */
export async function startBenchCloud(
  scratch: string,
  concurrency: number,
  ports: LocalPorts = { api: 0, edge: 0, stepFunctions: 0, s3: 0, dynamodb: 0 },
): Promise<BenchCloud> {
  const dataDir = await mkdtemp(join(scratch, 'cloud-'));
  const logFile = join(dataDir, 'cloud.log');
  const started = performance.now();
  const copies = new Map<string, CopyTally>();
  const cloud = await startLocalCloud({
    dataDir,
    topology,
    ports,
    agents: { concurrency },
    // Counts the copies each batch really made: a batch skips a chunk another migration copied meanwhile.
    wrapFunction: (name, handler) =>
      name !== 'copy-batch'
        ? handler
        : async (event: never) => {
            const out = (await handler(event)) as { copied?: number; skipped?: number } | undefined;
            const id = (event as { migrationId?: string }).migrationId ?? '?';
            const tally = copies.get(id) ?? { copied: 0, skipped: 0 };
            tally.copied += out?.copied ?? 0;
            tally.skipped += out?.skipped ?? 0;
            copies.set(id, tally);
            return out;
          },
    log: (component, line) =>
      appendFileSync(logFile, `${new Date().toISOString()} ${component.padEnd(12)} ${line}\n`),
  });
  const admin = new ApiClient(cloud.endpoints.api, cloud.tokens.adminToken, { timeoutMs: 120_000 });
  // Agents are up once each listens for work; the first migration would otherwise pay their start-up.
  try {
    await waitForAgents(dataDir);
  } catch (err) {
    await cloud.stop().catch(() => {});
    throw err;
  }
  const startupMs = performance.now() - started;
  const s3 = new S3Client({
    endpoint: cloud.endpoints.s3,
    region: topology.homeRegion,
    forcePathStyle: true,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const nodes = await nearestNodes();
  const port = (url: string) => Number(new URL(url).port);
  return {
    cloud,
    copies,
    ports: {
      api: port(cloud.endpoints.api),
      edge: port(cloud.endpoints.edge),
      stepFunctions: port(cloud.endpoints.stepFunctions),
      s3: port(cloud.endpoints.s3),
      dynamodb: port(cloud.endpoints.dynamodb),
    },
    dataDir,
    admin,
    s3,
    startupMs,
    bucket: (id) => LOCAL_NAMES.cacheBucket(id),
    cacheNodeOf: (dc) => {
      const node = nodes.get(dc);
      if (!node) throw new Error(`unknown data center ${dc}`);
      return node;
    },
    imagePath: (dc, imageId) => join(cloud.dataCenterDir(dc), 'images', imageId),
    async bucketBytes(bucket, prefix) {
      let objects = 0;
      let bytes = 0;
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          objects++;
          bytes += o.Size ?? 0;
        }
        token = page.NextContinuationToken;
      } while (token);
      return { objects, bytes };
    },
    async emptyPrefix(bucket, prefix) {
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key as string }));
        if (keys.length > 0)
          await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
        token = page.NextContinuationToken;
      } while (token);
    },
    async dispose() {
      await cloud.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function waitForAgents(dataDir: string): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const log = await readFile(join(dataDir, 'cloud.log'), 'utf8').catch(() => '');
    // An agent says it listens on its work queue, or that it has none and asks the API (cli/agent/agent.ts).
    const ready = topology.dataCenters.filter((dc) =>
      new RegExp(`agent ${dc.id}\\s.*(listening on the work queue|no work queue)`).test(log),
    );
    if (ready.length === topology.dataCenters.length) return;
    if (Date.now() > deadline) throw new Error('agents did not start within 60 s (see cloud.log)');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The cache node each data center resolves to, as the registry reports it. */
async function nearestNodes(): Promise<Map<string, string>> {
  const { greatCircleKm } = await import('../../lambdas/domain/geo.ts');
  const out = new Map<string, string>();
  for (const dc of topology.dataCenters) {
    const node =
      dc.homeCacheNode ??
      [...topology.cacheNodes].sort(
        (a, b) => greatCircleKm(dc.location, a.location) - greatCircleKm(dc.location, b.location),
      )[0]?.id;
    if (node) out.set(dc.id, node);
  }
  return out;
}
