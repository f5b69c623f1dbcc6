// CMN admission (draft §3.1 step 4): take a transfer slot at every cache node the migration goes through, all
// or none. A full node queues the migration (status QUEUED) until a slot frees or the queue timeout passes; a
// node that stopped being active sends the workflow back to Resolve to route around it.
import { cacheNodesOf } from '../domain/migration.ts';
import { TaskFailure, task } from './task.ts';

export const QUEUE_TIMEOUT_SECONDS = 3600;

export interface AdmitOutput {
  readonly admitted: boolean;
  readonly reresolve: boolean;
}

export const handler = task(async (deps, event: { migrationId: string }): Promise<AdmitOutput> => {
  const m = await deps.migrations.require(event.migrationId);
  const nodes = cacheNodesOf(m);
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
    if (outcome === 'full') {
      const queuedSince = m.queuedSince ?? new Date().toISOString();
      const waited = (Date.now() - Date.parse(queuedSince)) / 1000;
      if (waited > QUEUE_TIMEOUT_SECONDS) {
        throw new TaskFailure(
          'CongestionTimeout',
          `cache node ${node} stayed at capacity for ${Math.round(waited)} s`,
        );
      }
      if (m.status !== 'QUEUED') {
        await deps.migrations.update(
          m.id,
          { status: 'QUEUED', set: [[['queuedSince'], queuedSince]] },
          {
            history: {
              event: 'queued',
              message: `cache node ${node} is at capacity; waiting for a free slot`,
            },
          },
        );
      }
      return { admitted: false, reresolve: false };
    }
    await deps.migrations.addHistory(
      m.id,
      'rerouting',
      `cache node ${node} is ${outcome.replace('_', ' ')}; choosing again`,
    );
    return { admitted: false, reresolve: true };
  }
  const alreadyAdmitted = !['PENDING', 'QUEUED'].includes(m.status);
  await deps.migrations.update(
    m.id,
    {
      ...(alreadyAdmitted ? {} : { status: 'ADMITTED' as const }),
      addToSet: [[['reservedCacheNodes'], new Set(nodes)]],
      remove: [['queuedSince']],
    },
    alreadyAdmitted
      ? {}
      : { history: { event: 'admitted', message: `transfer slots taken at ${nodes.join(', ')}` } },
  );
  return { admitted: true, reresolve: false };
});
