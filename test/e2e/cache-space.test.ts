// Cache space end to end (issue "Cache space and lifecycle"; draft §2 "apply for ... cache space"): a cache node's
// budget is part of admission — a migration whose new chunks do not fit waits (or is offered another destination)
// with a message in bytes, and is admitted once room is made — and the cache collector, running on its timer while
// migrations of overlapping images come and go, brings a node over its high-water mark down to its low-water mark
// without touching a pinned image or a running migration's chunks: every image arrives identical.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketRef } from '../../lambdas/aws/cache-nodes.ts';
import { distinctNonZeroChunks } from '../../lambdas/domain/chunks.ts';
import { loadManifest } from '../../lambdas/workflow/manifest.ts';
import { writeRawImage } from '../../local/sample-images.ts';
import { cancelMigration, type Migration } from '../../protocol/api/migrations.ts';
import { patchCacheNode } from '../../protocol/api/registry.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('cache space', { timeout: 420_000 }, () => {
  let t: TestCloud;
  beforeAll(async () => {
    // The collector passes every 300 ms here (every 15 minutes by default).
    t = await startTestCloud({ agents: true, gcTickMs: 300 });
    await t.cloud.root.deps.registry.putCacheSettings({ graceSeconds: 0, highWater: 0.9, lowWater: 0.75 });
  });
  afterAll(() => t?.dispose());

  const deps = () => t.cloud.root.deps;
  const image = (dc: string, name: string) => join(t.cloud.dataCenterDir(dc), 'images', name);
  const budget = (node: string, budgetBytes: number | null) =>
    t.admin.call(patchCacheNode, { params: { cacheNodeId: node }, json: { budgetBytes } });
  const chunksOf = async (migrationId: string) =>
    distinctNonZeroChunks(await loadManifest(deps(), migrationId)).map((c) => c.sha256);
  const indexedEntries = async (node: string) => (await deps().contentIndex.allEntries(node)).entries;
  /** How many of these chunks the node's index places there and read back intact (their range of their pack). */
  const storedAt = async (node: string, digests: readonly string[]) => {
    const record = await deps().registry.requireCacheNode(node);
    const located = await deps().contentIndex.locate(node, digests);
    const states = await Promise.all(
      digests.map(async (d) => {
        const entry = located.get(d);
        return entry ? deps().storage.inspectEntry(bucketRef(record), entry) : 'missing';
      }),
    );
    return states.filter((s) => s === 'intact').length;
  };

  it('a budget below what a migration brings: QUEUED with the bytes named, admitted when the budget grows', async () => {
    await writeRawImage(image('dc-gz', 'space-1.img'), {
      size: 32 * MiB,
      extents: [{ offset: 0, length: 20 * MiB, seed: 'space one' }],
    });
    await budget('sin', 8 * MiB);
    const started = await startMigration(t.admin, { imageId: 'space-1.img', from: 'dc-gz', to: ['dc-jkt'] });
    const queued = await waitForMigration(
      t.admin,
      started.id,
      (m) => m.status === 'QUEUED' || m.status === 'FAILED',
    );
    expect(queued.status, JSON.stringify(queued.error)).toBe('QUEUED');
    const message = queued.history?.find((h) => h.event === 'queued')?.message ?? '';
    // "cache node sin has 8.0 MiB free of its 8.0 MiB budget (…); this migration brings 20.0 MiB it does not hold:
    // more than the whole budget; waiting until its budget is raised (vmmig node set sin --budget SIZE)"
    expect(message).toMatch(/cache node sin has [\d.]+ MiB free of its 8\.0 MiB budget/);
    // The image's chunks take more than its 20 MiB of data (a chunk's bounds are content-defined).
    expect(Number(/brings ([\d.]+) MiB it does not hold/.exec(message)?.[1])).toBeGreaterThan(8);
    expect(message).toMatch(/--budget/);
    // Raising the budget wakes it: no timer is involved.
    await budget('sin', 256 * MiB);
    const done = await waitForMigration(t.admin, started.id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.attempt).toBe(1);
    expect(await sha(image('dc-jkt', 'space-1.img'))).toBe(await sha(image('dc-gz', 'space-1.img')));
    expect(done.history?.find((h) => h.event === 'admitted')?.message).toMatch(
      /cache space reserved: .*MiB at sin/,
    );
    // Its reservation is given back at the end; what it brought is now held.
    const sin = await deps().registry.requireCacheNode('sin');
    expect(sin.spaceReservations).toEqual({});
    expect((await deps().contentIndex.usage('sin')).bytesHeld).toBeGreaterThanOrEqual(20 * MiB);
    await budget('sin', null);
  });

  it('suggest: short of space, the migration is offered a destination whose node has room, in bytes', async () => {
    await writeRawImage(image('dc-gz', 'space-2.img'), {
      size: 16 * MiB,
      extents: [{ offset: 0, length: 12 * MiB, seed: 'space two' }],
    });
    const held = (await deps().contentIndex.usage('sin')).bytesHeld;
    await budget('sin', held + 4 * MiB);
    const m = await t.admin.call<Migration>(
      (await import('../../protocol/api/migrations.ts')).createMigration,
      {
        json: {
          vmId: 'vm-space-2',
          hostId: 'h1',
          imageId: 'space-2.img',
          sourceDataCenterId: 'dc-gz',
          destinations: [{ dataCenterId: 'dc-jkt' }],
          onCongestion: 'suggest',
        },
        headers: { 'idempotency-key': `space-2-${Date.now()}` },
      },
    );
    const waiting = await waitForMigration(
      t.admin,
      m.body.id,
      (x) => x.status === 'AWAITING_DECISION' || x.status === 'FAILED',
    );
    expect(waiting.status, JSON.stringify(waiting.error)).toBe('AWAITING_DECISION');
    expect(waiting.decision?.reason).toMatch(/cache node sin has [\d.]+ MiB free/);
    expect(waiting.decision?.reason).toMatch(/has room for it/);
    expect(waiting.decision?.suggestedDataCenterId).not.toBe('dc-jkt');
    await t.admin.call(cancelMigration, { params: { migrationId: m.body.id } });
    await budget('sin', null);
  });

  it('the collector brings a full node to its low-water mark while overlapping migrations run; all identical', async () => {
    const node = 'nrt';
    // Old migrations fill nrt: four distinct 6 MiB images to dc-osa, the first pinned there.
    const old: Migration[] = [];
    for (let i = 1; i <= 4; i++) {
      await writeRawImage(image('dc-gz', `old-${i}.img`), {
        size: 8 * MiB,
        extents: [{ offset: 0, length: 6 * MiB, seed: `old image ${i}` }],
      });
      const m = await startMigration(t.admin, { imageId: `old-${i}.img`, from: 'dc-gz', to: ['dc-osa'] });
      old.push(await waitForMigration(t.admin, m.id, undefined, 180_000));
    }
    for (const m of old) expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    const pinned = old[0] as Migration;
    await deps().registry.putPin({ imageId: 'old-1.img', migrationId: pinned.id, cacheNodeIds: [node] });
    const pinnedChunks = await chunksOf(pinned.id);
    const heldBefore = (await deps().contentIndex.usage(node)).bytesHeld;
    expect(heldBefore).toBeGreaterThanOrEqual(24 * MiB);
    // A budget that puts nrt over its high-water mark: 90 % of it is below what it holds.
    const nodeBudget = 26 * MiB;
    expect(heldBefore).toBeGreaterThan(0.9 * nodeBudget);
    await budget(node, nodeBudget);

    // Meanwhile, clones of one base with writes of their own go to dc-osa, two at a time, while the collector runs.
    const clones = ['clone-1', 'clone-2', 'clone-3', 'clone-4'];
    for (const [i, vm] of clones.entries()) {
      await writeRawImage(image('dc-gz', `${vm}.img`), {
        size: 12 * MiB,
        extents: [
          { offset: 0, length: 4 * MiB, seed: 'overlapping base' },
          { offset: (6 + i) * MiB, length: 1 * MiB, seed: `own writes of ${vm}` },
        ],
      });
    }
    const runs: Migration[] = [];
    for (const pair of [clones.slice(0, 2), clones.slice(2)]) {
      const started = await Promise.all(
        pair.map((vm) =>
          startMigration(t.admin, { imageId: `${vm}.img`, from: 'dc-gz', to: ['dc-osa'], vmId: vm }),
        ),
      );
      runs.push(
        ...(await Promise.all(started.map((m) => waitForMigration(t.admin, m.id, undefined, 240_000)))),
      );
    }
    for (const m of runs) expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    for (const vm of clones) {
      expect(await sha(image('dc-osa', `${vm}.img`))).toBe(await sha(image('dc-gz', `${vm}.img`)));
    }

    // While they ran, the collector made room: it freed bytes at nrt.
    const during = await deps().contentIndex.lastCollection<{ freed: { bytes: number } }>(node);
    expect(during).toBeDefined();
    // Now a smaller budget puts nrt over its high-water mark again: the collector brings it down to its low-water
    // mark (75 % of the budget), the pinned image whole, and nothing is left half-deleted.
    const heldAfter = (await deps().contentIndex.usage(node)).bytesHeld;
    const smaller = Math.floor(heldAfter / 0.95);
    await budget(node, smaller);
    const low = 0.75 * smaller;
    const deadline = Date.now() + 120_000;
    let usage = await deps().contentIndex.usage(node);
    while (usage.bytesHeld > low && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300));
      usage = await deps().contentIndex.usage(node);
    }
    expect(usage.bytesHeld).toBeLessThanOrEqual(low);
    expect(await storedAt(node, pinnedChunks)).toBe(pinnedChunks.length);
    console.info(
      `cache-space: nrt held ${(heldBefore / MiB).toFixed(1)} MiB of a ${nodeBudget / MiB} MiB budget; ` +
        `${(heldAfter / MiB).toFixed(1)} MiB after the clones; with a ${(smaller / MiB).toFixed(1)} MiB budget the ` +
        `collector took it to ${(usage.bytesHeld / MiB).toFixed(1)} MiB (low-water ${(low / MiB).toFixed(1)} MiB)`,
    );
    const pending = [...(await indexedEntries(node))].filter((e) => e.deleting);
    expect(pending).toEqual([]);
    // Every migration, old and new, still reads as it ended.
    for (const m of [...old, ...runs]) expect((await getOne(t.admin, m.id)).status).toBe('COMPLETED');
    await budget(node, null);
  });
});
