// Idempotency and races at the API (issue 6 item 7): the same create request sent 20 times at once with one
// Idempotency-Key makes one migration (one batch); every callback sent several times at once — manifest, upload
// complete, destination complete and failed, source released, decision, cancel, retry — changes the migration once.
import { randomUUID } from 'node:crypto';
import { ListExecutionsCommand } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../../cli/client.ts';
import {
  completeDestination,
  completeUpload,
  failDestination,
  releaseSource,
  submitManifest,
} from '../../protocol/api/agent.ts';
import { createBatch } from '../../protocol/api/batches.ts';
import {
  cancelMigration,
  createMigration,
  decideMigration,
  getMigration,
  listMigrations,
  type Migration,
  retryMigration,
} from '../../protocol/api/migrations.ts';
import { getCacheNode, patchCacheNode } from '../../protocol/api/registry.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { waitForMigration } from '../support/migrations.ts';
import {
  migrationAt,
  putManifestFile,
  sendManifest,
  storeAll,
  tinyImage,
  waitForWork,
} from './support/agent-driver.ts';

// The machine may be shared and busy: whole migrations run in some tests.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });
const TIMES = 20;
const TWICE = 5;
let t: TestCloud;

beforeAll(async () => {
  t = await startTestCloud({ agents: false, policyTickMs: 0 });
});
afterAll(() => t?.dispose());

/** Runs `call` n times at once; the HTTP status of each (an ApiError's status when refused). */
async function atOnce(n: number, call: () => Promise<{ status: number }>): Promise<number[]> {
  const settled = await Promise.allSettled(Array.from({ length: n }, call));
  return settled.map((s) => {
    if (s.status === 'fulfilled') return s.value.status;
    if (s.reason instanceof ApiError) return s.reason.status;
    throw s.reason;
  });
}

const full = async (id: string) =>
  (
    await t.admin.call<Migration & { history: { event: string }[] }>(getMigration, {
      params: { migrationId: id },
    })
  ).body;
/** Ends migrations a test leaves running, so their cache node slots are free for the next test. */
const cancel = async (...ids: string[]) => {
  for (const id of ids) await t.admin.call(cancelMigration, { params: { migrationId: id } });
};
/** How many times `event` is in the migration's history. */
const events = async (id: string, event: string) =>
  (await full(id)).history.filter((h) => h.event === event).length;

const request = (vmId: string) => ({
  vmId,
  hostId: 'h1',
  imageId: 'race.img',
  sourceDataCenterId: 'dc-gz',
  destinations: [{ dataCenterId: 'dc-osa' }],
  mode: 'backup' as const,
});

