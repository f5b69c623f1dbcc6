// Helpers for the reliability suites (test/chaos): looking at storage behind the API's back (the S3 server
// directly, fauxqs's files), waiting for requests seen by the S3 fault proxy, and hashing images.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { paths } from '../../cli/agent/context.ts';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import type { FaultProxy, ProxyRecord } from '../../local/s3/fault-proxy.ts';
import { chunkKey } from '../../protocol/chunk-key.ts';
import { type Manifest, parseManifest } from '../../protocol/manifest.ts';
import type { TestCloud } from './local-cloud.ts';

export const bucketOf = (cacheNodeId: string) => LOCAL_NAMES.cacheBucket(cacheNodeId);

/** A client straight to the S3 server (never through the fault proxy): what is really stored. */
export function directS3(t: TestCloud): S3Client {
  return t.cloud.root.clients.s3('us-east-1');
}

export async function listChunkKeys(s3: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: 'chunks/', ContinuationToken: token }),
    );
    for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = out.NextContinuationToken;
  } while (token);
  return keys;
}

/** Where fauxqs keeps a chunk's bytes: `<data dir>/s3/s3/buckets/<bucket>/objects/<key>.data`. */
export function chunkFile(t: TestCloud, cacheNodeId: string, sha256: string): string {
  return join(t.dataDir, 's3', 's3', 'buckets', bucketOf(cacheNodeId), 'objects', `${chunkKey(sha256)}.data`);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer);
  return hash.digest('hex');
}

/** The manifest a migration's source agent cached (its chunk list, as the API has it). */
export async function agentManifest(t: TestCloud, sourceDc: string, migrationId: string): Promise<Manifest> {
  const file = paths(t.cloud.dataCenterDir(sourceDc)).manifest(migrationId);
  const cached = JSON.parse(await readFile(file, 'utf8')) as { manifest: unknown };
  const parsed = parseManifest(JSON.stringify(cached.manifest));
  if (!parsed.ok) throw new Error(`cached manifest of ${migrationId} does not parse: ${parsed.error}`);
  return parsed.manifest;
}

/** A chunk request: a GET or a PUT (not a server-side copy) of a chunk key in a cache node's bucket. */
export const chunkRequest =
  (method: 'GET' | 'PUT' | 'HEAD', cacheNodeId: string) =>
  (r: ProxyRecord): boolean =>
    r.method === method && !r.copy && r.bucket === bucketOf(cacheNodeId) && r.key.startsWith('chunks/');

/** Resolves once `count` more requests matching `match` have ended at the proxy (answered or cut off). */
export function awaitSettled(
  proxy: FaultProxy,
  match: (r: ProxyRecord) => boolean,
  count: number,
  timeoutMs = 180_000,
): Promise<void> {
  let seen = 0;
  return new Promise((resolve, reject) => {
    const off = proxy.onSettled((r) => {
      if (!match(r) || ++seen < count) return;
      clearTimeout(timer);
      off();
      resolve();
    });
    const timer = setTimeout(() => {
      off();
      reject(new Error(`only ${seen} of ${count} awaited S3 requests within ${timeoutMs} ms`));
    }, timeoutMs);
  });
}

/** How often each key appears among the records. */
export function countByKey(records: readonly ProxyRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
  return counts;
}

/** Polls a condition (for state only visible by asking: files, API fields) until it holds. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 120_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The chunks an agent's journal lists as done for a migration (none when it has no journal). */
export async function journalEntries(
  t: TestCloud,
  dc: string,
  migrationId: string,
  kind: 'upload' | 'download',
): Promise<string[]> {
  const text = await readFile(paths(t.cloud.dataCenterDir(dc)).journal(migrationId, kind), 'utf8').catch(
    () => '',
  );
  return text.split('\n').filter(Boolean);
}
