// One pass of the cache collector (lambdas/workflow/collect-garbage.ts) at one cache node: a Task of
// statemachines/collect-garbage.asl.json, which runs it for every node. It reports the pass and writes the node's
// metrics (cache-metrics.ts).
import { COLLECTOR_FUNCTIONS } from '../functions.ts';
import { cacheMetricsDocument, emitMetrics } from './cache-metrics.ts';
import { collectGarbage, type NodeCollection } from './collect-garbage.ts';
import { passTime } from './list-cache-nodes.ts';
import { TaskFailure, task } from './task.ts';

export interface CollectNodeEvent {
  readonly cacheNodeId: string;
  /** The time of the pass (list-cache-nodes.ts); stamps the metrics. */
  readonly at?: string;
}

export type CollectNodeResult =
  | NodeCollection
  | { readonly cacheNodeId: string; readonly skipped: 'not registered' };

export const handler = task(
  COLLECTOR_FUNCTIONS.collectGarbage,
  async (deps, event: CollectNodeEvent): Promise<CollectNodeResult> => {
    const cacheNodeId = event?.cacheNodeId;
    if (typeof cacheNodeId !== 'string' || cacheNodeId === '')
      throw new TaskFailure('InvalidInput', 'the collector needs {cacheNodeId}');
    // The Lambda stops at its timeout: the pass stops sweeping and marking a minute before (the next goes on).
    const deadline = Date.now() + ((COLLECTOR_FUNCTIONS.collectGarbage.timeoutSeconds ?? 890) - 60) * 1000;
    const report = await collectGarbage(deps, { nodes: [cacheNodeId], deadline });
    const node = report.nodes[0];
    // Removed since the pass listed it: nothing to collect, nothing to measure.
    if (!node) return { cacheNodeId, skipped: 'not registered' };
    emitMetrics(cacheMetricsDocument(node, new Date(passTime(event.at))));
    return node;
  },
);
