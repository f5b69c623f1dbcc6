// The content index heals itself (issue "Cache space and lifecycle"; DESIGN §3): objects deleted from cache node
// buckets behind the system's back — an operator's cleanup, a lifecycle rule, a lost region — cost re-copies and
// re-uploads, never a migration. Half of a node's objects go (packs: each holds many chunks, and copies between
// cache nodes move them whole, so two nodes hold the same packs), then migrations that need them complete on their
// first attempt, byte-identical: a chunk still held elsewhere is copied from there, a chunk held nowhere is
// uploaded again by the source, and a destination node that lost what the index placed there is found out before
// its agent asks for it.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketRef } from '../../lambdas/aws/cache-nodes.ts';
import type { IndexEntry } from '../../lambdas/aws/content-index.ts';
import { writeRawImage } from '../../local/sample-images.ts';
import type { Migration } from '../../protocol/api/migrations.ts';
import { objectKeyOf } from '../../protocol/chunk-key.ts';
import { agentManifest } from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('a cache node that loses objects behind the index', { timeout: 300_000 }, () => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ agents: true });
  });
  afterAll(() => t?.dispose());

  const deps = () => t.cloud.root.deps;
  const indexed = async (node: string) =>
    (await deps().contentIndex.allEntries(node)).entries.map((e) => e.sha256).sort();
  /** A node's index entries grouped by the object (pack) they name, in key order. */
  const objectsAt = async (node: string): Promise<[string, IndexEntry[]][]> => {
    const out = new Map<string, IndexEntry[]>();
    for (const e of (await deps().contentIndex.allEntries(node)).entries)
      out.set(objectKeyOf(e), [...(out.get(objectKeyOf(e)) ?? []), e]);
    return [...out].sort(([a], [b]) => (a < b ? -1 : 1));
  };
  /** Deletes these objects from a node's bucket, leaving the index as it is. */
  const deleteBehindIndex = async (node: string, objects: readonly [string, IndexEntry[]][]) => {
    const record = await deps().registry.requireCacheNode(node);
    for (const [, entries] of objects)
      await deps().storage.deleteObject(bucketRef(record), entries[0] as IndexEntry);
  };
  const digestsOf = (objects: readonly [string, IndexEntry[]][]) =>
    objects.flatMap(([, es]) => es.map((e) => e.sha256));
  const image = (dc: string, name: string) => join(t.cloud.dataCenterDir(dc), 'images', name);
  const migrate = async (imageId: string, from: string, to: string): Promise<Migration> => {
    const m = await startMigration(t.admin, { imageId, from, to: [to] });
    return waitForMigration(t.admin, m.id, undefined, 240_000);
  };

  it('half of two nodes gone: copies from the other holder, re-uploads what nobody holds, first attempt', async () => {
    await writeRawImage(image('dc-gz', 'heal-1.img'), {
      size: 64 * MiB,
      extents: [{ offset: 0, length: 40 * MiB, seed: 'self-healing index' }],
    });
    // First delivery: the chunks end up at hkg (dc-gz's node, uploaded) and nrt (dc-osa's node, copied).
    const first = await migrate('heal-1.img', 'dc-gz', 'dc-osa');
    expect(first.status, JSON.stringify(first.error)).toBe('COMPLETED');
    const atHkg = await indexed('hkg');
    const atNrt = await indexed('nrt');
    expect(atNrt).toEqual(atHkg);
    // The same packs at both nodes (copied whole), several of them.
    const packs = await objectsAt('hkg');
    expect(packs.length).toBeGreaterThanOrEqual(4);
    expect((await objectsAt('nrt')).map(([key]) => key)).toEqual(packs.map(([key]) => key));

    // Behind the system's back: half of hkg's packs go, and a quarter of them are gone from both nodes.
    const packsFromHkg = packs.filter((_, i) => i % 2 === 0);
    const packsFromBoth = packs.filter((_, i) => i % 4 === 0);
    await deleteBehindIndex('hkg', packsFromHkg);
    await deleteBehindIndex('nrt', packsFromBoth);
    const fromHkg = digestsOf(packsFromHkg);
    const fromBoth = digestsOf(packsFromBoth);

    // To dc-jkt (sin): hkg is the nearest holder of everything by the index.
    const m = await migrate('heal-1.img', 'dc-gz', 'dc-jkt');
    expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    expect(m.attempt).toBe(1);
    expect(await sha(image('dc-jkt', 'heal-1.img'))).toBe(await sha(image('dc-gz', 'heal-1.img')));
    const events = (m.history ?? []).map((h) => h.event);
    console.info(
      (m.history ?? [])
        .filter((h) => ['chunks-lost', 'index-healed', 'reupload', 'cache-checked'].includes(h.event))
        .map((h) => `${h.event}: ${h.message}`)
        .join('\n'),
    );
    // Entries that named missing objects were dropped; what nrt still held was copied from there; the rest the
    // source uploaded again, in one re-upload round.
    expect(events).toContain('chunks-lost');
    expect(
      (m.history ?? []).some((h) =>
        /index entries named chunks their cache node did not store/.test(h.message),
      ),
    ).toBe(true);
    expect(events.filter((e) => e === 'reupload')).toHaveLength(1);
    const record = await deps().migrations.require(m.id);
    expect(record.healRounds).toBe(1);
    // The index tells the truth again: what hkg lost and nrt still had was copied from nrt to sin (hkg is not
    // refilled), what both lost was uploaded to hkg again; every entry names a stored object.
    const hkg = await deps().registry.requireCacheNode('hkg');
    const nowAtHkg = await indexed('hkg');
    const stale: string[] = [];
    for (const e of (await deps().contentIndex.allEntries('hkg')).entries) {
      const state = await deps().storage.objectState(bucketRef(hkg), e);
      if (state !== 'present') stale.push(`${e.sha256.slice(0, 12)}… in ${objectKeyOf(e)}: ${state}`);
    }
    expect(stale).toEqual([]);
    expect(nowAtHkg).toEqual(atHkg.filter((d) => !fromHkg.includes(d) || fromBoth.includes(d)));
    expect(record.chunksHealed).toBe(fromHkg.length + fromBoth.length);
  });

  it('a destination node that lost what the index placed there is found out before its agent asks', async () => {
    await writeRawImage(image('dc-gz', 'heal-2.img'), {
      size: 48 * MiB,
      extents: [{ offset: 0, length: 24 * MiB, seed: 'destination lost chunks' }],
    });
    const first = await migrate('heal-2.img', 'dc-gz', 'dc-osa');
    expect(first.status, JSON.stringify(first.error)).toBe('COMPLETED');
    const own = (await deps().migrations.require(first.id)).image?.uniqueChunks ?? 0;
    expect(own).toBeGreaterThan(2);
    // Half of nrt's packs go (of every image nrt holds, this one's among them).
    const atNrt = await objectsAt('nrt');
    const lost = atNrt.filter((_, i) => i % 2 === 1);
    const mine = new Set((await agentManifest(t, 'dc-gz', first.id)).chunks.map((c) => c.sha256));
    expect(digestsOf(lost).some((d) => mine.has(d))).toBe(true);
    await deleteBehindIndex('nrt', lost);
    // The same image again to dc-osa (a re-delivery, e.g. after the VM was lost there): the index places every
    // chunk at nrt already, so nothing is planned to move — but each is looked at, and the lost ones copied again.
    const again = await startMigration(t.admin, {
      imageId: 'heal-2.img',
      from: 'dc-gz',
      to: ['dc-osa'],
      overwrite: true,
    });
    const m = await waitForMigration(t.admin, again.id, undefined, 240_000);
    expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    expect(m.attempt).toBe(1);
    expect(await sha(image('dc-osa', 'heal-2.img'))).toBe(await sha(image('dc-gz', 'heal-2.img')));
    expect((m.history ?? []).map((h) => h.event)).toContain('index-healed');
    // Nothing was asked of the agent's repair route: the lost chunks were back before it downloaded.
    expect((m.history ?? []).map((h) => h.event)).not.toContain('chunk-repaired');
    expect(m.replication.chunksCopied).toBeGreaterThan(0);
  });
});
