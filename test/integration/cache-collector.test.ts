// The cache collector against the local cloud's real DynamoDB and S3 (lambdas/workflow/collect-garbage.ts): least
// recently used unreferenced chunks are marked down to the low-water mark and deleted by a later pass after the
// grace period; pinned images and live migrations keep theirs; and each dangerous interleaving of a use with the
// two phases (docs/architecture.md, "Eviction") is played deterministically at the collector's seams:
//   A. a use after the mark saves the chunk;
//   B. a migration that saw the chunk as held just before deletion began is live when the collector looks again:
//      the deletion is reverted;
//   C. a copy landing while the entry is being deleted is refused (the copier copies again afterwards);
//   D. a crash between the object's deletion and the entry's leaves an entry that no longer counts as held, and the
//      next pass finishes it.
// Chunks stored alone (the format before packs) and packs are both collected: a pack goes only with all its chunks.
import { createHash, randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bucketRef } from '../../lambdas/aws/cache-nodes.ts';
import type { IndexedChunk } from '../../lambdas/aws/content-index.ts';
import { manifestKey } from '../../lambdas/domain/control-keys.ts';
import { collectGarbage } from '../../lambdas/workflow/collect-garbage.ts';
import { base64Sha256, chunkKey, packKey } from '../../protocol/chunk-key.ts';
import { type BuiltPack, encodeChunk, PackBuilder, type PackEntry } from '../../protocol/pack.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';

const MiB = 1 << 20;
const NODE = 'sin';