describe('one Idempotency-Key, 20 requests at once', () => {
  it('makes one migration and starts one execution', async () => {
    const key = randomUUID();
    const vmId = `vm-race-${key.slice(0, 8)}`;
    const answers = await Promise.all(
      Array.from({ length: TIMES }, () =>
        t.admin.call<Migration>(createMigration, {
          json: request(vmId),
          headers: { 'idempotency-key': key },
        }),
      ),
    );
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([202]));
    const ids = new Set(answers.map((a) => a.body.id));
    expect(ids.size).toBe(1);
    const [id] = [...ids] as [string];
    const listed = await t.admin.call<{ items: Migration[] }>(listMigrations, {
      query: { vmId, limit: 100 },
    });
    expect(listed.body.items.map((m) => m.id)).toEqual([id]);
    await waitForWork(t, 'dc-gz', id, 'manifest');
    expect(await events(id, 'created')).toBe(1);
    // Resolved once; admission follows the manifest (it needs to know the image's cache space).
    expect(await events(id, 'resolved')).toBe(1);
    const sfn = t.cloud.root.clients.sfn();
    const executions = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: t.cloud.stateMachineArn }),
    );
    expect((executions.executions ?? []).filter((e) => e.name?.startsWith(id))).toHaveLength(1);
    sfn.destroy();
    await cancel(id);
  });

  it('with two different bodies under the key: one body wins everywhere, the other is a 409', async () => {
    const key = randomUUID();
    const statuses = await Promise.all(
      Array.from({ length: TIMES }, (_, i) =>
        t.admin
          .call<Migration>(createMigration, {
            json: request(`vm-body-${i % 2}-${key.slice(0, 8)}`),
            headers: { 'idempotency-key': key },
          })
          .then(
            (r) => ({ status: r.status, id: r.body.id, body: i % 2 }),
            (e: ApiError) => ({ status: e.status, id: undefined, body: i % 2 }),
          ),
      ),
    );
    const won = statuses.filter((s) => s.status === 202);
    expect(new Set(won.map((s) => s.id)).size).toBe(1);
    expect(new Set(won.map((s) => s.body)).size).toBe(1);
    expect(
      statuses.filter((s) => s.status !== 202).every((s) => s.status === 409 && s.body !== won[0]?.body),
    ).toBe(true);
    expect(won.length).toBe(TIMES / 2);
    await cancel(won[0]?.id as string);
  });

  it('makes one batch with each VM once (POST /v1/batches)', async () => {
    const key = randomUUID();
    const vms = [1, 2, 3].map((n) => ({
      vmId: `vm-batch-race-${n}-${key.slice(0, 6)}`,
      hostId: 'h',
      imageId: `b${n}.img`,
    }));
    const answers = await Promise.all(
      Array.from({ length: TIMES }, () =>
        t.admin.call<{ id: string; migrations: { id: string }[] }>(createBatch, {
          json: {
            sourceDataCenterId: 'dc-gz',
            destinations: [{ dataCenterId: 'dc-osa' }],
            vms,
            mode: 'backup',
          },
          headers: { 'idempotency-key': key },
        }),
      ),
    );
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    const members = answers[0]?.body.migrations.map((m) => m.id) ?? [];
    expect(members).toHaveLength(3);
    for (const a of answers) expect(a.body.migrations.map((m) => m.id)).toEqual(members);
    for (const vm of vms) {
      const listed = await t.admin.call<{ items: Migration[] }>(listMigrations, {
        query: { vmId: vm.vmId, limit: 100 },
      });
      expect(listed.body.items).toHaveLength(1);
    }
    for (const id of members) await waitForWork(t, 'dc-gz', id, 'manifest');
    for (const id of members) expect(await events(id, 'created')).toBe(1);
    await cancel(...members);
  });
});

