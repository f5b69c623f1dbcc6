// Existing state keeps working after the data path moved to packs of compressed ~256 KiB chunks (issue "Data path
// v2, bytes"): an image stored by the earlier format — chunked at the old 4 MiB average, each chunk its own raw
// object under chunks/<hh>/<sha256>, index entries without a pack — is reused by the next migration of that image.
// The workflow asks the source agent to chunk it as it was chunked before, so nothing is uploaded again; the copy
// to the destination's cache node and the download read the old objects; the image arrives byte-identical. An
// image never stored before is chunked with the new default and travels in packs.
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketRef } from '../../lambdas/aws/cache-nodes.ts';
import { manifestKey } from '../../lambdas/domain/control-keys.ts';
import { writeRawImage } from '../../local/sample-images.ts';
import type { Migration } from '../../protocol/api/migrations.ts';
import { chunkKey } from '../../protocol/chunk-key.ts';
import { chunkFile, collectChunks, DEFAULT_AVG_SIZE } from '../../protocol/chunker.ts';
import { buildManifest, isZeroChunk, type Manifest } from '../../protocol/manifest.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const OLD_AVG = 4 * MiB;
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('state written before packs', { timeout: 300_000 }, () => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ agents: true });
  });
  afterAll(() => t?.dispose());

  const deps = () => t.cloud.root.deps;
  const image = (dc: string, name: string) => join(t.cloud.dataCenterDir(dc), 'images', name);
  const manifestOf = async (id: string) =>
    (await deps().storage.getJson<Manifest>(deps().control, manifestKey(id))) as Manifest;
  const migrate = async (imageId: string, from: string, to: string): Promise<Migration> => {
    const m = await startMigration(t.admin, { imageId, from, to: [to] });
    return waitForMigration(t.admin, m.id, undefined, 240_000);
  };

  /** Stores an image as the earlier format did: raw chunk objects at a node, entries without a pack, a manifest. */
  async function storeTheOldWay(path: string, imageId: string, node: string, dataCenterId: string) {
    const chunked = await collectChunks(chunkFile(path, { avgSize: OLD_AVG }));
    const manifest = buildManifest('raw', chunked);
    const bytes = await readFile(path);
    const ref = bucketRef(await deps().registry.requireCacheNode(node));
    const stored = new Map<string, number>();
    for (const c of manifest.chunks) {
      if (stored.has(c.sha256) || isZeroChunk(c.sha256, c.length)) continue;
      const put = await deps().storage.presignPut(
        ref,
        chunkKey(c.sha256),
        c.sha256,
        c.length,
        600,
        'application/octet-stream',
      );
      const res = await fetch(put.url, {
        method: 'PUT',
        headers: put.headers,
        body: bytes.subarray(c.offset, c.offset + c.length),
      });
      expect(res.status).toBe(200);
      stored.set(c.sha256, c.length);
    }
    await deps().contentIndex.record(
      node,
      [...stored].map(([sha256, length]) => ({ sha256, length })),
    );
    const oldId = `mig-${randomUUID()}`;
    await deps().storage.putJson(deps().control, manifestKey(oldId), manifest);
    await deps().mapping.putRows(
      [
        {
          migrationId: oldId,
          status: 'SRC',
          dataCenterId,
          dataCenterAddress: dataCenterId,
          hostId: 'host-1',
          vmId: 'vm-legacy',
          imageId,
          createdAt: new Date(Date.now() - 86_400_000).toISOString(),
        },
      ],
      [],
    );
    return { manifest, stored };
  }

  it('an image stored by the earlier format is reused: nothing uploaded, delivered byte-identical', async () => {
    const path = image('dc-gz', 'legacy.img');
    await writeRawImage(path, {
      size: 40 * MiB,
      extents: [
        { offset: 0, length: 12 * MiB, seed: 'legacy format a' },
        { offset: 24 * MiB, length: 8 * MiB, seed: 'legacy format b' },
      ],
    });
    const before = await storeTheOldWay(path, 'legacy.img', 'hkg', 'dc-gz');
    expect(before.stored.size).toBeGreaterThanOrEqual(4);

    const m = await migrate('legacy.img', 'dc-gz', 'dc-osa');
    expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    // Chunked as before, so every chunk was found at hkg: nothing went up.
    const manifest = await manifestOf(m.id);
    expect(manifest.chunking.avgSize).toBe(OLD_AVG);
    expect(manifest.chunks.map((c) => c.sha256)).toEqual(before.manifest.chunks.map((c) => c.sha256));
    expect(m.upload.bytesTotal).toBe(0);
    expect(m.upload.bytesCached).toBe([...before.stored.values()].reduce((n, x) => n + x, 0));
    // The old objects were copied to the destination's node as they are, and fetched from there.
    const nrt = await deps().contentIndex.locate('nrt', [...before.stored.keys()]);
    expect(nrt.size).toBe(before.stored.size);
    for (const e of nrt.values()) expect(e.pack).toBeUndefined();
    expect(await sha(image('dc-osa', 'legacy.img'))).toBe(await sha(path));
  });

  it('an image never stored is chunked with the new default and stored in packs', async () => {
    const path = image('dc-gz', 'fresh.img');
    await writeRawImage(path, {
      size: 24 * MiB,
      extents: [{ offset: 0, length: 10 * MiB, seed: 'never stored before' }],
    });
    const m = await migrate('fresh.img', 'dc-gz', 'dc-osa');
    expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    const manifest = await manifestOf(m.id);
    expect(manifest.chunking.avgSize).toBe(DEFAULT_AVG_SIZE);
    const distinct = new Set(
      manifest.chunks.filter((c) => !isZeroChunk(c.sha256, c.length)).map((c) => c.sha256),
    );
    const atHkg = await deps().contentIndex.locate('hkg', [...distinct]);
    expect(atHkg.size).toBe(distinct.size);
    // Packs of several MiB, not one object per chunk.
    const packs = new Set([...atHkg.values()].map((e) => e.pack));
    expect(packs.has(undefined)).toBe(false);
    expect(packs.size).toBeLessThan(distinct.size / 4);
    const listed = await deps().storage.listPacks(bucketRef(await deps().registry.requireCacheNode('hkg')), {
      limit: 1000,
    });
    for (const p of packs) expect(listed.packs.map((x) => x.sha256)).toContain(p);
    expect(await sha(image('dc-osa', 'fresh.img'))).toBe(await sha(path));
  });
});
