// Batch migration routes (draft §4.1).
import * as api from '../../../protocol/api/batches.ts';
import type { BatchRecord } from '../../aws/migration-store.ts';
import { batchMigrationId, newBatchId, progressOf, rollUp } from '../../domain/batch.ts';
import { conflict, notFound } from '../../domain/errors.ts';
import { buildMigration, createAndStart } from '../../workflow/start-migration.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { type Principal, requireAdmin } from '../principal.ts';
import { canonicalHash } from './migrations.ts';

export function batchRoutes(deps: ApiDeps) {
  const { migrations } = deps;

  async function view(batch: BatchRecord, baseUrl: string, p: Principal): Promise<api.Batch> {
    const members = await migrations.getMany(batch.migrationIds);
    if (
      p.kind === 'agent' &&
      batch.sourceDataCenterId !== p.dataCenterId &&
      !batch.destinations.includes(p.dataCenterId)
    ) {
      throw notFound('batch', batch.id);
    }
    const r = rollUp(members);
    return {
      id: batch.id,
      url: new URL(`/v1/batches/${batch.id}`, baseUrl).toString(),
      status: r.status,
      sourceDataCenterId: batch.sourceDataCenterId,
      destinations: [...batch.destinations],
      total: batch.migrationIds.length,
      counts: r.counts,
      bytes: r.bytes,
      ...(r.slowest ? { slowest: r.slowest } : {}),
      migrations: members.map((m) => ({ id: m.id, vmId: m.vmId, status: m.status, progress: progressOf(m) })),
      createdAt: batch.createdAt,
    };
  }

  return router()
    .openapi(api.createBatch, async (c) => {
      const principal = c.get('principal');
      requireAdmin(principal);
      const body = c.req.valid('json');
      const key = c.req.valid('header')['idempotency-key'];
      let id = newBatchId();
      const now = new Date();
      const { vms, ...options } = body;
      // Every member is checked against the registry before the key is claimed or anything is created, so a bad
      // VM entry leaves nothing behind and the same key can carry the corrected request.
      const built = await Promise.all(
        vms.map((vm, i) =>
          buildMigration(deps, batchMigrationId(id, i), { ...options, ...vm, batchId: id }, now),
        ),
      );
      if (key) {
        const requestHash = canonicalHash(body);
        const held = await migrations.claimIdempotencyKey(principal.id, `batch:${key}`, id, requestHash);
        if (held.requestHash !== requestHash) {
          throw conflict(`Idempotency-Key "${key}" was already used with a different request body`, {
            batchId: held.migrationId,
          });
        }
        id = held.migrationId;
      }
      const records = await Promise.all(
        built.map(async (record, i) => {
          const mid = batchMigrationId(id, i);
          return (await migrations.get(mid)) ?? { ...record, id: mid, batchId: id };
        }),
      );
      const batch: BatchRecord = {
        id,
        sourceDataCenterId: body.sourceDataCenterId,
        destinations: body.destinations.map((d) => d.dataCenterId),
        migrationIds: records.map((r) => r.id),
        vmIds: vms.map((v) => v.vmId),
        createdAt: now.toISOString(),
      };
      await migrations.putBatch(batch);
      for (const record of records) await createAndStart(deps, record);
      c.header('Location', `/v1/batches/${id}`);
      return c.json(await view((await migrations.getBatch(id)) ?? batch, c.req.url, principal), 202);
    })
    .openapi(api.getBatch, async (c) => {
      const { batchId } = c.req.valid('param');
      const batch = await migrations.getBatch(batchId);
      if (!batch) throw notFound('batch', batchId);
      return c.json(await view(batch, c.req.url, c.get('principal')), 200);
    });
}
