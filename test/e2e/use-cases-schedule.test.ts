// Application-triggered and scheduled migrations (draft §3.1 step 1) end to end: a start time (PENDING until
// then), the triggering application in the history, and backup policies that run on their own — the local
// cloud's timer calls run-policies as EventBridge Scheduler would on AWS. A slot runs once however many ticks
// see it, and a policy whose last backup still runs skips the slot.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyMigrationId, runDuePolicies } from '../../lambdas/workflow/run-policies.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { listMigrations, type Migration } from '../../protocol/api/migrations.ts';
import {
  type BackupPolicy,
  type BackupPolicyInput,
  deletePolicy,
  getPolicy,
  putPolicy,
} from '../../protocol/api/policies.ts';
import { deleteDataCenter, putDataCenter } from '../../protocol/api/registry.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, waitForMigration } from '../support/migrations.ts';

const IMAGE = 'hr-01.img';
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('scheduled migrations and backup policies', { timeout: 180_000 }, () => {
  let t: TestCloud;

  const policy = async (id: string) =>
    (await t.admin.call<BackupPolicy>(getPolicy, { params: { policyId: id } })).body;
  const put = async (id: string, input: Partial<BackupPolicyInput>) =>
    (
      await t.admin.call<BackupPolicy>(putPolicy, {
        params: { policyId: id },
        json: {
          vmId: id,
          hostId: 'kvm-2',
          imageId: IMAGE,
          sourceDataCenterId: 'dc-gz',
          destinations: [{ dataCenterId: 'dc-jkt' }],
          intervalMinutes: 1440,
          ...input,
        },
      })
    ).body;
  const migrationsOf = async (vmId: string) =>
    (await t.admin.call<{ items: Migration[] }>(listMigrations, { query: { vmId, limit: 100 } })).body.items;
  /** Polls the policy until `done` holds (the timer runs it on its own). */
  async function waitForPolicy(id: string, done: (p: BackupPolicy) => boolean): Promise<BackupPolicy> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const p = await policy(id);
      if (done(p)) return p;
      if (Date.now() > deadline) throw new Error(`policy ${id} never got there: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  beforeAll(async () => {
    t = await startTestCloud({ agents: true, policyTickMs: 250 });
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-gz'), 'images', IMAGE),
      vmLikeSpec(48 << 20, 12 << 20, 'hr', 4),
    );
  });
  afterAll(() => t?.dispose());

  it('`vmmig migrate --start-at … --application …` waits in PENDING until its time, then runs; the application is in the history', async () => {
    const startAt = new Date(Date.now() + 6000).toISOString();
    const cli = await t.vmmig([
      'migrate',
      '--vm',
      'hr-01',
      '--image-id',
      IMAGE,
      '--from',
      'dc-gz',
      '--to',
      'dc-osa',
      '--start-at',
      startAt,
      '--application',
      'hr-portal',
      '--json',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const created = JSON.parse(cli.stdout) as Migration;
    expect(created).toMatchObject({ status: 'PENDING', startAt, application: 'hr-portal' });

    // The migration holds its data centers from the start: removing one is refused while it waits.
    const removal = await t.admin
      .call(deleteDataCenter, { params: { dataCenterId: 'dc-osa' } })
      .catch((err: { status: number; message: string }) => err);
    expect(removal).toMatchObject({ status: 409, message: expect.stringContaining(created.id) });

    // Nothing happens before the start time.
    while (Date.now() < Date.parse(startAt) - 500) {
      const m = await getOne(t.admin, created.id);
      expect(m.status).toBe('PENDING');
      expect(m.history?.map((h) => h.event)).toEqual(['created', 'requested']);
      await new Promise((r) => setTimeout(r, 250));
    }
    const done = await waitForMigration(t.admin, created.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.application).toBe('hr-portal');
    expect(done.history?.find((h) => h.event === 'requested')?.message).toBe(
      `triggered by application hr-portal; scheduled for ${startAt}`,
    );
    const resolved = done.history?.find((h) => h.event === 'resolved');
    expect(Date.parse(resolved?.at ?? '')).toBeGreaterThanOrEqual(Date.parse(startAt));
  });

  it('a start 40 days ahead stays scheduled while nearer starts come due and run', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const far = new Date(Date.now() + 40 * 86400_000).toISOString();
      const cli = await t.vmmig(
        [
          'migrate',
          '--vm',
          'hr-far',
          '--image-id',
          IMAGE,
          '--from',
          'dc-gz',
          '--to',
          'dc-jkt',
          '--mode',
          'backup',
        ].concat(['--start-at', far, '--json']),
      );
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stderr).not.toMatch(/TimeoutOverflowWarning/);
      const waiting = JSON.parse(cli.stdout) as Migration;
      expect(waiting).toMatchObject({ status: 'PENDING', startAt: far });
      // A start due in a moment: once it has run, the scheduler has looked at the due starts after it was due.
      const soon = new Date(Date.now() + 1000).toISOString();
      const near = await t.vmmig(
        [
          'migrate',
          '--vm',
          'hr-near',
          '--image-id',
          IMAGE,
          '--from',
          'dc-gz',
          '--to',
          'dc-osa',
          '--mode',
          'backup',
        ].concat(['--start-at', soon, '--json']),
      );
      expect(near.code, near.stderr).toBe(0);
      const ran = await waitForMigration(t.admin, (JSON.parse(near.stdout) as Migration).id);
      expect(ran.status, JSON.stringify(ran.error)).toBe('COMPLETED');
      const still = await getOne(t.admin, waiting.id);
      expect(still.status).toBe('PENDING');
      expect(still.history?.map((h) => h.event)).toEqual(['created', 'requested']);
      expect(warnings.filter((w) => /TimeoutOverflow/.test(w))).toEqual([]);
      const cancelled = await t.vmmig(['cancel', waiting.id]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a backup policy (`vmmig policy put`) runs on its own: a backup migration to its destinations', async () => {
    const cli = await t.vmmig([
      'policy',
      'put',
      'payroll',
      '--vm',
      'payroll',
      '--image-id',
      IMAGE,
      '--from',
      'dc-gz',
      '--to',
      'dc-jkt',
      '--every',
      '1d',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const created = JSON.parse(cli.stdout) as BackupPolicy;
    expect(created).toMatchObject({ id: 'payroll', intervalMinutes: 1440, enabled: true });

    const ran = await waitForPolicy('payroll', (p) => p.lastRun?.migrationId !== undefined);
    const id = ran.lastRun?.migrationId as string;
    expect(id).toBe(policyMigrationId('payroll', created.nextRunAt));
    expect(ran.nextRunAt).toBe(new Date(Date.parse(created.nextRunAt) + 86_400_000).toISOString());
    const done = await waitForMigration(t.admin, id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done).toMatchObject({
      mode: 'backup',
      policyId: 'payroll',
      vmId: 'payroll',
      sourceReleased: false,
    });
    expect(done.history?.find((h) => h.event === 'requested')?.message).toBe('run of backup policy payroll');
    const src = join(t.cloud.dataCenterDir('dc-gz'), 'images', IMAGE);
    expect(await sha(join(t.cloud.dataCenterDir('dc-jkt'), 'images', IMAGE))).toBe(await sha(src));

    const ls = await t.vmmig(['policy', 'ls']);
    expect(JSON.parse(ls.stdout.trim().split('\n')[0] as string)).toMatchObject({
      id: 'payroll',
      lastRun: { migrationId: id, status: 'COMPLETED' },
    });
    expect((await migrationsOf('payroll')).map((m) => m.id)).toEqual([id]);
    const rm = await t.vmmig(['policy', 'rm', 'payroll']);
    expect(rm.code, rm.stderr).toBe(0);
  });

  it('a slot runs once, however many schedulers tick at its time', async () => {
    const slot = new Date(Date.now() + 1500).toISOString();
    await put('ledger', { firstRunAt: slot });
    await new Promise((r) => setTimeout(r, Date.parse(slot) - Date.now()));
    // Four more schedulers race the local cloud's own timer for the same slot.
    const reports = await Promise.all(Array.from({ length: 4 }, () => runDuePolicies(t.cloud.root.deps)));
    const started = reports.flatMap((r) => r.started).filter((s) => s.policyId === 'ledger');
    expect(started.length).toBeLessThanOrEqual(1);
    const ran = await waitForPolicy('ledger', (p) => p.lastRun?.migrationId !== undefined);
    const id = policyMigrationId('ledger', slot);
    expect(ran.lastRun?.migrationId).toBe(id);
    expect(ran.nextRunAt).toBe(new Date(Date.parse(slot) + 86_400_000).toISOString());
    const done = await waitForMigration(t.admin, id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect((await migrationsOf('ledger')).map((m) => m.id)).toEqual([id]);
    // One workflow ran it: one of each step in the history.
    expect(done.history?.filter((h) => h.event === 'resolved')).toHaveLength(1);
    expect(done.history?.filter((h) => h.event === 'completed')).toHaveLength(1);
    await t.admin.call(deletePolicy, { params: { policyId: 'ledger' } });
  });

  it('a policy whose last backup still runs skips the slot; the backup goes on when the policy is removed', async () => {
    // Jakarta's cache node is full, so the backup waits in QUEUED.
    const slots = t.cloud.root.deps.slots;
    const fillers: string[] = [];
    while ((await slots.reserve('sin', `other-${fillers.length}`)) === 'reserved')
      fillers.push(`other-${fillers.length}`);
    try {
      await put('crm', {});
      const first = await waitForPolicy('crm', (p) => p.lastRun?.migrationId !== undefined);
      const backup = first.lastRun?.migrationId as string;
      await waitForMigration(t.admin, backup, (m) => m.status === 'QUEUED');

      // The next slot comes (here: moved to now) while that backup is still queued.
      const moved = await put('crm', { firstRunAt: new Date().toISOString() });
      expect(moved.lastRun?.migrationId).toBe(backup);
      const skipped = await waitForPolicy('crm', (p) => p.lastRun?.skipped !== undefined);
      expect(skipped.lastRun).toMatchObject({
        migrationId: backup,
        skipped: `backup ${backup} is still QUEUED`,
        status: 'QUEUED',
      });
      expect(Date.parse(skipped.nextRunAt)).toBeGreaterThan(Date.now());
      expect((await migrationsOf('crm')).map((m) => m.id)).toEqual([backup]);

      await t.admin.call(deletePolicy, { params: { policyId: 'crm' } });
    } finally {
      for (const f of fillers) await slots.release('sin', f);
    }
    const list = await migrationsOf('crm');
    const done = await waitForMigration(t.admin, list[0]?.id as string);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
  });

  it('a policy that cannot start records why and keeps its schedule; bad input is refused', async () => {
    await t.admin.call(putDataCenter, {
      params: { dataCenterId: 'dc-tmp' },
      json: { name: 'Temporary DC', address: '10.9.0.1', location: { lat: 13.75, lon: 100.5 } },
    });
    const slot = new Date(Date.now() + 1500).toISOString();
    await put('archive', { destinations: [{ dataCenterId: 'dc-tmp' }], firstRunAt: slot });
    await t.admin.call(deleteDataCenter, { params: { dataCenterId: 'dc-tmp' } });
    const p = await waitForPolicy('archive', (x) => x.lastRun !== undefined);
    expect(p.lastRun?.skipped).toBe(
      'could not start: destinations.0.dataCenterId: unknown data center "dc-tmp"',
    );
    expect(p.lastRun?.migrationId).toBeUndefined();
    expect(p.nextRunAt).toBe(new Date(Date.parse(slot) + 86_400_000).toISOString());
    await t.admin.call(deletePolicy, { params: { policyId: 'archive' } });

    const bad = await t.vmmig([
      'policy',
      'put',
      'bad',
      '--vm',
      'x',
      '--image-id',
      IMAGE,
      '--from',
      'dc-gz',
      '--to',
      'dc-nowhere',
      '--every',
      '1h',
    ]);
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr).toContain('destinations.0.dataCenterId: unknown data center "dc-nowhere"');
    const badTime = await t.vmmig([
      'policy',
      'put',
      'bad',
      '--vm',
      'x',
      '--image-id',
      IMAGE,
      '--from',
      'dc-gz',
      '--to',
      'dc-jkt',
      '--every',
      '1h',
      '--first-run',
      'next tuesday',
    ]);
    expect(badTime.code, badTime.stderr).toBe(2);
    expect(badTime.stderr).toMatch(/--first-run/);
  });
});
