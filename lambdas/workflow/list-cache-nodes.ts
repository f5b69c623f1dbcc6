// The collector state machine's first step (statemachines/collect-garbage.asl.json): the cache nodes a pass collects,
// and the time the pass stands for, which stamps its metrics (lambdas/workflow/cache-metrics.ts).
import { COLLECTOR_FUNCTIONS } from '../functions.ts';
import { task } from './task.ts';

export interface CollectorPass {
  /** The schedule's time (EventBridge Scheduler's `<aws.scheduler.scheduled-time>`), else now; ISO 8601. */
  readonly at: string;
  /** Every registered cache node, whatever its status: a draining or down node's chunks still take space. */
  readonly cacheNodeIds: readonly string[];
}

/** A time the schedule gave, if it is one; the metrics of a pass then fall in the period it was scheduled for. */
export function passTime(scheduledTime: unknown, now: Date = new Date()): string {
  const at = typeof scheduledTime === 'string' ? Date.parse(scheduledTime) : Number.NaN;
  return new Date(Number.isNaN(at) ? now.getTime() : at).toISOString();
}

export const handler = task(
  COLLECTOR_FUNCTIONS.listCacheNodes,
  async (deps, event: { readonly scheduledTime?: unknown } | null): Promise<CollectorPass> => {
    const nodes = await deps.registry.allCacheNodes();
    return { at: passTime(event?.scheduledTime), cacheNodeIds: nodes.map((n) => n.id).sort() };
  },
);