describe('the cache collector', { timeout: 120_000 }, () => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ agents: false, policyTickMs: 0 });
  });
  afterAll(() => t?.dispose());
  const deps = () => t.cloud.root.deps;

  let n = 0;
  /** A chunk stored at a node and indexed there, as an upload or a copy leaves it. */
  const chunk = async (size: number, node = NODE) => {
    const bytes = randomBytes(size);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const record = await deps().registry.requireCacheNode(node);
    await t.cloud.root.clients.s3(record.region).send(
      new PutObjectCommand({
        Bucket: record.bucket,
        Key: chunkKey(sha256),
        Body: bytes,
        ChecksumAlgorithm: 'SHA256',
      }),
    );
    await deps().contentIndex.record(node, [{ sha256, length: size }]);
    // Distinct use times: least recently used is well defined.
    await new Promise((r) => setTimeout(r, 5));
    return { sha256, length: size };
  };
  const stored = async (sha256: string, node = NODE) =>
    deps().storage.chunkState(bucketRef(await deps().registry.requireCacheNode(node)), sha256, 0);
  /**
   * Chunks stored in one pack at a node (compressible: each is stored in about a quarter of its bytes), indexed there
   * where `indexed` says (all by default).
   */
  const pack = async (
    sizes: readonly number[],
    indexed: (e: PackEntry) => boolean = () => true,
    node = NODE,
  ): Promise<BuiltPack> => {
    const builder = new PackBuilder();
    for (const size of sizes) {
      const quarter = randomBytes(size / 4);
      const raw = Buffer.concat([quarter, quarter, quarter, quarter]);
      const { stored: bytes, encoding } = await encodeChunk(raw);
      builder.add(createHash('sha256').update(raw).digest('hex'), raw.length, bytes, encoding);
    }
    const built = builder.finish();
    const record = await deps().registry.requireCacheNode(node);
    await t.cloud.root.clients.s3(record.region).send(
      new PutObjectCommand({
        Bucket: record.bucket,
        Key: packKey(built.sha256),
        Body: built.bytes,
        ChecksumSHA256: base64Sha256(built.sha256),
      }),
    );
    await deps().contentIndex.record(node, built.entries.filter(indexed));
    await new Promise((r) => setTimeout(r, 5));
    return built;
  };
  const packStored = async (p: BuiltPack, node = NODE) =>
    deps().storage.objectState(
      bucketRef(await deps().registry.requireCacheNode(node)),
      p.entries[0] as IndexedChunk,
    );
  const storedBytes = (p: BuiltPack) => p.entries.reduce((n, e) => n + e.stored, 0);
  const indexed = async (node = NODE) =>
    new Map((await deps().contentIndex.allEntries(node)).entries.map((e) => [e.sha256, e]));
  /** A live migration: it holds a transfer slot and its manifest names these chunks. */
  const live = async (chunks: readonly { sha256: string; length: number }[], node = NODE) => {
    const id = `mig-live${String(++n).padStart(16, '0')}`;
    let offset = 0;
    await deps().storage.putJson(deps().control, manifestKey(id), {
      chunks: chunks.map((c) => {
        const entry = { offset, length: c.length, sha256: c.sha256 };
        offset += c.length;
        return entry;
      }),
    });
    expect(await deps().slots.reserve(node, id)).toBe('reserved');
    return id;
  };
  const pass = (options: Parameters<typeof collectGarbage>[1] = {}) =>
    collectGarbage(deps(), { nodes: [NODE], ...options }).then((r) => {
      const report = r.nodes[0];
      if (!report) throw new Error('no report');
      return report;
    });

  beforeEach(async () => {
    // Every test starts from an empty node with a 10 MiB budget and no grace period.
    for (const [sha256, e] of await indexed()) {
      if (e.deleting) continue;
      await deps().contentIndex.remove(NODE, sha256);
      await deps().storage.deleteObject(bucketRef(await deps().registry.requireCacheNode(NODE)), e);
    }
    const node = await deps().registry.requireCacheNode(NODE);
    for (const id of node.reservations) await deps().slots.release(NODE, id);
    for (const pin of await deps().registry.allPins()) await deps().registry.deletePin(pin.imageId);
    await deps().registry.patchCacheNode(NODE, { budgetBytes: 10 * MiB });
    await deps().registry.putCacheSettings({
      graceSeconds: 0,
      highWater: 0.9,
      lowWater: 0.75,
      retentionDays: null,
    });
    await pass(); // reconciles the usage with the (now empty) index
  });

  it('marks least recently used chunks down to the low-water mark; the next pass deletes them', async () => {
    const chunks: { sha256: string; length: number }[] = [];
    for (let i = 0; i < 8; i++) chunks.push(await chunk(1.5 * MiB));
    // 12 MiB held of a 10 MiB budget: over the high-water mark (9 MiB), down to the low-water mark (7.5 MiB).
    const dry = await pass({ dryRun: true });
    expect(dry).toMatchObject({ bytesHeld: 12 * MiB, marked: { chunks: 3 }, freed: { chunks: 0 } });
    expect([...(await indexed()).values()].some((e) => e.condemnedAt)).toBe(false); // a dry run changes nothing

    const first = await pass();
    expect(first.marked).toEqual({ chunks: 3, bytes: 4.5 * MiB });
    expect(first.freed).toEqual({ chunks: 0, bytes: 0 });
    expect(first.evictableBytes).toBe(12 * MiB);
    const marked = [...(await indexed())].filter(([, e]) => e.condemnedAt).map(([d]) => d);
    // The three used least recently.
    expect(marked.sort()).toEqual(
      chunks
        .slice(0, 3)
        .map((c) => c.sha256)
        .sort(),
    );

    const second = await pass();
    expect(second.freed).toEqual({ chunks: 3, bytes: 4.5 * MiB });
    expect(second.marked.chunks).toBe(0);
    expect(second.bytesHeld).toBe(7.5 * MiB);
    expect((await deps().contentIndex.usage(NODE)).bytesHeld).toBe(7.5 * MiB);
    for (const c of chunks.slice(0, 3)) expect(await stored(c.sha256)).toBe('missing');
    for (const c of chunks.slice(3)) expect(await stored(c.sha256)).not.toBe('missing');
    expect((await indexed()).size).toBe(5);
  });

  it("keeps a pinned image's and a live migration's chunks, whatever their age and the space", async () => {
    const pinned = [await chunk(2 * MiB), await chunk(2 * MiB)];
    const running = [await chunk(2 * MiB), await chunk(2 * MiB)];
    const other = [await chunk(2 * MiB), await chunk(2 * MiB)];
    const pinnedVersion = await live(pinned);
    await deps().slots.release(NODE, pinnedVersion); // its migration ended: only the pin keeps its chunks
    await deps().registry.putPin({ imageId: 'web-01.img', migrationId: pinnedVersion, cacheNodeIds: [NODE] });
    await live(running);
    // 12 MiB held: the collector would take 3 chunks to reach 7.5 MiB, but only 2 are candidates.
    const first = await pass();
    expect(first.evictableBytes).toBe(4 * MiB);
    expect(first.marked.chunks).toBe(2);
    await pass();
    for (const c of [...pinned, ...running]) expect(await stored(c.sha256)).not.toBe('missing');
    for (const c of other) expect(await stored(c.sha256)).toBe('missing');
    // Pinned at another node only, the image's chunks here are candidates again.
    await deps().registry.putPin({
      imageId: 'web-01.img',
      migrationId: pinnedVersion,
      cacheNodeIds: ['hkg'],
    });
    expect((await pass({ dryRun: true })).evictableBytes).toBe(4 * MiB);
  });

  it('A: a use after the mark saves the chunk', async () => {
    const chunks: { sha256: string; length: number }[] = [];
    for (let i = 0; i < 7; i++) chunks.push(await chunk(1.5 * MiB));
    const first = await pass();
    expect(first.marked.chunks).toBe(2);
    const [saved] = chunks;
    if (!saved) throw new Error('no chunk');
    // A migration looks at the chunk there (CopyBatch's check of what the index places at a node).
    expect(await deps().contentIndex.touch(NODE, [saved.sha256])).toEqual(new Set([saved.sha256]));
    const second = await pass();
    expect(second.freed.chunks).toBe(1);
    expect(await stored(saved.sha256)).not.toBe('missing');
    expect((await indexed()).get(saved.sha256)?.condemnedAt).toBeUndefined();
  });

  it('B: a migration that saw the chunk held just before deletion began is live when the collector looks again', async () => {
    const chunks: { sha256: string; length: number }[] = [];
    for (let i = 0; i < 7; i++) chunks.push(await chunk(1.5 * MiB));
    await pass();
    let during = 0;
    const second = await pass({
      hooks: {
        afterBeginDelete: async (_node, digests) => {
          during = digests.length;
          // Right before deletion began, a migration took its slot and read the index: the chunks were held.
          // (The collector's first read of the references did not see it.)
          await live(chunks.slice(0, 2));
          // From here on the entries no longer count as held: a new look sees them absent.
          const held = await deps().contentIndex.holders(
            chunks.slice(0, 2).map((c) => c.sha256),
            [NODE],
          );
          expect(held.size).toBe(0);
        },
      },
    });
    expect(during).toBe(2);
    expect(second.reverted).toBe(2);
    expect(second.freed.chunks).toBe(0);
    for (const c of chunks.slice(0, 2)) {
      expect(await stored(c.sha256)).not.toBe('missing');
      expect((await indexed()).get(c.sha256)).toEqual(
        expect.not.objectContaining({ deleting: expect.anything() }),
      );
    }
    const held = await deps().contentIndex.holders(
      chunks.slice(0, 2).map((c) => c.sha256),
      [NODE],
    );
    expect(held.size).toBe(2);
  });

  it('C: a copy landing while its entry is being deleted is refused, and recorded once the collector is done', async () => {
    const chunks: { sha256: string; length: number }[] = [];
    for (let i = 0; i < 7; i++) chunks.push(await chunk(1.5 * MiB));
    await pass();
    const [victim] = chunks;
    if (!victim) throw new Error('no chunk');
    let refused: readonly string[] = [];
    await pass({
      hooks: {
        beforeObjectDelete: async (_node, sha256) => {
          if (sha256 !== victim.sha256) return;
          // Another migration's copy of the chunk lands at the node now and is recorded: refused.
          refused = (await deps().contentIndex.record(NODE, [victim])).refused;
        },
      },
    });
    expect(refused).toEqual([victim.sha256]);
    expect(await stored(victim.sha256)).toBe('missing');
    expect((await indexed()).has(victim.sha256)).toBe(false);
    // The copier runs again (TransientError): the chunk is absent, so it copies it and records it.
    const again = await deps().contentIndex.record(NODE, [victim]);
    expect(again).toEqual({ addedBytes: victim.length, addedChunks: 1, refused: [] });
  });

  it('D: a crash between the deletions leaves an entry that is not held; the next pass finishes it', async () => {
    const chunks: { sha256: string; length: number }[] = [];
    for (let i = 0; i < 7; i++) chunks.push(await chunk(1.5 * MiB));
    await pass();
    const before = (await deps().contentIndex.usage(NODE)).bytesHeld;
    const crash = pass({
      hooks: {
        beforeObjectDelete: async (node, sha256) => {
          await deps().storage.deleteChunk(bucketRef(await deps().registry.requireCacheNode(node)), sha256);
          throw new Error('the collector crashed');
        },
      },
    });
    await expect(crash).rejects.toThrow('the collector crashed');
    const left = [...(await indexed())].filter(([, e]) => e.deleting).map(([d]) => d);
    expect(left.length).toBeGreaterThan(0);
    expect(await deps().contentIndex.holders(left, [NODE])).toEqual(new Map());
    const next = await pass();
    expect(next.freed.chunks).toBe(2);
    expect([...(await indexed()).values()].some((e) => e.deleting)).toBe(false);
    expect((await deps().contentIndex.usage(NODE)).bytesHeld).toBe(before - 3 * MiB);
  });

  it('retention: unreferenced chunks unused for longer go whatever the space', async () => {
    await deps().registry.patchCacheNode(NODE, { budgetBytes: null });
    await deps().registry.putCacheSettings({ retentionDays: 30 });
    const old = await chunk(1 * MiB);
    const kept = await chunk(1 * MiB);
    await live([kept]);
    const later = () => new Date(Date.now() + 31 * 86_400_000);
    const first = await pass({ now: later });
    expect(first.marked).toEqual({ chunks: 1, bytes: 1 * MiB });
    expect(first.reason).toMatch(/unused for over 30 days/);
    await pass({ now: later });
    expect(await stored(old.sha256)).toBe('missing');
    expect(await stored(kept.sha256)).not.toBe('missing');
  });

  describe('packs', () => {
    const later = () => new Date(Date.now() + 31 * 86_400_000);
    beforeEach(async () => {
      // Every unreferenced chunk is marked by a pass (as if unused for over 30 days), whatever the space.
      await deps().registry.patchCacheNode(NODE, { budgetBytes: null });
      await deps().registry.putCacheSettings({ retentionDays: 30 });
    });

    it('counts stored bytes; keeps a pack one chunk of which is referenced, deletes one all of whose chunks go', async () => {
      const a = await pack([MiB, MiB, MiB]);
      const b = await pack([MiB, MiB]);
      const [a1, a2, a3] = a.entries as [PackEntry, PackEntry, PackEntry];
      const counted = await pass({ now: later });
      // What the node holds is what its packs store (compressed), not the chunks' lengths.
      expect(counted.bytesHeld).toBe(storedBytes(a) + storedBytes(b));
      expect(counted.bytesHeld).toBeLessThan(2 * MiB);
      expect(counted.marked).toEqual({ chunks: 5, bytes: storedBytes(a) + storedBytes(b) });

      // A migration starts that needs one chunk of pack a: a is kept whole; b goes.
      const migration = await live([a2]);
      const second = await pass({ now: later });
      expect(second.freed).toEqual({ chunks: 2, bytes: storedBytes(b) });
      expect(second.pardoned).toBe(1);
      expect(await packStored(b)).toBe('missing');
      expect(await packStored(a)).toBe('present');
      const left = await indexed();
      expect([...left.keys()].sort()).toEqual([a1.sha256, a2.sha256, a3.sha256].sort());
      // Its other chunks keep their marks: they go with the pack, once all of it may go.
      expect(left.get(a1.sha256)?.condemnedAt).toBeDefined();
      expect(left.get(a2.sha256)?.condemnedAt).toBeUndefined();
      expect((await deps().contentIndex.usage(NODE)).bytesHeld).toBe(storedBytes(a));

      // The migration ends: the chunk it needed is marked by the next pass, and the pack goes by the one after.
      await deps().slots.release(NODE, migration);
      const third = await pass({ now: later });
      expect(third.freed.chunks).toBe(0);
      expect(third.marked).toEqual({ chunks: 1, bytes: a2.stored });
      expect(await packStored(a)).toBe('present');
      const fourth = await pass({ now: later });
      expect(fourth.freed).toEqual({ chunks: 3, bytes: storedBytes(a) });
      expect(await packStored(a)).toBe('missing');
      expect((await indexed()).size).toBe(0);
      expect((await deps().contentIndex.usage(NODE)).bytesHeld).toBe(0);
    });

    it('a chunk of the pack recorded after the pass read the entries keeps the pack (its table of contents)', async () => {
      // The pack holds three chunks; only two are indexed at the node when the collector reads the entries.
      const a = await pack([MiB, MiB, MiB], () => false);
      const [a1, a2, a3] = a.entries as [PackEntry, PackEntry, PackEntry];
      await deps().contentIndex.record(NODE, [a1, a2]);
      await pass({ now: later });
      const second = await pass({
        now: later,
        hooks: {
          afterBeginDelete: async () => {
            // A copy that found the pack at the node records its third chunk there.
            await deps().contentIndex.record(NODE, [a3]);
          },
        },
      });
      expect(second.freed.chunks).toBe(0);
      expect(second.reverted).toBe(2);
      expect(await packStored(a)).toBe('present');
      const left = await indexed();
      expect(left.size).toBe(3);
      for (const e of left.values()) expect(e.deleting).toBeUndefined();
    });

    it('a dry run says what a pass would free, pack by pack', async () => {
      const a = await pack([MiB, MiB]);
      const b = await pack([MiB]);
      await live([a.entries[0] as PackEntry]);
      await pass({ now: later });
      // Referenced, pack a was not even marked: only b would go.
      expect((await pass({ now: later, dryRun: true })).freed).toEqual({ chunks: 1, bytes: storedBytes(b) });
      expect(await packStored(b)).toBe('present');
    });
  });
});
