// CMN admission (draft §3.1 step 4): take a transfer slot at every cache node the migration goes through, all
// or none. When a destination's node is full the request's onCongestion decides: wait (QUEUED until a slot
// frees or the queue timeout passes), suggest (AWAITING_DECISION with an alternative destination), redirect
// (take the alternative at once). A node that stopped being active sends the workflow back to Resolve.

import type { Uses } from '../aws/deps.ts';
import { slotTopic, slotWaitOrder } from '../aws/waiters.ts';
import { suggestAlternative } from '../domain/congestion.ts';
import { cacheNodesOf, type MigrationRecord, newLeg } from '../domain/migration.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { TaskFailure, task } from './task.ts';

export interface AdmitOutput {
  readonly admitted: boolean;
  readonly reresolve: boolean;
  /** 'suggest': wait for an admin's decision on the suggested destination. */
  readonly decision: 'none' | 'suggest';
  /** Queued: the full cache node, and how long the migration may still wait for it (AwaitSlot's timeout). */
  readonly queuedAt: string;
  readonly waitSeconds: number;
}

const result = (fields: Partial<AdmitOutput>): AdmitOutput => ({
  admitted: false,
  reresolve: false,
  decision: 'none',
  queuedAt: '',
  waitSeconds: 0,
  ...fields,
});

export const handler = task(
  TASK_FUNCTIONS.admit,
  async (deps, event: { migrationId: string }): Promise<AdmitOutput> => {
    const m = await deps.migrations.require(event.migrationId);
    // A destination already completed (a retry) moves nothing through its node: it needs no slot there, and that
    // node may have stopped taking work since.
    const nodes = cacheNodesOf({
      ...m,
      legs: Object.fromEntries(Object.entries(m.legs).filter(([, leg]) => leg.status !== 'COMPLETED')),
    });
    const taken: string[] = [];
    for (const node of nodes) {
      const outcome = await deps.slots.reserve(node, m.id);
      if (outcome === 'reserved') {
        taken.push(node);
        continue;
      }
      // All or none: give back what this attempt took (slots held before stay: they are ours anyway).
      await Promise.all(
        taken.filter((n) => !m.reservedCacheNodes.includes(n)).map((n) => deps.slots.release(n, m.id)),
      );
      if (outcome !== 'full') {
        // Resolve keeps a node that is only draining (a migration holding a slot there finishes its work). This
        // one holds none, so forget the choice: otherwise Resolve hands the same node back, round and round.
        await deps.migrations.update(
          m.id,
          {
            remove: [
              ...(m.sourceCacheNodeId === node ? [['sourceCacheNodeId']] : []),
              ...m.destinations
                .filter((d) => m.legs[d]?.cacheNodeId === node && m.legs[d]?.status !== 'COMPLETED')
                .map((d) => ['legs', d, 'cacheNodeId']),
            ],
          },
          {
            history: {
              event: 'rerouting',
              message: `cache node ${node} is ${outcome.replace('_', ' ')}; choosing again`,
            },
          },
        );
        return result({ reresolve: true });
      }
      return congested(deps, m, node);
    }
    const alreadyAdmitted = !['PENDING', 'QUEUED', 'AWAITING_DECISION'].includes(m.status);
    await deps.migrations.update(
      m.id,
      {
        ...(alreadyAdmitted ? {} : { status: 'ADMITTED' as const }),
        ...(nodes.length > 0 ? { addToSet: [[['reservedCacheNodes'], new Set(nodes)] as const] } : {}),
        remove: [['queuedSince'], ['queuedAt']],
      },
      alreadyAdmitted
        ? {}
        : { history: { event: 'admitted', message: `transfer slots taken at ${nodes.join(', ')}` } },
    );
    // Admitted after its queue timed out or a wake-up was missed: its waiter has nothing left to wait for.
    if (m.queuedSince && m.queuedAt)
      await deps.waiters.forget(slotTopic(m.queuedAt), slotWaitOrder(m.queuedSince, m.id));
    return result({ admitted: true });
  },
);

