// CMN admission (draft §3.1 step 4): take a transfer slot at every cache node the migration goes through, and the
// cache space it needs there (draft §2: the RMG applies "for data channel and cache space"), all or none. The
// space a node must give is what the image brings that the node does not hold: every chunk at a destination's
// node, the chunks held nowhere at the source's node (the manifest is known by now). When a destination's node
// is full or short of space the request's onCongestion decides: wait (QUEUED until a slot frees or room is made,
// or the queue timeout passes), suggest (AWAITING_DECISION with an alternative destination), redirect (take the
// alternative at once). A node that stopped being active sends the workflow back to Resolve.

import { formatBytes } from '../../protocol/bytes.ts';
import type { Uses } from '../aws/deps.ts';
import { slotTopic, slotWaitOrder, spaceTopic } from '../aws/waiters.ts';
import { type SpaceVerdict, spaceFor } from '../domain/cache-space.ts';
import { distinctNonZeroChunks } from '../domain/chunks.ts';
import { suggestAlternative } from '../domain/congestion.ts';
import { cacheNodesOf, type MigrationRecord, newLeg } from '../domain/migration.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { loadManifest } from './manifest.ts';
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
    // Cache space, now that every slot is held: all or none again.
    const needs = m.image ? await spaceNeeds(deps, m, nodes) : new Map<string, number>();
    const usage = new Map(
      await Promise.all(
        [...needs.keys()].map(async (n) => [n, (await deps.contentIndex.usage(n)).bytesHeld] as const),
      ),
    );
    const spaceTaken: string[] = [];
    for (const [node, need] of needs) {
      if (need === 0) continue;
      let verdict: SpaceVerdict | undefined;
      const { reserved } = await deps.slots.reserveSpace(node, m.id, need, (item) => {
        verdict = spaceFor({ ...item, bytesHeld: usage.get(node) ?? 0 }, m.id, need);
        return verdict.fits;
      });
      if (reserved) {
        spaceTaken.push(node);
        continue;
      }
      await Promise.all([
        ...taken.filter((n) => !m.reservedCacheNodes.includes(n)).map((n) => deps.slots.release(n, m.id)),
        ...spaceTaken.map((n) => deps.slots.releaseSpace(n, m.id)),
      ]);
      const short = verdict as SpaceVerdict;
      return congested(deps, m, node, { need, verdict: short });
    }
    const alreadyAdmitted = !['PENDING', 'QUEUED', 'AWAITING_DECISION'].includes(m.status);
    await deps.migrations.update(
      m.id,
      {
        ...(alreadyAdmitted ? {} : { status: 'ADMITTED' as const }),
        ...(nodes.length > 0 ? { addToSet: [[['reservedCacheNodes'], new Set(nodes)] as const] } : {}),
        remove: [['queuedSince'], ['queuedAt'], ['queuedFor'], ['queuedNeed']],
      },
      alreadyAdmitted
        ? {}
        : {
            history: {
              event: 'admitted',
              message:
                `transfer slots taken at ${nodes.join(', ')}` +
                ([...needs.values()].some((n) => n > 0)
                  ? `; cache space reserved: ${[...needs]
                      .filter(([, n]) => n > 0)
                      .map(([node, n]) => `${formatBytes(n)} at ${node}`)
                      .join(', ')}`
                  : ''),
            },
          },
    );
    // Admitted after its queue timed out or a wake-up was missed: its waiter has nothing left to wait for.
    if (m.queuedSince && m.queuedAt)
      await deps.waiters.forget(
        (m.queuedFor === 'space' ? spaceTopic : slotTopic)(m.queuedAt),
        slotWaitOrder(m.queuedSince, m.id),
      );
    return result({ admitted: true });
  },
);

/** Short of space: what the migration needs at the node, and what the node has. */
interface SpaceShortage {
  readonly need: number;
  readonly verdict: SpaceVerdict;
}

/**
 * Cache space each node must give: at a destination's node every distinct chunk it does not hold; at the
 * source's node the chunks no usable node holds (they are uploaded there). A node both gets the union.
 */
