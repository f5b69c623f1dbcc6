// Copies between cache nodes shared by concurrent migrations (copy claims), end to end on the local cloud: a batch of
// clones of one base goes from dc-gz (cache node hkg) to dc-osa (nrt) at once. Every CopyBatch is held at its
// entry until all the migrations have planned their replication — so each plans copies of the whole base, and all
// copy at the same moment — and every server-side copy is slowed at the S3 proxy to widen the race. Chunks are
// stored in packs and a copy moves a whole pack: each pack holding a chunk nrt needs is copied into nrt once, the
// bytes copied are those packs' bytes, the migrations complete byte-identical, and each leg still counts every byte
// of its image as replicated. A CopyBatch whose wait is over (CopiesPending) is run again by the state machine and
// completes.
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopiesPending } from '../../lambdas/workflow/copy-batch.ts';
import { writeRawImage } from '../../local/sample-images.ts';
import { type Batch, createBatch, getBatch } from '../../protocol/api/batches.ts';
import { objectKeyOf } from '../../protocol/chunk-key.ts';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';
import { tocBytes } from '../../protocol/pack.ts';
import { bucketOf, packEntries } from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const CLONES = ['app-1', 'app-2', 'app-3', 'app-4', 'app-5'];
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('copies shared by concurrent migrations', { timeout: 180_000 }, () => {
  let t: TestCloud;
  /** Migrations whose CopyBatch is held until all of the batch's have arrived. */
  const held = new Set<string>();
  let release: () => void = () => {};
  const allArrived = new Promise<void>((resolve) => {
    release = resolve;
  });
  let expectedAtBarrier = Number.POSITIVE_INFINITY;
  /** What each CopyBatch run reported (copied, skipped, awaited), by migration. */
  const tallies = new Map<string, { copied: number; skipped: number; awaited: number; runs: number }>();
  /** Migrations whose first CopyBatch run fails with CopiesPending, as if its wait were over. */
  const pendOnce = new Set<string>();

  beforeAll(async () => {
    t = await startTestCloud({
      agents: true,
      // Every server-side copy waits 150–400 ms at the proxy: copies of the same chunk overlap if they can.
      s3Faults: { faultRate: 1, faults: ['slow'], slowMs: [150, 400], eligible: (r) => r.copy },
      wrapFunction: (name, handler) =>
        name !== 'copy-batch'
          ? handler
          : async (event) => {
              const { migrationId } = event as { migrationId: string };
              const tally = tallies.get(migrationId) ?? { copied: 0, skipped: 0, awaited: 0, runs: 0 };
              tallies.set(migrationId, tally);
              tally.runs++;
              if (pendOnce.delete(migrationId)) throw new CopiesPending('injected: the wait is over');
              if (held.size < expectedAtBarrier) {
                held.add(migrationId);
                if (held.size >= expectedAtBarrier) release();
                await Promise.race([allArrived, new Promise((r) => setTimeout(r, 90_000))]);
              }
              const out = (await handler(event)) as { copied: number; skipped: number; awaited: number };
              tally.copied += out.copied;
              tally.skipped += out.skipped;
              tally.awaited += out.awaited;
              return out;
            },
    });
  });
  afterAll(() => t?.dispose());

  it('a batch of clones to one cache node copies each pack into it once', async () => {
    const images = join(t.cloud.dataCenterDir('dc-gz'), 'images');
    // Five clones of a 48 MiB base, each with 2 MiB of its own writes in a different place.
    for (const [i, vm] of CLONES.entries()) {
      await writeRawImage(join(images, `${vm}.img`), {
        size: 96 * MiB,
        extents: [
          { offset: 0, length: 48 * MiB, seed: 'shared copies base' },
          { offset: (56 + i * 8) * MiB, length: 2 * MiB, seed: `own writes of ${vm}` },
        ],
      });
    }
    expectedAtBarrier = CLONES.length;
    const { status, body } = await t.admin.call<Batch>(createBatch, {
      json: {
        sourceDataCenterId: 'dc-gz',
        destinations: [{ dataCenterId: 'dc-osa' }],
        mode: 'backup',
        vms: CLONES.map((vm) => ({ vmId: vm, hostId: 'h1', imageId: `${vm}.img` })),
      },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(status).toBe(202);
    let batch = body;
    const deadline = Date.now() + 240_000;
    while (batch.status === 'RUNNING' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      batch = (await t.admin.call<Batch>(getBatch, { params: { batchId: body.id } })).body;
    }
    expect(batch.status, JSON.stringify(batch)).toBe('COMPLETED');
    // The barrier really held every migration's copies until all had planned theirs.
    expect(held.size).toBe(CLONES.length);
    const members = await Promise.all(batch.migrations.map((m) => waitForMigration(t.admin, m.id)));

    // What nrt needs: every distinct non-zero chunk of the five images, once.
    const unique = new Map<string, number>();
    for (const vm of CLONES) {
      for (const c of (await collectChunks(chunkFile(join(images, `${vm}.img`)))).chunks) {
        if (!isZeroChunk(c.sha256, c.length)) unique.set(c.sha256, c.length);
      }
    }
    const uniqueBytes = [...unique.values()].reduce((n, l) => n + l, 0);
    // Where the source node stores them: the packs the batch's uploads made, and their sizes.
    const index = t.cloud.root.deps.contentIndex;
    const atHkg = await index.locate('hkg', [...unique.keys()]);
    expect(atHkg.size).toBe(unique.size);
    const packs = new Map<string, number>();
    for (const e of atHkg.values()) {
      if (e.pack === undefined || packs.has(objectKeyOf(e))) continue;
      const entries = (await packEntries(t, 'hkg', e.pack)) ?? [];
      packs.set(objectKeyOf(e), entries.reduce((n, x) => n + x.stored, 0) + tocBytes(entries.length));
    }
    expect(packs.size).toBeGreaterThan(1);
    expect([...atHkg.values()].every((e) => e.pack !== undefined)).toBe(true);
    const packBytes = [...packs.values()].reduce((n, b) => n + b, 0);
    // What was copied into nrt, as the S3 proxy saw it.
    const proxy = t.cloud.s3Proxy;
    if (!proxy) throw new Error('no S3 proxy');
    const copies = proxy.records.filter((r) => r.copy && r.bucket === bucketOf('nrt') && r.status === 200);
    const copiedKeys = copies.map((r) => r.key);
    const copiedBytes = copiedKeys.reduce((n, k) => n + (packs.get(k) ?? Number.NaN), 0);
    // What each migration needed at nrt, and would have copied without claims.
    const planned = members.reduce((n, m) => n + (m.legs[0]?.bytesToReplicate ?? 0), 0);
    const reported = [...tallies.values()].reduce(
      (s, x) => ({ copied: s.copied + x.copied, awaited: s.awaited + x.awaited }),
      { copied: 0, awaited: 0 },
    );
    console.info(
      `shared-copies: ${CLONES.length} migrations planned ${planned} bytes of copies into nrt; ` +
        `${copies.length} copies (${copiedBytes} bytes) were made of ${packs.size} packs (${packBytes} bytes) holding ` +
        `${unique.size} unique chunks (${uniqueBytes} bytes); copy tasks reported ${reported.copied} chunks copied, ` +
        `${reported.awaited} awaited`,
    );
    expect(new Set(copiedKeys).size).toBe(copiedKeys.length); // none twice
    expect(new Set(copiedKeys)).toEqual(new Set(packs.keys()));
    expect(copiedBytes).toBe(packBytes);
    // nrt's index places every chunk in the pack it came in.
    const atNrt = await index.locate('nrt', [...unique.keys()]);
    expect(atNrt.size).toBe(unique.size);
    for (const [d, e] of atNrt) expect(objectKeyOf(e), d).toBe(objectKeyOf(atHkg.get(d) ?? e));
    // Each copy brought at least one chunk of the task that made it; no chunk was brought twice.
    expect(reported.copied).toBeGreaterThanOrEqual(copies.length);
    expect(reported.copied).toBeLessThanOrEqual(unique.size);
    expect(reported.awaited).toBeGreaterThan(0);
    // The migrations and the batch say the same: each counts only the copies it made, in bytes as stored.
    expect(members.reduce((n, m) => n + m.replication.bytesCopied, 0)).toBe(packBytes);
    expect(members.reduce((n, m) => n + m.replication.chunksCopied, 0)).toBe(reported.copied);
    expect((await t.admin.call<Batch>(getBatch, { params: { batchId: body.id } })).body.bytes.copied).toBe(
      packBytes,
    );
    // Every planned copy was made once or found made: the tasks account for all of them.
    const accounted = [...tallies.values()].reduce((n, x) => n + x.copied + x.skipped, 0);
    expect(accounted).toBe(members.reduce((n, m) => n + (m.legs[0]?.chunksToReplicate ?? 0), 0));
    // Every migration planned the whole base: without claims, the base would have been copied five times.
    expect(planned).toBeGreaterThan(3 * uniqueBytes);

    for (const m of members) {
      expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
      const leg = m.legs[0];
      // Chunks another migration copied count as replicated for this one too.
      expect(leg?.bytesReplicated).toBe(leg?.bytesToReplicate);
      expect(leg?.chunksReplicated).toBe(leg?.chunksToReplicate);
    }
    expect(members.some((m) => m.history?.some((h) => h.event === 'copies-shared'))).toBe(true);
    for (const vm of CLONES) {
      expect(await sha(join(t.cloud.dataCenterDir('dc-osa'), 'images', `${vm}.img`))).toBe(
        await sha(join(images, `${vm}.img`)),
      );
    }
  });

  it('a copy task whose wait is over (CopiesPending) runs again and completes', async () => {
    const image = join(t.cloud.dataCenterDir('dc-gz'), 'images', 'pending-1.img');
    await writeRawImage(image, {
      size: 32 * MiB,
      extents: [{ offset: 0, length: 12 * MiB, seed: 'copies pending' }],
    });
    const m = await startMigration(t.admin, { imageId: 'pending-1.img', from: 'dc-gz', to: ['dc-jkt'] });
    pendOnce.add(m.id);
    const done = await waitForMigration(t.admin, m.id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(pendOnce.has(m.id)).toBe(false);
    expect(tallies.get(m.id)?.runs).toBe(2);
    expect(await sha(join(t.cloud.dataCenterDir('dc-jkt'), 'images', 'pending-1.img'))).toBe(
      await sha(image),
    );
  });
});
