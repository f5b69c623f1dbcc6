// Runs migrations through the API as an operator would and reads back what moved and how long each phase took,
// from the migration record, its timestamped history and the plans the workflow wrote to the control bucket.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import {
  createMigration,
  getMigration,
  type Migration,
  TERMINAL_STATUSES,
} from '../../protocol/api/migrations.ts';
import type { BenchCloud } from './cloud.ts';

export interface MigrationRun {
  readonly id: string;
  readonly status: string;
  /** From the create request to the terminal status, as the bench saw it (polling every 100 ms). */
  readonly wallMs: number;
  readonly phases: Phases;
  readonly imageBytes: number;
  readonly zeroBytes: number;
  /**
   * Bytes uploaded as they crossed the network: the packs' (compressed) bytes, `upload.wireBytesDone`, on records
   * that have it; else the chunks' bytes, `upload.bytesDone`.
   */
  readonly uploadedBytes: number;
  /** Uncompressed bytes of the chunks uploaded (`upload.bytesDone`). */
  readonly uploadedLogicalBytes: number;
  readonly cachedBytes: number;
  /** Server-side copies between cache nodes planned by the workflow (read from the control bucket). */
  readonly plannedCopyBytes: number;
  /**
   * Bytes of the copies this migration's copy tasks made (`replication.bytesCopied` on the migration): with packs,
   * the stored (compressed) bytes of the pack copies.
   */
  readonly copiedBytes: number;
  readonly copies: { readonly copied: number; readonly skipped: number };
  /** Uncompressed bytes of the chunks the destinations fetched (`legs[].bytesDownloaded`). */
  readonly downloadedBytes: number;
  /** The same as they crossed the network (`legs[].wireBytesDownloaded`, else `bytesDownloaded`). */
  readonly downloadedWireBytes: number;
  /** Upload (wire bytes) + copies between cache nodes: what crosses between cities. */
  readonly wanBytes: number;
  /** The same with the upload counted uncompressed (`upload.bytesDone` + copies). */
  readonly wanLogicalBytes: number;
  readonly record: Migration;
}

/** Milliseconds per phase, from the history's timestamps (0 when a phase was skipped). */
export interface Phases {
  /** created → awaiting-manifest: resolve, admission, agent work item. */
  readonly control: number;
  /** → manifest: the source agent picks the job up, chunks and hashes the image, sends the manifest. */
  readonly chunk: number;
  /** → cache-checked: content index lookups. */
  readonly checkCache: number;
  /** → uploaded: parallel chunk PUTs and their verification. */
  readonly upload: number;
  /** → downloading: replication planning and server-side copies. */
  readonly replicate: number;
  /** → last destination-completed: downloads, per-chunk and whole-image verification. */
  readonly download: number;
  /** → completed. */
  readonly finish: number;
}

const at = (m: Migration, event: string, last = false): number | undefined => {
  const hits = (m.history ?? []).filter((h) => h.event === event).map((h) => Date.parse(h.at));
  if (hits.length === 0) return undefined;
  return last ? Math.max(...hits) : Math.min(...hits);
};

export function phasesOf(m: Migration): Phases {
  const created = at(m, 'created') ?? Date.parse(m.createdAt);
  const marks = [
    ['control', at(m, 'awaiting-manifest')],
    ['chunk', at(m, 'manifest')],
    ['checkCache', at(m, 'cache-checked')],
    ['upload', at(m, 'uploaded')],
    ['replicate', at(m, 'downloading')],
    ['download', at(m, 'destination-completed', true)],
    ['finish', at(m, 'completed')],
  ] as const;
  const out: Record<string, number> = {};
  let prev = created;
  for (const [name, t] of marks) {
    out[name] = t === undefined ? 0 : Math.max(0, t - prev);
    if (t !== undefined) prev = t;
  }
  return out as unknown as Phases;
}

