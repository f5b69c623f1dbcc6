// Helpers for the reliability and end-to-end suites (test/chaos, test/e2e): looking at storage behind the API's back (the S3 server
// directly, fauxqs's files), waiting for requests seen by the S3 fault proxy, and hashing images. Chunks are stored
// in packs (protocol/pack.ts) under chunks/p/; a chunk stored alone under chunks/<hh>/ is the format before packs.
// What a bucket holds is read from the packs themselves (their tables of contents), not from the content index.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { paths } from '../../cli/agent/context.ts';
import { type FetchUnit, planFetches } from '../../cli/agent/fetch-chunks.ts';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import type { FaultProxy, ProxyRecord } from '../../local/s3/fault-proxy.ts';
import { type DownloadPlan, getDownloadPlan, type PlanChunk } from '../../protocol/api/agent.ts';
import {
  chunkKey,
  objectKeyOf,
  PACK_KEY_PREFIX,
  packKey,
  parseChunkKey,
  parsePackKey,
} from '../../protocol/chunk-key.ts';
import { isZeroChunk, type Manifest, parseManifest } from '../../protocol/manifest.ts';
import { type PackEntry, readPackToc } from '../../protocol/pack.ts';
import type { TestCloud } from './local-cloud.ts';

export const bucketOf = (cacheNodeId: string) => LOCAL_NAMES.cacheBucket(cacheNodeId);

/** A client straight to the S3 server (never through the fault proxy): what is really stored. */
export function directS3(t: TestCloud): S3Client {
  return t.cloud.root.clients.s3('us-east-1');
}

/** Every key under chunks/ in a bucket: packs (chunks/p/…) and chunks stored alone (chunks/<hh>/…). */
export async function listChunkKeys(s3: S3Client, bucket: string, prefix = 'chunks/'): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = out.NextContinuationToken;
  } while (token);
  return keys;
}

/** The packs a cache node's bucket holds (their digests), in key order. */
export async function listPacks(t: TestCloud, cacheNodeId: string): Promise<string[]> {
  const keys = await listChunkKeys(directS3(t), bucketOf(cacheNodeId), PACK_KEY_PREFIX);
  return keys.flatMap((k) => parsePackKey(k) ?? []);
}

/** Where fauxqs keeps an object's bytes: `<data dir>/s3/s3/buckets/<bucket>/objects/<key>.data`. */
export function objectFile(t: TestCloud, cacheNodeId: string, key: string): string {
  return join(t.dataDir, 's3', 's3', 'buckets', bucketOf(cacheNodeId), 'objects', `${key}.data`);
}

/** The file of a chunk stored alone, as before packs (`chunks/<hh>/<sha256>`). */
export function chunkFile(t: TestCloud, cacheNodeId: string, sha256: string): string {
  return objectFile(t, cacheNodeId, chunkKey(sha256));
}

/** The file of a pack in a cache node's bucket. */
export function packFile(t: TestCloud, cacheNodeId: string, pack: string): string {
  return objectFile(t, cacheNodeId, packKey(pack));
}

/**
 * The entries of a pack as its own table of contents lists them, read from the end of the object straight from the
 * S3 server; undefined when the pack is not there. Throws for an object that is not a well-formed pack.
 */
export async function packEntries(
  t: TestCloud,
  cacheNodeId: string,
  pack: string,
): Promise<PackEntry[] | undefined> {
  let want = 64 * 1024;
  for (;;) {
    let bytes: Uint8Array;
    let size: number;
    try {
      const out = await directS3(t).send(
        new GetObjectCommand({ Bucket: bucketOf(cacheNodeId), Key: packKey(pack), Range: `bytes=-${want}` }),
      );
      bytes = (await out.Body?.transformToByteArray()) ?? new Uint8Array();
      size = Number(/\/(\d+)$/.exec(out.ContentRange ?? '')?.[1] ?? bytes.length);
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey' || (err as Error).name === 'NotFound') return undefined;
      throw err;
    }
    const toc = readPackToc(pack, bytes, size);
    if ('entries' in toc) return toc.entries;
    want = toc.need;
  }
}

