// Congestion (draft §3.1 step 4) end to end: when the destination's cache node has no free transfer slot the
// request's onCongestion decides — suggest (AWAITING_DECISION, answered with `vmmig decide` or the API),
// redirect (the alternative at once) or wait (QUEUED, failing after the queue timeout). A node that stops being
// active is never admitted, and every terminal path gives the slots back.
import { createHash, randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeSlots } from '../../lambdas/aws/node-slots.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import {
  type CreateMigration,
  cancelMigration,
  createMigration,
  decideMigration,
  type Migration,
  retryMigration,
} from '../../protocol/api/migrations.ts';
import type { CacheNode, DataCenter } from '../../protocol/api/registry.ts';
import { getCacheNode, getDataCenter, patchCacheNode } from '../../protocol/api/registry.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { waitForMigration } from '../support/migrations.ts';

const IMAGE = 'erp-01.img';
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('congestion: suggest, redirect, wait', { timeout: 180_000 }, () => {
  let t: TestCloud;
  let slots: NodeSlots;
  const fillers: string[] = [];

  const start = async (extra: Partial<CreateMigration>) =>
    (
      await t.admin.call<Migration>(createMigration, {
        json: {
          vmId: 'erp-01',
          hostId: 'xen-3',
          imageId: IMAGE,
          sourceDataCenterId: 'dc-gz',
          destinations: [{ dataCenterId: 'dc-osa' }],
          ...extra,
        },
        headers: { 'idempotency-key': randomUUID() },
      })
    ).body;
  const node = async (id: string) =>
    (await t.admin.call<CacheNode>(getCacheNode, { params: { cacheNodeId: id } })).body;
  const dc = async (id: string) =>
    (await t.admin.call<DataCenter>(getDataCenter, { params: { dataCenterId: id } })).body;
  const status = (s: Migration['status']) => (m: Migration) => m.status === s;
  const events = (m: Migration) => m.history?.map((h) => h.event) ?? [];

  /** Takes every free slot of nrt (Osaka's cache node) for other transfers: nrt is congested. */
  async function congestNrt(): Promise<void> {
    for (;;) {
      const id = `other-transfer-${fillers.length}`;
      if ((await slots.reserve('nrt', id)) === 'full') return;
      fillers.push(id);
    }
  }
  async function freeNrt(): Promise<void> {
    for (const id of fillers.splice(0)) await slots.release('nrt', id);
  }
  /** No slot and no data center record is left behind by a migration that ended. */
  async function expectReleased(m: Migration): Promise<void> {
    for (const n of ['hkg', 'nrt', 'sin']) expect((await node(n)).reservations, n).not.toContain(m.id);
    for (const d of ['dc-gz', 'dc-sh', 'dc-osa', 'dc-jkt'])
      expect((await dc(d)).activeMigrations, d).not.toContain(m.id);
  }

  beforeAll(async () => {
    t = await startTestCloud({
      // A destination's VM-ready hook fails while `<image>.fail` lies next to the delivered image.
      agents: { onReady: 'test ! -e "$VMMIG_IMAGE_PATH.fail"' },
      // As on AWS, where each step is its own Lambda invocation, the decision step starts a moment after Admit.
      wrapFunction: (name, handler) =>
        name !== 'await-decision'
          ? handler
          : async (event) => {
              await new Promise((r) => setTimeout(r, 1000));
              return handler(event);
            },
    });
    slots = t.cloud.root.deps.slots;
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-gz'), 'images', IMAGE),
      vmLikeSpec(48 << 20, 12 << 20, 'congestion', 4),
    );
  });
  afterAll(() => t?.dispose());

  it('suggest: waits in AWAITING_DECISION with the alternative and why; `vmmig decide --accept` takes it', async () => {
    await congestNrt();
    const m = await start({ onCongestion: 'suggest' });
    const waiting = await waitForMigration(t.admin, m.id, status('AWAITING_DECISION'));
    expect(waiting.decision).toMatchObject({
      congestedCacheNode: 'nrt',
      congestedDataCenterId: 'dc-osa',
      suggestedDataCenterId: 'dc-sh',
      suggestedCacheNodeId: 'hkg',
    });
    expect(waiting.decision?.reason).toMatch(
      /cache node nrt is at capacity \(8\/8 transfers\); dc-sh \(Shanghai DC\) via hkg has room/,
    );
    expect(waiting.history?.find((h) => h.event === 'suggested')).toMatchObject({
      status: 'AWAITING_DECISION',
    });

    // Answered as soon as the status says a decision is awaited.
    const cli = await t.vmmig(['decide', m.id, '--accept', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ id: m.id, legs: [{ dataCenterId: 'dc-sh' }] });

    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.legs).toMatchObject([{ dataCenterId: 'dc-sh', cacheNodeId: 'hkg', status: 'COMPLETED' }]);
    expect(done.history?.find((h) => h.event === 'decision')?.message).toBe(
      'accepted: dc-sh instead of dc-osa',
    );
    const src = join(t.cloud.dataCenterDir('dc-gz'), 'images', IMAGE);
    expect(await sha(join(t.cloud.dataCenterDir('dc-sh'), 'images', IMAGE))).toBe(await sha(src));
    await expectReleased(done); // dc-osa, given up, is no longer held either
    // Once decided there is nothing left to decide.
    const again = await t.vmmig(['decide', m.id, '--reject']);
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/not awaiting a decision \(status COMPLETED\)/);
  });

  it('suggest, rejected through the API: keeps its destination, QUEUED until a slot frees, then completes there', async () => {
    await congestNrt();
    const m = await start({ onCongestion: 'suggest', vmId: 'erp-02' });
    await waitForMigration(t.admin, m.id, status('AWAITING_DECISION'));
    const answered = await t.admin.call<Migration>(decideMigration, {
      params: { migrationId: m.id },
      json: { accept: false },
    });
    expect(answered.body).toMatchObject({ onCongestion: 'wait', legs: [{ dataCenterId: 'dc-osa' }] });
    expect(answered.body.decision).toBeUndefined();
    const queued = await waitForMigration(t.admin, m.id, status('QUEUED'));
    expect(events(queued)).toEqual(expect.arrayContaining(['suggested', 'decision', 'queued']));
    expect((await node('nrt')).reservations).not.toContain(m.id);

    await freeNrt();
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.legs).toMatchObject([{ dataCenterId: 'dc-osa', cacheNodeId: 'nrt', status: 'COMPLETED' }]);
    await expectReleased(done);
  });

  it('redirect: takes the alternative at once and records it in the history', async () => {
    await congestNrt();
    const m = await start({ onCongestion: 'redirect', vmId: 'erp-03' });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.legs).toMatchObject([{ dataCenterId: 'dc-sh', cacheNodeId: 'hkg', status: 'COMPLETED' }]);
    expect(events(done)).not.toContain('suggested');
    expect(done.history?.find((h) => h.event === 'redirected')?.message).toMatch(
      /^dc-osa → dc-sh: cache node nrt is at capacity/,
    );
    // dc-osa is no longer part of it: nothing keeps it registered as in use.
    await expectReleased(done);
  });

  it('wait: QUEUED while the node is full, admitted once capacity grows (`vmmig node set --capacity`)', async () => {
    await congestNrt();
    const m = await start({ onCongestion: 'wait', vmId: 'erp-04' });
    const queued = await waitForMigration(t.admin, m.id, status('QUEUED'));
    expect(queued.history?.find((h) => h.event === 'queued')?.message).toBe(
      'cache node nrt is at capacity; waiting for a free slot',
    );
    expect((await node('hkg')).reservations).not.toContain(m.id); // all or none
    const more = await t.vmmig(['node', 'set', 'nrt', '--capacity', String(fillers.length + 1)]);
    expect(more.code, more.stderr).toBe(0);
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.legs[0]).toMatchObject({ dataCenterId: 'dc-osa', cacheNodeId: 'nrt' });
    await expectReleased(done);
    await t.admin.call(patchCacheNode, { params: { cacheNodeId: 'nrt' }, json: { capacity: 8 } });
  });

  it('wait: fails with CongestionTimeout after queueTimeoutSeconds, giving every slot back', async () => {
    await congestNrt();
    const m = await start({ onCongestion: 'wait', queueTimeoutSeconds: 1, vmId: 'erp-05' });
    const failed = await waitForMigration(t.admin, m.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.error?.code).toBe('CongestionTimeout');
    expect(failed.error?.message).toMatch(
      /^cache node nrt stayed at capacity for \d+ s \(queue timeout 1 s\)$/,
    );
    expect(events(failed)).toEqual(expect.arrayContaining(['queued', 'failed']));
    await expectReleased(failed);
  });

  it('cancel gives the slots back from AWAITING_DECISION and from QUEUED', async () => {
    await congestNrt();
    const a = await start({ onCongestion: 'suggest', vmId: 'erp-06' });
    const b = await start({ onCongestion: 'wait', vmId: 'erp-07' });
    await waitForMigration(t.admin, a.id, status('AWAITING_DECISION'));
    await waitForMigration(t.admin, b.id, status('QUEUED'));
    for (const m of [a, b]) {
      const out = await t.admin.call<Migration>(cancelMigration, { params: { migrationId: m.id } });
      expect(out.body.status).toBe('CANCELLED');
      await expectReleased(out.body);
    }
    await expect(
      t.admin.call(decideMigration, { params: { migrationId: a.id }, json: { accept: true } }),
    ).rejects.toMatchObject({ status: 409 });
    await freeNrt();
  });

  it.each(['draining', 'down'])(
    'a queued migration whose cache node goes %s is never admitted there: it goes round it',
    async (state) => {
      await congestNrt();
      const m = await start({ onCongestion: 'wait', vmId: `erp-${state}` });
      await waitForMigration(t.admin, m.id, status('QUEUED'));
      const set = await t.vmmig(['node', 'set', 'nrt', '--status', state]);
      expect(set.code, set.stderr).toBe(0);
      await freeNrt(); // room at nrt now, but it is not active: it takes no more
      const done = await waitForMigration(t.admin, m.id);
      await t.admin.call(patchCacheNode, { params: { cacheNodeId: 'nrt' }, json: { status: 'active' } });
      expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
      // Osaka's next nearest active node.
      expect(done.legs[0]).toMatchObject({ dataCenterId: 'dc-osa', cacheNodeId: 'hkg', status: 'COMPLETED' });
      expect(events(done)).toContain('rerouting');
      expect(events(done).filter((e) => e === 'rerouting')).toHaveLength(1);
      await expectReleased(done);
    },
  );

  it("a retry does not ask a completed destination's node for a slot: that node may be draining by then", async () => {
    const flag = join(t.cloud.dataCenterDir('dc-jkt'), 'images', `${IMAGE}.fail`);
    await writeFile(flag, '');
    const m = await start({
      vmId: 'erp-09',
      destinations: [{ dataCenterId: 'dc-osa' }, { dataCenterId: 'dc-jkt' }],
    });
    const failed = await waitForMigration(t.admin, m.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.legs.map((l) => [l.dataCenterId, l.cacheNodeId, l.status])).toEqual([
      ['dc-osa', 'nrt', 'COMPLETED'],
      ['dc-jkt', 'sin', 'FAILED'],
    ]);
    await rm(flag);
    await t.admin.call(patchCacheNode, { params: { cacheNodeId: 'nrt' }, json: { status: 'draining' } });
    try {
      await t.admin.call(retryMigration, { params: { migrationId: m.id }, json: {} });
      const done = await waitForMigration(t.admin, m.id);
      expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
      expect(done.legs.map((l) => [l.dataCenterId, l.cacheNodeId, l.status])).toEqual([
        ['dc-osa', 'nrt', 'COMPLETED'],
        ['dc-jkt', 'sin', 'COMPLETED'],
      ]);
      expect(events(done)).not.toContain('rerouting');
      await expectReleased(done);
    } finally {
      await t.admin.call(patchCacheNode, { params: { cacheNodeId: 'nrt' }, json: { status: 'active' } });
    }
  });
});
