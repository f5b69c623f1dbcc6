// The real ASL file on the local Step Functions service with a fault injected into a task: the task is retried
// with backoff, then the failure is caught into FAILED with its cause and every slot is given back; `retry`
// then completes the migration, skipping what was done.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransientError } from '../../lambdas/workflow/task.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { retryMigration } from '../../protocol/api/migrations.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

describe('workflow fault handling', () => {
  let t: TestCloud;
  let failCopies = true;
  const copyAttempts: number[] = [];

  beforeAll(async () => {
    t = await startTestCloud({
      agents: true,
      wrapFunction: (name, handler) =>
        name !== 'copy-batch'
          ? handler
          : async (event) => {
              copyAttempts.push(Date.now());
              if (failCopies) throw new TransientError('injected: destination cache node unreachable');
              return handler(event);
            },
    });
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-gz'), 'images', 'db-01.raw'),
      vmLikeSpec(96 << 20, 24 << 20, 'faults'),
    );
  });
  afterAll(() => t?.dispose());

  it('retries a failing task, then records FAILED with the cause and releases every slot', async () => {
    const m = await startMigration(t.admin, { imageId: 'db-01.raw', from: 'dc-gz', to: ['dc-osa'] });
    const failed = await waitForMigration(t.admin, m.id);
    expect(failed.status).toBe('FAILED');
    // One attempt plus the six retries the ASL allows CopyBatch.
    expect(copyAttempts).toHaveLength(7);
    const gaps = copyAttempts.slice(1).map((at, i) => at - (copyAttempts[i] as number));
    expect(gaps.at(-1)).toBeGreaterThan(gaps[0] as number); // backoff grows
    expect(failed.error).toMatchObject({
      code: 'TransientError',
      message: 'injected: destination cache node unreachable',
    });
    expect(failed.history?.at(-1)).toMatchObject({ event: 'failed', status: 'FAILED' });
    const nodes = await t.admin.call<{ items: { id: string; reservations: string[] }[] }>({
      method: 'get',
      path: '/v1/cache-nodes',
    });
    expect(nodes.body.items.flatMap((n) => n.reservations)).not.toContain(m.id);
    const dc = await t.admin.call<{ activeMigrations: string[] }>(
      { method: 'get', path: '/v1/data-centers/{id}' },
      { params: { id: 'dc-gz' } },
    );
    expect(dc.body.activeMigrations).not.toContain(m.id);
  });

  it('retry completes it without uploading again', async () => {
    failCopies = false;
    const list = await t.admin.call<{ items: { id: string }[] }>(
      { method: 'get', path: '/v1/migrations' },
      { query: { status: 'FAILED' } },
    );
    const id = list.body.items[0]?.id as string;
    const again = await t.admin.call<{ status: string; attempt: number }>(retryMigration, {
      params: { migrationId: id },
    });
    expect(again.status).toBe(202);
    expect(again.body.attempt).toBe(2);
    const done = await waitForMigration(t.admin, id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.upload.chunksTotal).toBe(0); // uploaded in attempt 1, cached since
    expect(done.history?.map((h) => h.event)).toContain('retried');
  });
});