/** Every pack a cache node's bucket holds, with its entries. */
export async function storedPacks(t: TestCloud, cacheNodeId: string): Promise<Map<string, PackEntry[]>> {
  const out = new Map<string, PackEntry[]>();
  for (const pack of await listPacks(t, cacheNodeId)) {
    const entries = await packEntries(t, cacheNodeId, pack);
    if (entries) out.set(pack, entries);
  }
  return out;
}

/** A chunk as a bucket stores it: in a pack (its entry there), or alone (before packs). */
export interface StoredChunk {
  readonly key: string;
  /** The object's file in fauxqs. */
  readonly file: string;
  /** Set when the chunk is in a pack: the pack's digest and the chunk's entry in it. */
  readonly pack?: string;
  readonly entry?: PackEntry;
}

/**
 * Every place a cache node's bucket stores a chunk, found by reading the bucket (the packs' tables of contents and
 * the keys of chunks stored alone), whatever the content index says.
 */
export async function findStoredChunk(
  t: TestCloud,
  cacheNodeId: string,
  sha256: string,
): Promise<StoredChunk[]> {
  const found: StoredChunk[] = [];
  for (const [pack, entries] of await storedPacks(t, cacheNodeId)) {
    const entry = entries.find((e) => e.sha256 === sha256);
    if (entry) found.push({ key: packKey(pack), file: packFile(t, cacheNodeId, pack), pack, entry });
  }
  const alone = await listChunkKeys(directS3(t), bucketOf(cacheNodeId), chunkKey(sha256));
  if (alone.includes(chunkKey(sha256)))
    found.push({ key: chunkKey(sha256), file: chunkFile(t, cacheNodeId, sha256) });
  return found;
}