async function spaceNeeds(
  deps: Uses<'contentIndex' | 'registry' | 'storage' | 'control'>,
  m: MigrationRecord,
  nodes: readonly string[],
): Promise<Map<string, number>> {
  const chunks = distinctNonZeroChunks(await loadManifest(deps, m.id));
  const usable = (await deps.registry.allCacheNodes()).filter((n) => n.status !== 'down').map((n) => n.id);
  const holders = await deps.contentIndex.holders(
    chunks.map((c) => c.sha256),
    [...new Set([...usable, ...nodes])],
  );
  const destinations = new Set(
    m.destinations
      .map((d) => m.legs[d])
      .filter((l) => l !== undefined && l.status !== 'COMPLETED' && !l.local)
      .map((l) => l?.cacheNodeId)
      .filter((n): n is string => n !== undefined),
  );
  const needs = new Map<string, number>();
  for (const node of nodes) {
    let bytes = 0;
    for (const c of chunks) {
      const held = holders.get(c.sha256);
      if (held?.has(node)) continue;
      const arrives = destinations.has(node) || (node === m.sourceCacheNodeId && !held);
      if (arrives) bytes += c.length;
    }
    needs.set(node, bytes);
  }
  return needs;
}

async function congested(
  deps: Uses<'migrations' | 'registry' | 'slots' | 'contentIndex'>,
  m: MigrationRecord,
  nodeId: string,
  space?: SpaceShortage,
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
    const alt = suggestAlternative(
      { dataCenter, cacheNode },
      excluded,
      dcs,
      nodes,
      space
        ? {
            needBytes: space.need,
            shortage: space.verdict.message,
            held: new Map(
              await Promise.all(
                nodes
                  .filter((n) => n.budgetBytes !== undefined)
                  .map(async (n) => [n.id, (await deps.contentIndex.usage(n.id)).bytesHeld] as const),
              ),
            ),
          }
        : undefined,
    );
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
        space
          ? `no other data center's cache node has ${formatBytes(space.need)} free; waiting for room at ${nodeId}`
          : `no other data center has a free cache node slot; waiting for ${nodeId}`,
      );
    }
  }
  return queue(deps, m, nodeId, space);
}

async function queue(
  deps: Uses<'migrations' | 'slots'>,
  m: MigrationRecord,
  nodeId: string,
  space?: SpaceShortage,
): Promise<AdmitOutput> {
  const queuedSince = m.queuedSince ?? new Date().toISOString();
  const waited = (Date.now() - Date.parse(queuedSince)) / 1000;
  if (waited >= m.queueTimeoutSeconds) {
    throw new TaskFailure(
      'CongestionTimeout',
      space
        ? `${space.verdict.message}; no room was made within the queue timeout (${m.queueTimeoutSeconds} s)`
        : `cache node ${nodeId} stayed at capacity for ${Math.round(waited)} s (queue timeout ${m.queueTimeoutSeconds} s)`,
    );
  }
  const queuedFor = space ? ('space' as const) : ('slot' as const);
  // The collector makes at least this much room at the node (held bytes must fall to budget − wanted).
  if (space) await deps.slots.wantSpace(nodeId, m.id, space.need + space.verdict.reservedByOthers);
  if (m.status !== 'QUEUED' || m.queuedAt !== nodeId || (m.queuedFor ?? 'slot') !== queuedFor) {
    await deps.migrations.update(
      m.id,
      {
        ...(m.status === 'QUEUED' ? {} : { status: 'QUEUED' as const }),
        set: [
          [['queuedSince'], queuedSince],
          [['queuedAt'], nodeId],
          [['queuedFor'], queuedFor],
          ...(space ? [[['queuedNeed'], space.need] as const] : []),
        ],
        ...(space ? {} : { remove: [['queuedNeed']] }),
      },
      {
        history: {
          event: 'queued',
          message: space
            ? space.verdict.never
              ? `${space.verdict.message}; waiting until its budget is raised (vmmig node set ${nodeId} --budget SIZE)`
              : `${space.verdict.message}; waiting for room (the cache collector evicts unreferenced chunks)`
            : `cache node ${nodeId} is at capacity; waiting for a free slot`,
        },
      },
    );
  }
  // AwaitSlot waits at most what is left of the queue timeout; then the migration fails (CongestionTimeout).
  return result({ queuedAt: nodeId, waitSeconds: Math.max(1, Math.ceil(m.queueTimeoutSeconds - waited)) });
}
