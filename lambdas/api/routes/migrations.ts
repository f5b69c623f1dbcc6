// CVMM migration routes: create (idempotent with Idempotency-Key), read, list, cancel, retry.
import { createHash } from 'node:crypto';
import { StartExecutionCommand, StopExecutionCommand } from '@aws-sdk/client-sfn';
import * as api from '../../../protocol/api/migrations.ts';
import { conflict, forbidden, invalid, notFound } from '../../domain/errors.ts';
import {
  EMPTY_UPLOAD,
  involvesDataCenter,
  isTerminal,
  type MigrationRecord,
  newLeg,
  newMigrationId,
} from '../../domain/migration.ts';
import { releaseAll } from '../../workflow/lifecycle.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { migrationView } from '../migration-view.ts';
import { type Principal, requireAdmin } from '../principal.ts';

export function canonicalHash(value: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([k, x]) => [k, canonical(x)]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(value)))
    .digest('hex');
}

export function requireMigrationAccess(p: Principal, m: MigrationRecord): void {
  if (p.kind === 'agent' && !involvesDataCenter(m, p.dataCenterId)) {
    // Do not reveal that the id exists.
    throw notFound('migration', m.id);
  }
}

export function migrationRoutes(deps: ApiDeps) {
  const { migrations, registry } = deps;

  /** Starts (or re-finds) the execution of the migration's current attempt. */
  async function startExecution(m: MigrationRecord): Promise<void> {
    const out = await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: deps.stateMachineArn,
        name: `${m.id}-a${m.attempt}`,
        input: JSON.stringify({ migrationId: m.id, attempt: m.attempt }),
      }),
    );
    await migrations.update(m.id, { set: [[['executionArn'], out.executionArn]] }, { requireActive: false });
  }

  return router()
    .openapi(api.createMigration, async (c) => {
      const principal = c.get('principal');
      requireAdmin(principal);
      const body = c.req.valid('json');
      const key = c.req.valid('header')['idempotency-key'];
      body.destinations.forEach((d, i) => {
        if (d.dataCenterId === body.sourceDataCenterId) {
          throw invalid(
            `destinations.${i}.dataCenterId`,
            'is the source data center: a local migration needs no transfer (not supported by this endpoint yet)',
          );
        }
      });
      for (const id of [body.sourceDataCenterId, ...body.destinations.map((d) => d.dataCenterId)]) {
        await registry.requireDataCenter(id);
      }
      let id = newMigrationId();
      if (key) {
        const requestHash = canonicalHash(body);
        const held = await migrations.claimIdempotencyKey(principal.id, key, id, requestHash);
        if (held.requestHash !== requestHash) {
          throw conflict(`Idempotency-Key "${key}" was already used with a different request body`, {
            migrationId: held.migrationId,
          });
        }
        id = held.migrationId;
      }
      const now = new Date().toISOString();
      await migrations.create({
        id,
        status: 'PENDING',
        attempt: 1,
        vmId: body.vmId,
        hostId: body.hostId,
        imageId: body.imageId,
        sourceDataCenterId: body.sourceDataCenterId,
        destinations: body.destinations.map((d) => d.dataCenterId),
        legs: Object.fromEntries(body.destinations.map((d) => [d.dataCenterId, newLeg(d.dataCenterId)])),
        upload: EMPTY_UPLOAD,
        reservedCacheNodes: [],
        createdAt: now,
        updatedAt: now,
      });
      let m = await migrations.require(id);
      if (!m.executionArn) {
        await startExecution(m);
        m = await migrations.require(id);
      }
      c.header('Location', `/v1/migrations/${id}`);
      return c.json(migrationView(m, c.req.url), 202);
    })
    .openapi(api.getMigration, async (c) => {
      const m = await migrations.require(c.req.valid('param').migrationId);
      requireMigrationAccess(c.get('principal'), m);
      return c.json(migrationView(m, c.req.url, await migrations.history(m.id)), 200);
    })
    .openapi(api.listMigrations, async (c) => {
      const { limit, cursor, status, dataCenterId, vmId } = c.req.valid('query');
      const p = c.get('principal');
      if (p.kind === 'agent' && dataCenterId !== undefined && dataCenterId !== p.dataCenterId) {
        throw forbidden(`the agent of "${p.dataCenterId}" may list only its own migrations`);
      }
      const dc = p.kind === 'agent' ? p.dataCenterId : dataCenterId;
      const page = await migrations.list(
        (m) =>
          (status === undefined || m.status === status) &&
          (vmId === undefined || m.vmId === vmId) &&
          (dc === undefined || involvesDataCenter(m, dc)),
        limit,
        cursor,
      );
      return c.json({ ...page, items: page.items.map((m) => migrationView(m, c.req.url)) }, 200);
    })
    .openapi(api.cancelMigration, async (c) => {
      requireAdmin(c.get('principal'));
      const m = await migrations.require(c.req.valid('param').migrationId);
      if (m.status === 'CANCELLED') return c.json(migrationView(m, c.req.url), 200);
      if (isTerminal(m.status))
        throw conflict(`migration ${m.id} is already ${m.status}`, { status: m.status });
      await migrations.update(
        m.id,
        { status: 'CANCELLED' },
        { history: { event: 'cancelled', message: 'cancelled by an admin' } },
      );
      if (m.executionArn) {
        try {
          await deps.sfn.send(
            new StopExecutionCommand({
              executionArn: m.executionArn,
              error: 'Cancelled',
              cause: 'cancelled by an admin',
            }),
          );
        } catch (err) {
          if ((err as Error).name !== 'ExecutionDoesNotExist') throw err;
        }
      }
      await releaseAll(deps, m);
      return c.json(migrationView(await migrations.require(m.id), c.req.url), 200);
    })
    .openapi(api.retryMigration, async (c) => {
      requireAdmin(c.get('principal'));
      const m = await migrations.require(c.req.valid('param').migrationId);
      if (m.status !== 'FAILED' && m.status !== 'CANCELLED') {
        throw conflict(`only a FAILED or CANCELLED migration can be retried; ${m.id} is ${m.status}`, {
          status: m.status,
        });
      }
      if (m.executionArn) {
        try {
          await deps.sfn.send(
            new StopExecutionCommand({ executionArn: m.executionArn, error: 'Superseded', cause: 'retried' }),
          );
        } catch (err) {
          if (!['ExecutionDoesNotExist', 'ExecutionNotRunning'].includes((err as Error).name)) throw err;
        }
      }
      const reopened = m.destinations.filter((d) => m.legs[d]?.status !== 'COMPLETED');
      await migrations.update(
        m.id,
        {
          status: 'PENDING',
          set: [
            [['attempt'], m.attempt + 1],
            ...reopened.map((d) => [['legs', d, 'status'], 'PENDING'] as const),
          ],
          remove: [['error'], ['executionArn'], ...reopened.map((d) => ['legs', d, 'error'])],
        },
        {
          requireActive: false,
          expectStatus: ['FAILED', 'CANCELLED'],
          history: {
            event: 'retried',
            message: `attempt ${m.attempt + 1}: ${reopened.join(', ')} to go; what is done is skipped`,
          },
        },
      );
      await startExecution(await migrations.require(m.id));
      return c.json(migrationView(await migrations.require(m.id), c.req.url), 202);
    });
}