/** The one pack of a cache node's bucket that holds a chunk (throws when none or several do). */
export async function packHolding(
  t: TestCloud,
  cacheNodeId: string,
  sha256: string,
): Promise<StoredChunk & { readonly pack: string; readonly entry: PackEntry }> {
  const found = await findStoredChunk(t, cacheNodeId, sha256);
  const [only] = found;
  if (found.length !== 1 || only?.pack === undefined || only.entry === undefined)
    throw new Error(
      `cache node ${cacheNodeId} stores chunk ${sha256} ${found.length} times: ${JSON.stringify(found)}`,
    );
  return { ...only, pack: only.pack, entry: only.entry };
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

/**
 * A chunk request: a GET or a PUT (not a server-side copy) of an object under chunks/ in a cache node's bucket (a
 * pack, or a chunk stored alone). One request carries many chunks when it is a pack's: see isPackRequest.
 */
export const chunkRequest =
  (method: 'GET' | 'PUT' | 'HEAD', cacheNodeId: string) =>
  (r: ProxyRecord): boolean =>
    r.method === method && !r.copy && r.bucket === bucketOf(cacheNodeId) && r.key.startsWith('chunks/');

/** A request of a pack's key (chunks/p/…). */
export const isPackRequest = (r: ProxyRecord): boolean => parsePackKey(r.key) !== undefined;

/** One chunk that a stored PUT carried: its digest as `key`, the request's time, and the pack it went up in. */
export interface ChunkRecord {
  readonly key: string;
  readonly at: number;
  /** The pack's digest; undefined for a chunk stored alone. */
  readonly pack: string | undefined;
  readonly record: ProxyRecord;
}

/**
 * The chunks stored by PUTs to a cache node (the records of requests answered 200, server-side copies left out),
 * one record per chunk, in request order: a pack's chunks are read from its table of contents in the bucket (so the
 * pack must still be there), a chunk stored alone is its key's digest.
 */
export async function chunksStored(
  t: TestCloud,
  cacheNodeId: string,
  records: readonly ProxyRecord[],
): Promise<ChunkRecord[]> {
  const tocs = new Map<string, string[]>();
  const out: ChunkRecord[] = [];
  for (const r of records) {
    if (!chunkRequest('PUT', cacheNodeId)(r) || r.status !== 200) continue;
    const pack = parsePackKey(r.key);
    if (pack === undefined) {
      const sha256 = parseChunkKey(r.key);
      if (sha256) out.push({ key: sha256, at: r.at, pack: undefined, record: r });
      continue;
    }
    let digests = tocs.get(pack);
    if (!digests) {
      const entries = await packEntries(t, cacheNodeId, pack);
      if (!entries)
        throw new Error(`pack ${pack} was stored at ${cacheNodeId} and is gone: its chunks are unknown`);
      digests = entries.map((e) => e.sha256);
      tocs.set(pack, digests);
    }
    for (const sha256 of digests) out.push({ key: sha256, at: r.at, pack, record: r });
  }
  return out;
}

/** Items on a download plan page the agent asks for at once (cli/agent/destination.ts). */
export const PLAN_PAGE = 500;

/** A destination's download plan, page by page as its agent asks for it (PLAN_PAGE items a page). */
export async function downloadPlanPages(
  t: TestCloud,
  migrationId: string,
  dataCenterId: string,
): Promise<PlanChunk[][]> {
  const agent = t.agent(dataCenterId);
  const pages: PlanChunk[][] = [];
  let cursor: string | undefined;
  do {
    const { body } = await agent.call<DownloadPlan>(getDownloadPlan, {
      params: { migrationId, dataCenterId },
      query: { limit: PLAN_PAGE, ...(cursor ? { cursor } : {}) },
    });
    pages.push(body.items);
    cursor = body.nextCursor;
  } while (cursor);
  return pages;
}

/**
 * The GETs a destination agent makes for the chunks of a plan it has not done (`done`: plan indices in its journal)
 * when nothing goes wrong: per page, the chunks to fetch grouped as cli/agent/fetch-chunks.ts planFetches groups
 * them (neighbours in a pack share a range GET). Each unit is one GET at the cache node's bucket.
 */
export function fetchUnits(pages: readonly (readonly PlanChunk[])[], done: ReadonlySet<number>): FetchUnit[] {
  return pages.flatMap((items) => planFetches(items.filter((c) => !c.zero && !done.has(c.index))));
}

/**
 * The fetch units (GETs) a destination agent makes for these chunks of an image (manifest indices; zero chunks are
 * never fetched) from cache node `cacheNodeId`, with the plan rebuilt from the content index as the API presents
 * it (pages of PLAN_PAGE, each chunk at its entry's object and range there): for when the plan can no longer be
 * asked for (the migration ended).
 */
export async function fetchUnitsFromIndex(
  t: TestCloud,
  cacheNodeId: string,
  manifest: Manifest,
  indices: Iterable<number>,
): Promise<FetchUnit[]> {
  const wanted = new Set(indices);
  const chosen = manifest.chunks.flatMap((c, index) =>
    wanted.has(index) && !isZeroChunk(c.sha256, c.length) ? [{ ...c, index }] : [],
  );
  const located = await t.cloud.root.deps.contentIndex.locate(
    cacheNodeId,
    chosen.map((c) => c.sha256),
  );
  const pages: PlanChunk[][] = [];
  for (const c of chosen) {
    const e = located.get(c.sha256);
    if (!e) throw new Error(`chunk ${c.index} (${c.sha256}) is not indexed at ${cacheNodeId}`);
    const item: PlanChunk = {
      index: c.index,
      offset: c.offset,
      length: c.length,
      sha256: c.sha256,
      zero: false,
      url: objectKeyOf(e),
      ...(e.pack === undefined
        ? {}
        : { part: { offset: e.offset ?? 0, length: e.stored ?? c.length, encoding: e.encoding ?? 'raw' } }),
    };
    const page = Math.floor(c.index / PLAN_PAGE);
    const items = pages[page] ?? [];
    items.push(item);
    pages[page] = items;
  }
  // Pages with nothing to fetch are holes in the array: flatMap skips them.
  return fetchUnits(pages, new Set());
}

/** Bytes a fetch unit moves: a run's range of its pack, or a whole chunk. */
export const unitBytes = (unit: FetchUnit): number => (unit.kind === 'run' ? unit.length : unit.chunk.length);

/** The plan indices a fetch unit carries. */
export const unitIndices = (unit: FetchUnit): number[] =>
  unit.kind === 'run' ? unit.chunks.map((c) => c.index) : [unit.chunk.index];

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

/** How often each key appears among the records (requests, or the chunks they carried). */
export function countByKey(records: readonly { readonly key: string }[]): Map<string, number> {
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
