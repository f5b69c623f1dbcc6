// `vmmig cache verify` against the real local cloud: a node a real migration filled is clean; chunks deleted behind
// the index, an entry whose object holds other bytes, a stored chunk no entry names, an object with the wrong bytes
// for its key, and entries the collector is deleting are each reported; --repair puts the first four right and leaves
// the collector's alone; a second verify is clean; any page size finds the same. The same with packs: a pack no
// entry names is indexed, entries naming a pack that is gone are dropped, a pack nothing needs is deleted.
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ContentIndex } from '../../lambdas/aws/content-index.ts';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { type CacheVerifyPage, verifyCacheNode } from '../../protocol/api/cache-verify.ts';
import { base64Sha256, chunkKey, objectKeyOf, packKey } from '../../protocol/chunk-key.ts';
import { type BuiltPack, encodeChunk, PackBuilder } from '../../protocol/pack.ts';
import { directS3 } from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });

/** dc-osa's cache node: the migration below copies its chunks there. */
const NODE = 'nrt';
const bucket = LOCAL_NAMES.cacheBucket(NODE);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let t: TestCloud;
let s3: S3Client;
let index: ContentIndex;

beforeAll(async () => {
  // No scheduled functions: nothing but this test touches the index meanwhile.
  t = await startTestCloud({ agents: true, policyTickMs: 0 });
  s3 = directS3(t);
  index = t.cloud.root.deps.contentIndex;
  await writeRawImage(
    join(t.cloud.dataCenterDir('dc-gz'), 'images', 'verify.img'),
    vmLikeSpec(64 << 20, 24 << 20, 'cache verify', 6),
  );
  const m = await startMigration(t.admin, { imageId: 'verify.img', from: 'dc-gz', to: ['dc-osa'] });
  const done = await waitForMigration(t.admin, m.id);
  expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
});
afterAll(() => t?.dispose());

/** Random bytes whose digest starts with `prefix` (or does not, with `not`). */
function chunkWith(test: (digest: string) => boolean): Buffer {
  for (;;) {
    const b = randomBytes(1000 + Math.floor(Math.random() * 4000));
    if (test(sha(b))) return b;
  }
}

/** Stores bytes under the key of `digest`, with the SHA-256 checksum S3 computes of the bytes. */
async function store(digest: string, bytes: Buffer): Promise<void> {
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: chunkKey(digest), Body: bytes, ChecksumAlgorithm: 'SHA256' }),
  );
}
const remove = (digest: string) =>
  s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: chunkKey(digest) }));
async function stored(digest: string, key = chunkKey(digest)): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch {
    return false;
  }
}
/** A pack of these chunks (compressed where zstd shrinks them), stored at the node unless `put` is false. */
async function packOf(chunks: readonly Buffer[], put = true): Promise<BuiltPack> {
  const builder = new PackBuilder();
  for (const raw of chunks) {
    const { stored: bytes, encoding } = await encodeChunk(raw);
    builder.add(sha(raw), raw.length, bytes, encoding);
  }
  const pack = builder.finish();
  if (put)
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: packKey(pack.sha256),
        Body: pack.bytes,
        ChecksumSHA256: base64Sha256(pack.sha256),
      }),
    );
  return pack;
}
/** Compressible bytes: a random quarter, four times. */
const compressible = (size: number) => {
  const quarter = randomBytes(size / 4);
  return Buffer.concat([quarter, quarter, quarter, quarter]);
};
async function allEntries(node: string) {
  const out: Awaited<ReturnType<ContentIndex['entries']>>['items'] = [];
  let after: string | undefined;
  do {
    const page = await index.entries(node, { limit: 1000, ...(after ? { after } : {}) });
    out.push(...page.items);
    after = page.last;
  } while (after);
  return out;
}

/** Every page of one verify, through the API. */
async function verify(node: string, repair: boolean, limit?: number): Promise<CacheVerifyPage[]> {
  const pages: CacheVerifyPage[] = [];
  let cursor: string | undefined;
  do {
    const { body } = await t.admin.call<CacheVerifyPage>(verifyCacheNode, {
      params: { cacheNodeId: node },
      json: { repair, ...(cursor ? { cursor } : {}), ...(limit ? { limit } : {}) },
    });
    pages.push(body);
    cursor = body.nextCursor;
  } while (cursor);
  return pages;
}