export async function createOne(
  b: BenchCloud,
  input: { imageId: string; from: string; to: readonly string[]; vmId: string },
): Promise<string> {
  const { body } = await b.admin.call<Migration>(createMigration, {
    json: {
      vmId: input.vmId,
      hostId: 'bench-host',
      imageId: input.imageId,
      sourceDataCenterId: input.from,
      destinations: input.to.map((dataCenterId) => ({ dataCenterId })),
    },
    headers: { 'idempotency-key': randomUUID() },
  });
  return body.id;
}

export async function waitFor(b: BenchCloud, id: string, timeoutMs: number): Promise<Migration> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = (await b.admin.call<Migration>(getMigration, { params: { migrationId: id } })).body;
    if (TERMINAL_STATUSES.includes(m.status)) return m;
    if (Date.now() > deadline)
      throw new Error(`migration ${id} still ${m.status} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Bytes of the server-side copies the workflow planned for the migration's latest attempt. */
async function plannedCopyBytes(b: BenchCloud, m: Migration): Promise<number> {
  const prefix = `migrations/${m.id}/a${m.attempt}/replication/`;
  const list = await b.s3.send(
    new ListObjectsV2Command({ Bucket: LOCAL_NAMES.controlBucket, Prefix: prefix }),
  );
  let bytes = 0;
  for (const o of list.Contents ?? []) {
    const out = await b.s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.controlBucket, Key: o.Key }));
    const items = JSON.parse(await (out.Body?.transformToString() ?? '[]')) as { length: number }[];
    for (const i of items) bytes += i.length;
  }
  return bytes;
}

export async function summarize(b: BenchCloud, m: Migration, wallMs: number): Promise<MigrationRun> {
  if (m.status !== 'COMPLETED') {
    throw new Error(`migration ${m.id} ended ${m.status}: ${m.error?.code ?? ''} ${m.error?.message ?? ''}`);
  }
  const planned = await plannedCopyBytes(b, m);
  const tally = b.copies.get(m.id) ?? { copied: 0, skipped: 0 };
  // Exact: the copy task counts the bytes of the copies it made on the migration (`replication.bytesCopied`).
  const copiedBytes = m.replication.bytesCopied;
  const uploaded = m.upload.wireBytesDone ?? m.upload.bytesDone;
  return {
    id: m.id,
    status: m.status,
    wallMs,
    phases: phasesOf(m),
    imageBytes: m.image?.size ?? 0,
    zeroBytes: m.image?.zeroBytes ?? 0,
    uploadedBytes: uploaded,
    uploadedLogicalBytes: m.upload.bytesDone,
    cachedBytes: m.upload.bytesCached,
    plannedCopyBytes: planned,
    copiedBytes,
    copies: { ...tally },
    downloadedBytes: m.legs.reduce((n, l) => n + l.bytesDownloaded, 0),
    downloadedWireBytes: m.legs.reduce((n, l) => n + (l.wireBytesDownloaded ?? l.bytesDownloaded), 0),
    wanBytes: uploaded + copiedBytes,
    wanLogicalBytes: m.upload.bytesDone + copiedBytes,
    record: m,
  };
}

/** One migration, start to end. */
export async function migrate(
  b: BenchCloud,
  input: { imageId: string; from: string; to: readonly string[]; vmId: string },
  timeoutMs = 30 * 60_000,
): Promise<MigrationRun> {
  const started = performance.now();
  const id = await createOne(b, input);
  const m = await waitFor(b, id, timeoutMs);
  return summarize(b, m, performance.now() - started);
}

/**
 * How a destination agent got the chunks of a migration, from its log line in the cloud's log: fetched through the
 * edge, or taken from an image it delivered before (its local index). Undefined when the line is not there.
 */
export async function destinationSources(
  b: BenchCloud,
  migrationId: string,
): Promise<{ fetched: number; local: number } | undefined> {
  const log = await readFile(join(b.dataDir, 'cloud.log'), 'utf8').catch(() => '');
  const m = new RegExp(
    `${migrationId}: download complete \\((\\d+) chunks fetched by this run(?:, (\\d+) taken from local images)?`,
  ).exec(log);
  return m ? { fetched: Number(m[1]), local: Number(m[2] ?? 0) } : undefined;
}