async function congested(
  deps: Uses<'migrations' | 'registry' | 'slots'>,
  m: MigrationRecord,
  nodeId: string,
): Promise<AdmitOutput> {
  // Only a destination can move; a full source node means waiting.
  const leg = m.destinations
    .map((d) => m.legs[d])
    .find((l) => l?.cacheNodeId === nodeId && l.status !== 'COMPLETED');
  if (leg && m.onCongestion !== 'wait') {
    const [dataCenter, cacheNode, nodes, dcs] = await Promise.all([
      deps.registry.requireDataCenter(leg.dataCenterId),
      deps.registry.requireCacheNode(nodeId),
      deps.registry.allCacheNodes(),
      deps.registry.allDataCenters(),
    ]);
    const excluded = new Set([m.sourceDataCenterId, ...m.destinations]);
    const alt = suggestAlternative({ dataCenter, cacheNode }, excluded, dcs, nodes);
    if (alt && m.onCongestion === 'redirect') {
      await deps.migrations.update(
        m.id,
        {
          set: [
            [['destinations'], m.destinations.map((d) => (d === leg.dataCenterId ? alt.dataCenterId : d))],
            [['legs', alt.dataCenterId], newLeg(alt.dataCenterId, m.sourceDataCenterId, leg.format)],
          ],
          remove: [['legs', leg.dataCenterId]],
        },
        {
          history: {
            event: 'redirected',
            message: `${leg.dataCenterId} → ${alt.dataCenterId}: ${alt.reason}`,
          },
        },
      );
      // Resolve marked the old destination as in use; it no longer is (the end of the migration frees only
      // its current data centers), so it could never be removed otherwise.
      await deps.slots.removeActiveMigration(leg.dataCenterId, m.id);
      return result({ reresolve: true });
    }
    if (alt && m.onCongestion === 'suggest') {
      // The status becomes AWAITING_DECISION in AwaitDecision, together with the task token: a client that sees
      // it can decide at once.
      if (!m.decision) {
        await deps.migrations.update(m.id, {
          remove: [['queuedSince'], ['queuedAt']],
          set: [
            [
              ['decision'],
              {
                congestedCacheNode: nodeId,
                congestedDataCenterId: leg.dataCenterId,
                suggestedDataCenterId: alt.dataCenterId,
                suggestedCacheNodeId: alt.cacheNodeId,
                reason: alt.reason,
                since: new Date().toISOString(),
              },
            ],
          ],
        });
      }
      return result({ decision: 'suggest' });
    }
    if (!alt && m.status !== 'QUEUED') {
      await deps.migrations.addHistory(
        m.id,
        'no-alternative',
        `no other data center has a free cache node slot; waiting for ${nodeId}`,
      );
    }
  }
  return queue(deps, m, nodeId);
}

async function queue(deps: Uses<'migrations'>, m: MigrationRecord, nodeId: string): Promise<AdmitOutput> {
  const queuedSince = m.queuedSince ?? new Date().toISOString();
  const waited = (Date.now() - Date.parse(queuedSince)) / 1000;
  if (waited >= m.queueTimeoutSeconds) {
    throw new TaskFailure(
      'CongestionTimeout',
      `cache node ${nodeId} stayed at capacity for ${Math.round(waited)} s (queue timeout ${m.queueTimeoutSeconds} s)`,
    );
  }
  if (m.status !== 'QUEUED' || m.queuedAt !== nodeId) {
    await deps.migrations.update(
      m.id,
      {
        ...(m.status === 'QUEUED' ? {} : { status: 'QUEUED' as const }),
        set: [
          [['queuedSince'], queuedSince],
          [['queuedAt'], nodeId],
        ],
      },
      m.status === 'QUEUED'
        ? {}
        : {
            history: {
              event: 'queued',
              message: `cache node ${nodeId} is at capacity; waiting for a free slot`,
            },
          },
    );
  }
  // AwaitSlot waits at most what is left of the queue timeout; then the migration fails (CongestionTimeout).
  return result({ queuedAt: nodeId, waitSeconds: Math.max(1, Math.ceil(m.queueTimeoutSeconds - waited)) });
}