/** What a whole verify found, independent of how it was paged. */
function found(pages: CacheVerifyPage[]) {
  const sum = (f: (p: CacheVerifyPage) => number) => pages.reduce((n, p) => n + f(p), 0);
  return {
    entries: sum((p) => p.checked.entries),
    objects: sum((p) => p.checked.objects),
    indexedMissing: pages.flatMap((p) =>
      p.indexedMissing.map((x) => `${x.sha256} ${x.reason} ${x.repaired}`),
    ),
    unindexed: pages.flatMap((p) => p.unindexed.map((x) => `${x.sha256} ${x.action} ${x.repaired}`)),
    deleting: sum((p) => p.deleting),
    dropped: sum((p) => p.repaired.dropped),
    indexed: sum((p) => p.repaired.indexed),
    deleted: sum((p) => p.repaired.deleted),
  };
}

describe('cache verify', () => {
  /** Index entries and stored objects (packs, or chunks stored alone) the migration left at the node. */
  let migrated: number;
  let migratedObjects: number;
  /** The damage, by kind. */
  const d = {} as {
    missing: string[];
    mismatch: string;
    strayValid: string;
    strayCorrupt: string;
    deletingStored: string;
    deletingGone: string;
    total: number;
  };

  it('finds a cache node a real migration filled clean, the index and the bucket alike', async () => {
    const pages = await verify(NODE, false);
    const f = found(pages);
    migrated = f.entries;
    expect(migrated).toBeGreaterThanOrEqual(4);
    migratedObjects = new Set((await allEntries(NODE)).map(objectKeyOf)).size;
    expect(f).toMatchObject({ objects: migratedObjects, indexedMissing: [], unindexed: [], deleting: 0 });
    expect(pages.at(-1)?.nextCursor).toBeUndefined();
    const cli = await t.vmmig(['cache', 'verify', NODE, '--no-json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(
      new RegExp(`${NODE}: checked ${migrated} index entries and ${migratedObjects} stored chunks?`),
    );
    expect(cli.stdout).toContain('clean: the index and the bucket agree');
  });

  it('reports each kind of disagreement, and changes nothing without --repair', async () => {
    // One object the migration stored goes: every entry naming it (a pack's chunks, or the chunk stored alone).
    const migratedEntries = await allEntries(NODE);
    const victim = objectKeyOf(migratedEntries[1] as (typeof migratedEntries)[number]);
    const lostWithIt = migratedEntries.filter((e) => objectKeyOf(e) === victim).map((e) => e.sha256);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: victim }));
    // More entries than the migration made, so that small pages have something to page over.
    const extra = Array.from({ length: 16 }, () =>
      chunkWith((s) => !s.startsWith('ff') && !s.startsWith('00')),
    );
    // The lowest and the highest digest of all are entries whose chunk is gone: the first page and the part of the
    // last page after the last stored object must check them.
    const lowest = chunkWith((s) => s.startsWith('00'));
    const highest = chunkWith((s) => s.startsWith('ff'));
    for (const b of [...extra, lowest, highest]) await store(sha(b), b);
    await index.record(
      NODE,
      [...extra, lowest, highest].map((b) => ({ sha256: sha(b), length: b.length })),
    );
    d.missing = [sha(lowest), sha(highest), sha(extra[3] as Buffer), ...lostWithIt];
    for (const digest of d.missing.slice(0, 3)) await remove(digest);

    // An entry whose object holds other bytes under its key.
    const meant = chunkWith(() => true);
    d.mismatch = sha(meant);
    await store(
      d.mismatch,
      chunkWith(() => true),
    );
    await index.record(NODE, [{ sha256: d.mismatch, length: meant.length }]);

    // A chunk stored and never indexed, and an object whose bytes are not the chunk its key names.
    const valid = chunkWith((s) => !s.startsWith('ff'));
    d.strayValid = sha(valid);
    await store(d.strayValid, valid);
    d.strayCorrupt = sha(chunkWith((s) => !s.startsWith('ff')));
    await store(
      d.strayCorrupt,
      chunkWith(() => true),
    );

    // Two entries the collector is deleting: one whose object it has not deleted yet, one whose object is gone.
    const doomed = [chunkWith((s) => !s.startsWith('ff')), chunkWith((s) => !s.startsWith('ff'))];
    for (const b of doomed) await store(sha(b), b);
    await index.record(
      NODE,
      doomed.map((b) => ({ sha256: sha(b), length: b.length })),
    );
    [d.deletingStored, d.deletingGone] = doomed.map(sha) as [string, string];
    const at = new Date().toISOString();
    for (const e of (await allEntries(NODE)).filter((x) => doomed.some((b) => sha(b) === x.sha256))) {
      expect(await index.condemn(NODE, e, at)).toBe(true);
      expect(await index.beginDelete(NODE, e.sha256, at, at)).toBe(true);
    }
    await remove(d.deletingGone);
    d.total = migrated + extra.length + 2 + 1 + 2;

    const before = await allEntries(NODE);
    const f = found(await verify(NODE, false));
    expect(f.entries).toBe(d.total);
    // Stored: every entry's object but the four deleted and the collector's gone one, plus the two strays.
    expect(f.objects).toBe(migratedObjects - 1 + (d.total - migrated) - 3 - 1 + 2);
    expect(f.indexedMissing.sort()).toEqual(
      [...d.missing.map((s) => `${s} missing false`), `${d.mismatch} mismatch false`].sort(),
    );
    expect(f.unindexed.sort()).toEqual(
      [`${d.strayValid} index false`, `${d.strayCorrupt} delete false`].sort(),
    );
    expect(f).toMatchObject({ deleting: 2, dropped: 0, indexed: 0, deleted: 0 });
    expect(await allEntries(NODE)).toEqual(before);
    expect(await stored(d.strayCorrupt)).toBe(true);
  });

  it('finds the same with any page size, the last page running to the last digest', async () => {
    const whole = found(await verify(NODE, false));
    for (const limit of [1, 2, 5]) {
      const pages = await verify(NODE, false, limit);
      expect(pages.length).toBeGreaterThan(d.total / limit / 2);
      for (const p of pages) {
        expect(p.checked.entries).toBeLessThanOrEqual(limit);
        // Chunks stored alone, and a 64th as many packs (at least one).
        expect(p.checked.objects).toBeLessThanOrEqual(limit + 1);
      }
      const f = found(pages);
      expect({ ...f, indexedMissing: f.indexedMissing.sort(), unindexed: f.unindexed.sort() }).toEqual({
        ...whole,
        indexedMissing: whole.indexedMissing.sort(),
        unindexed: whole.unindexed.sort(),
      });
    }
  });

  it('the CLI says so and exits 1; --repair puts it right, leaves the collector its entries, and exits 0', async () => {
    const usage = await index.usage(NODE);
    const report = await t.vmmig(['cache', 'verify', NODE, '--json', '--page-size', '3']);
    expect(report.code, report.stderr).toBe(1);
    const lines = report.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const wrong = d.missing.length + 1;
    expect(lines.filter((l) => l['kind'] === 'indexedMissing')).toHaveLength(wrong);
    expect(lines.filter((l) => l['kind'] === 'unindexed')).toHaveLength(2);
    expect(lines.at(-1)).toMatchObject({
      kind: 'summary',
      unrepaired: wrong + 2,
      deleting: 2,
      entries: d.total,
    });

    const repair = await t.vmmig(['cache', 'verify', NODE, '--repair', '--no-json', '--page-size', '4']);
    expect(repair.code, `${repair.stdout}\n${repair.stderr}`).toBe(0);
    expect(repair.stdout).toContain(`indexed but not stored right: ${wrong}\n`);
    expect(repair.stdout).toContain('stored but not indexed:       2\n');
    expect(repair.stdout).toContain(`repaired: ${wrong} entries dropped, 1 chunk indexed, 2 objects deleted`);
    expect(repair.stdout).toContain('being deleted by the cache collector: 2 (left to it)');
    expect(repair.stdout).toContain('repaired: the index and the bucket agree again');

    const entries = new Map((await allEntries(NODE)).map((e) => [e.sha256, e]));
    for (const digest of [...d.missing, d.mismatch]) expect(entries.has(digest), digest).toBe(false);
    expect(entries.get(d.strayValid)).toMatchObject({ length: expect.any(Number) });
    expect(await stored(d.strayValid)).toBe(true);
    expect(await stored(d.strayCorrupt)).toBe(false);
    expect(await stored(d.mismatch)).toBe(false);
    // The collector's: untouched, entries and objects.
    expect(entries.get(d.deletingStored)?.deleting).toBeDefined();
    expect(entries.get(d.deletingGone)?.deleting).toBeDefined();
    expect(await stored(d.deletingStored)).toBe(true);
    // The usage item moved with the entries: those dropped, 1 added.
    const after = await index.usage(NODE);
    expect(after.chunksHeld).toBe(usage.chunksHeld - wrong + 1);
  });

  it('a second verify is clean', async () => {
    const f = found(await verify(NODE, false, 7));
    expect(f).toMatchObject({ indexedMissing: [], unindexed: [], deleting: 2 });
    expect(f.entries).toBe(d.total - (d.missing.length + 1) + 1);
    const cli = await t.vmmig(['cache', 'verify', NODE, '--no-json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('clean: the index and the bucket agree');
  });

  it('packs: finds a pack no entry names and indexes it, drops entries of a pack that is gone, deletes a pack nothing needs', async () => {
    const before = found(await verify(NODE, false));
    expect(before).toMatchObject({ indexedMissing: [], unindexed: [] });
    // Stored, never indexed (an upload whose migration was cancelled before it was reported).
    const looseChunks = [compressible(8192), compressible(4096), randomBytes(3000)];
    const loose = await packOf(looseChunks);
    // Indexed where it was stored, but the pack is gone (deleted behind the index).
    const gone = await packOf([compressible(4096), compressible(4096)], false);
    await index.record(NODE, gone.entries);
    // Stored, but every chunk in it is indexed in another object at the node: nothing needs it.
    const spareChunk = chunkWith(() => true);
    await store(sha(spareChunk), spareChunk);
    await index.record(NODE, [{ sha256: sha(spareChunk), length: spareChunk.length }]);
    const unneeded = await packOf([spareChunk]);

    const report = found(await verify(NODE, false));
    expect(report.objects).toBe(before.objects + 3);
    expect(report.indexedMissing.sort()).toEqual(gone.entries.map((e) => `${e.sha256} missing false`).sort());
    expect(report.unindexed.sort()).toEqual(
      [`${loose.sha256} index false`, `${unneeded.sha256} delete false`].sort(),
    );
    const pages = await verify(NODE, false, 2);
    const item = pages.flatMap((p) => p.unindexed).find((x) => x.sha256 === loose.sha256);
    expect(item).toEqual({
      sha256: loose.sha256,
      length: loose.bytes.length,
      chunks: 3,
      action: 'index',
      repaired: false,
    });
    // Any page size finds the same.
    const paged = found(pages);
    expect({
      ...paged,
      indexedMissing: paged.indexedMissing.sort(),
      unindexed: paged.unindexed.sort(),
    }).toEqual({
      ...report,
      indexedMissing: report.indexedMissing.sort(),
      unindexed: report.unindexed.sort(),
    });

    const usage = await index.usage(NODE);
    const repaired = found(await verify(NODE, true, 3));
    expect(repaired).toMatchObject({ dropped: 2, indexed: 3, deleted: 1 });
    const entries = new Map((await allEntries(NODE)).map((e) => [e.sha256, e]));
    // The loose pack's chunks are indexed where the pack holds them: usage counts their stored bytes.
    for (const e of loose.entries) expect(entries.get(e.sha256)).toMatchObject(e);
    for (const e of gone.entries) expect(entries.has(e.sha256)).toBe(false);
    expect(entries.get(sha(spareChunk))?.pack).toBeUndefined();
    expect(await stored(unneeded.sha256, packKey(unneeded.sha256))).toBe(false);
    expect(await stored(loose.sha256, packKey(loose.sha256))).toBe(true);
    const after = await index.usage(NODE);
    expect(after.chunksHeld).toBe(usage.chunksHeld + 3 - 2);
    expect(after.bytesHeld).toBe(
      usage.bytesHeld +
        loose.entries.reduce((n, e) => n + e.stored, 0) -
        gone.entries.reduce((n, e) => n + e.stored, 0),
    );
    expect(found(await verify(NODE, false))).toMatchObject({
      indexedMissing: [],
      unindexed: [],
      deleting: 2,
    });

    // A chunk of that pack stored alone too (a copy from before packs): a spare its entry does not name, deleted.
    const [firstChunk] = loose.entries;
    if (!firstChunk) throw new Error('an empty pack');
    await store(firstChunk.sha256, looseChunks[0] as Buffer);
    expect(found(await verify(NODE, false)).unindexed).toEqual([`${firstChunk.sha256} delete false`]);
    expect(found(await verify(NODE, true)).unindexed).toEqual([`${firstChunk.sha256} delete true`]);
    expect(await stored(firstChunk.sha256)).toBe(false);
    expect((await allEntries(NODE)).find((e) => e.sha256 === firstChunk.sha256)?.pack).toBe(loose.sha256);
  });

  it('is for admins only, and 404 for a node that does not exist', async () => {
    const agent = await t
      .agent('dc-osa')
      .call(verifyCacheNode, { params: { cacheNodeId: NODE }, json: { repair: false } }, [403]);
    expect(agent.status).toBe(403);
    const unknown = await t.admin.call(
      verifyCacheNode,
      { params: { cacheNodeId: 'zz-none' }, json: { repair: false } },
      [404],
    );
    expect(unknown.status).toBe(404);
    const cli = await t.vmmig(['cache', 'verify', 'zz-none']);
    expect(cli.code).toBe(3);
  });
});
