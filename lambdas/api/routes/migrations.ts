// CVMM migration routes: create (idempotent with Idempotency-Key), read, list, cancel, retry.
import { createHash } from 'node:crypto';
import { StopExecutionCommand } from '@aws-sdk/client-sfn';
import * as api from '../../../protocol/api/migrations.ts';
import { taskSucceeded } from '../../aws/callbacks.ts';
import { conflict, forbidden, invalid, notFound } from '../../domain/errors.ts';
import {
  involvesDataCenter,
  isTerminal,
  type MigrationRecord,
  newLeg,
  newMigrationId,
} from '../../domain/migration.ts';
import { releaseAll } from '../../workflow/lifecycle.ts';
import { buildMigration, createAndStart, startExecution } from '../../workflow/start-migration.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { migrationView } from '../migration-view.ts';
import { type Principal, requireAdmin } from '../principal.ts';
import { byThisCall } from './agent-common.ts';

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
  const { migrations } = deps;

  return router()
    .openapi(api.createMigration, async (c) => {
      const principal = c.get('principal');
      requireAdmin(principal);
      const body = c.req.valid('json');
      const key = c.req.valid('header')['idempotency-key'];
      const fresh = newMigrationId();
      let id = fresh;
      // Checked against the registry before the key is claimed: a refused request leaves no trace, and the same
      // key can carry the corrected request.
      const record = await buildMigration(deps, id, body, new Date());
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
      // A key held by an earlier request names a migration that may exist already: continue that one.
      const existing = id === fresh ? undefined : await migrations.get(id);
      const m = await createAndStart(deps, existing ?? { ...record, id });
      c.header('Location', `/v1/migrations/${id}`);
      return c.json(migrationView(m, c.req.url), 202);
    })
    .openapi(api.getMigration, async (c) => {
      const { migrationId } = c.req.valid('param');
      const found = await migrations.getWithHistory(migrationId);
      if (!found) throw notFound('migration', migrationId);
      requireMigrationAccess(c.get('principal'), found.migration);
      return c.json(migrationView(found.migration, c.req.url, found.history), 200);
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
      // Cancelled twice at once: one call records it and stops the workflow, the twin answers as to a repeat.
      const cancelled = await byThisCall(
        migrations.update(
          m.id,
          {
            status: 'CANCELLED',
            set: m.destinations
              .filter((d) => m.legs[d]?.status !== 'COMPLETED')
              .map((d) => [['legs', d, 'status'], 'CANCELLED'] as const),
          },
          { history: { event: 'cancelled', message: 'cancelled by an admin' } },
        ),
        async () => (await migrations.get(m.id))?.status === 'CANCELLED',
      );
      if (!cancelled) return c.json(migrationView(await migrations.require(m.id), c.req.url), 200);
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
      const only = (await c.req.json().catch(() => ({}))) as { destinations?: string[] };
      const parsed = api.RetryRequest.safeParse(only ?? {});
      if (!parsed.success)
        throw invalid('destinations', parsed.error.issues.map((i) => i.message).join('; '));
      if (m.status !== 'FAILED' && m.status !== 'CANCELLED') {
        throw conflict(`only a FAILED or CANCELLED migration can be retried; ${m.id} is ${m.status}`, {
          status: m.status,
        });
      }
      const open = m.destinations.filter((d) => m.legs[d]?.status !== 'COMPLETED');
      const chosen = parsed.data.destinations ?? open;
      for (const [i, d] of chosen.entries()) {
        if (!m.destinations.includes(d))
          throw invalid(`destinations.${i}`, `${d} is not a destination of ${m.id}`);
        if (!open.includes(d)) throw invalid(`destinations.${i}`, `${d} already completed`);
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
      // Destinations not chosen keep their state: a FAILED one stays failed until retried itself.
      await migrations.update(
        m.id,
        {
          status: 'PENDING',
          set: [
            [['attempt'], m.attempt + 1],
            ...chosen.map((d) => [['legs', d, 'status'], 'PENDING'] as const),
          ],
          remove: [
            ['error'],
            ['executionArn'],
            ['decision'],
            ['decisionToken'],
            // A new attempt has its own re-upload rounds.
            ['chunksLost'],
            ['healRounds'],
            ...chosen.map((d) => ['legs', d, 'error']),
          ],
        },
        {
          requireActive: false,
          expectStatus: ['FAILED', 'CANCELLED'],
          history: {
            event: 'retried',
            message: `attempt ${m.attempt + 1}: ${chosen.join(', ')} to go; what is done is skipped`,
          },
        },
      );
      const started = await startExecution(deps, await migrations.require(m.id));
      return c.json(migrationView(started, c.req.url), 202);
    })
    .openapi(api.decideMigration, async (c) => {
      requireAdmin(c.get('principal'));
      const { accept } = c.req.valid('json');
      const m = await migrations.require(c.req.valid('param').migrationId);
      if (m.status !== 'AWAITING_DECISION' || !m.decision || !m.decisionToken) {
        throw conflict(`migration ${m.id} is not awaiting a decision (status ${m.status})`, {
          status: m.status,
        });
      }
      const d = m.decision;
      if (accept) {
        const leg = m.legs[d.congestedDataCenterId];
        await migrations.update(
          m.id,
          {
            set: [
              [
                ['destinations'],
                m.destinations.map((x) => (x === d.congestedDataCenterId ? d.suggestedDataCenterId : x)),
              ],
              [
                ['legs', d.suggestedDataCenterId],
                newLeg(d.suggestedDataCenterId, m.sourceDataCenterId, leg?.format),
              ],
            ],
            remove: [['legs', d.congestedDataCenterId], ['decision'], ['decisionToken']],
          },
          {
            expectStatus: ['AWAITING_DECISION'],
            // Two answers at once: the first takes the token, the second is refused (409) and changes nothing.
            expect: [[['decisionToken'], m.decisionToken]],
            history: {
              event: 'decision',
              message: `accepted: ${d.suggestedDataCenterId} instead of ${d.congestedDataCenterId}`,
            },
          },
        );
        // The data center given up is no longer in this migration's way.
        await deps.slots.removeActiveMigration(d.congestedDataCenterId, m.id);
      } else {
        await migrations.update(
          m.id,
          { set: [[['onCongestion'], 'wait']], remove: [['decision'], ['decisionToken']] },
          {
            expectStatus: ['AWAITING_DECISION'],
            expect: [[['decisionToken'], m.decisionToken]],
            history: {
              event: 'decision',
              message: `rejected: keep ${d.congestedDataCenterId} and wait for a slot`,
            },
          },
        );
      }
      if ((await taskSucceeded(deps.sfn, m.decisionToken, { accepted: accept })) === 'stale') {
        throw conflict('the workflow stopped waiting for this decision');
      }
      return c.json(migrationView(await migrations.require(m.id), c.req.url), 200);
    });
}