describe('a callback sent several times at once changes the migration once', () => {
  it('the manifest, the upload, the destination and the release of one migration', async () => {
    const d = await migrationAt(t, 'manifest');
    const id = d.migration.id;
    const src = t.agent('dc-gz');
    const dst = t.agent('dc-osa');
    const params = { migrationId: id };

    const ref = await putManifestFile(src, id, d.image.file);
    expect(await atOnce(TWICE, () => src.call(submitManifest, { params, json: ref }))).toEqual(
      Array(TWICE).fill(200),
    );
    await waitForWork(t, 'dc-gz', id, 'upload');
    expect(await events(id, 'manifest')).toBe(1);

    // Every chunk stored and reported, then "complete" five times at once: one answer takes the upload forward;
    // a twin either sees it done (200) or finds the step over (409, which the agent answers by checking again).
    await storeAll(src, id, d.image);
    const completes = await atOnce(TWICE, () => src.call(completeUpload, { params }, [202]));
    expect(completes).toContain(200);
    expect(completes.every((s) => s === 200 || s === 409)).toBe(true);
    await waitForWork(t, 'dc-osa', id, 'download');
    expect(await events(id, 'uploaded')).toBe(1);
    expect((await src.call(completeUpload, { params })).status).toBe(200);

    const done = { params: { ...params, dataCenterId: 'dc-osa' }, json: { sha256: d.image.manifest.sha256 } };
    expect(await atOnce(TWICE, () => dst.call(completeDestination, done))).toEqual(Array(TWICE).fill(200));
    await waitForWork(t, 'dc-gz', id, 'release');
    expect(await events(id, 'destination-completed')).toBe(1);
    expect((await dst.call(completeDestination, done)).status).toBe(200);

    const released = { params, json: { hook: 'ran' } };
    expect(await atOnce(TWICE, () => src.call(releaseSource, released))).toEqual(Array(TWICE).fill(200));
    const end = await waitForMigration(t.admin, id);
    expect(end.status).toBe('COMPLETED');
    expect(await events(id, 'source-released')).toBe(1);
    expect(await events(id, 'completed')).toBe(1);
    expect((await src.call(releaseSource, released)).status).toBe(200);
  });

  it('a destination failure, reported five times at once, fails the leg once', async () => {
    const d = await migrationAt(t, 'download');
    const id = d.migration.id;
    const failed = { params: { migrationId: id, dataCenterId: 'dc-osa' }, json: { reason: 'disk full' } };
    const answers = await atOnce(TWICE, () => t.agent('dc-osa').call(failDestination, failed));
    expect(answers).toContain(200);
    expect(answers.every((s) => s === 200 || s === 409)).toBe(true);
    const end = await waitForMigration(t.admin, id);
    expect(end.status).toBe('FAILED');
    expect(end.legs[0]?.status).toBe('FAILED');
    expect(await events(id, 'destination-failed')).toBe(1);
    expect(await events(id, 'failed')).toBe(1);
  });

  it('cancel and retry, five times at once each: one cancellation, one new attempt', async () => {
    const d = await migrationAt(t, 'manifest');
    const id = d.migration.id;
    const params = { migrationId: id };
    expect(await atOnce(TWICE, () => t.admin.call(cancelMigration, { params }))).toEqual(
      Array(TWICE).fill(200),
    );
    expect(await events(id, 'cancelled')).toBe(1);
    const retries = await atOnce(TWICE, () => t.admin.call(retryMigration, { params, json: {} }));
    expect(retries.filter((s) => s === 202)).toHaveLength(1);
    expect(retries.filter((s) => s !== 202).every((s) => s === 409)).toBe(true);
    await waitForWork(t, 'dc-gz', id, 'manifest');
    const m = await full(id);
    expect(m.attempt).toBe(2);
    expect(await events(id, 'retried')).toBe(1);
    await cancel(id);
  });

  it('a decision, sent five times at once, is taken once', async () => {
    // nrt full (one slot, held by another migration): a migration to dc-osa that asks for suggestions waits for one.
    // The holder is admitted once its manifest is in (admission follows the manifest): it waits for its upload.
    const holder = await migrationAt(t, 'upload', { to: 'dc-osa' });
    const nrt = (
      await t.admin.call<{ capacity: number; reservations: string[] }>(getCacheNode, {
        params: { cacheNodeId: 'nrt' },
      })
    ).body;
    expect(nrt.reservations).toContain(holder.migration.id);
    await t.admin.call(patchCacheNode, {
      params: { cacheNodeId: 'nrt' },
      json: { capacity: nrt.reservations.length },
    });
    let id: string | undefined;
    try {
      const created = await t.admin.call<Migration>(createMigration, {
        json: { ...request(`vm-decide-${randomUUID().slice(0, 8)}`), onCongestion: 'suggest' },
        headers: { 'idempotency-key': randomUUID() },
      });
      const migrationId = created.body.id;
      id = migrationId;
      await waitForWork(t, 'dc-gz', migrationId, 'manifest');
      await sendManifest(t.agent('dc-gz'), migrationId, tinyImage());
      const waiting = await waitForMigration(
        t.admin,
        migrationId,
        (m) => m.status === 'AWAITING_DECISION' && m.decision !== undefined,
      );
      const suggested = waiting.decision?.suggestedDataCenterId as string;
      const answers = await atOnce(TWICE, () =>
        t.admin.call(decideMigration, { params: { migrationId }, json: { accept: true } }),
      );
      expect(answers.filter((s) => s === 200)).toHaveLength(1);
      expect(answers.filter((s) => s !== 200).every((s) => s === 409)).toBe(true);
      expect(await events(migrationId, 'decision')).toBe(1);
      // Admitted at the suggested destination: its upload is asked for.
      await waitForWork(t, 'dc-gz', migrationId, 'upload');
      const after = await full(migrationId);
      expect(after.legs.map((l) => l.dataCenterId)).toEqual([suggested]);
      expect(
        (await t.admin.call(decideMigration, { params: { migrationId }, json: { accept: false } }, [409]))
          .status,
      ).toBe(409);
    } finally {
      await t.admin.call(patchCacheNode, {
        params: { cacheNodeId: 'nrt' },
        json: { capacity: nrt.capacity },
      });
      await cancel(holder.migration.id, ...(id ? [id] : []));
    }
  });
});
