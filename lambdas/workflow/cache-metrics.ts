// The cache collector's CloudWatch metrics as embedded metric format (EMF) documents: the collector's Lambda writes
// one JSON line per cache node and pass to stdout, and CloudWatch Logs extracts the data points from its log group
// (no PutMetricData call, no permission beyond the function's own logs). lib/constructs/operations.ts graphs them
// and alarms on NodesOverBudget.
import type { NodeCollection } from './collect-garbage.ts';

export const CACHE_METRICS_NAMESPACE = 'vmmig/cache';
export const CACHE_NODE_DIMENSION = 'CacheNode';
/**
 * Per cache node (dimension CacheNode), in bytes: held, the budget, marked for eviction and freed (reclaimed). BudgetBytes only for a node that has a budget; BytesMarked and
 * BytesFreed only when the pass marked or freed something: CloudWatch bills a custom metric for each hour it gets
 * data, so an idle deployment pays for what it holds, not for zeros (graphs fill the gaps with 0).
 */
export const NODE_METRICS = ['BytesHeld', 'BudgetBytes', 'BytesMarked', 'BytesFreed'] as const;
/** No dimension: each node's pass adds 1 when the node holds more than its budget after it, else 0. */
export const NODES_OVER_BUDGET = 'NodesOverBudget';

export const overBudget = (node: NodeCollection): boolean =>
  node.budgetBytes !== undefined && node.bytesHeld > node.budgetBytes;

/**
 * One EMF document for one node's pass. `at` is the time the pass was scheduled for, not when this node's turn
 * came: every node of a pass then lands in the same period, so the sum of NodesOverBudget over a period of the
 * schedule's length counts the nodes over budget in that pass.
 */
export function cacheMetricsDocument(node: NodeCollection, at: Date): Record<string, unknown> {
  const values: Record<(typeof NODE_METRICS)[number], number | undefined> = {
    BytesHeld: node.bytesHeld,
    BudgetBytes: node.budgetBytes,
    BytesMarked: node.marked.bytes || undefined,
    BytesFreed: node.freed.bytes || undefined,
  };
  const present = NODE_METRICS.filter((name) => values[name] !== undefined);
  return {
    _aws: {
      Timestamp: at.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: CACHE_METRICS_NAMESPACE,
          Dimensions: [[CACHE_NODE_DIMENSION]],
          Metrics: present.map((name) => ({ Name: name, Unit: 'Bytes' })),
        },
        // An empty dimension set: the metric without dimensions.
        {
          Namespace: CACHE_METRICS_NAMESPACE,
          Dimensions: [[]],
          Metrics: [{ Name: NODES_OVER_BUDGET, Unit: 'Count' }],
        },
      ],
    },
    [CACHE_NODE_DIMENSION]: node.cacheNodeId,
    ...Object.fromEntries(present.map((name) => [name, values[name]])),
    [NODES_OVER_BUDGET]: overBudget(node) ? 1 : 0,
    // Not metrics: searchable in the log group (CloudWatch Logs Insights). Evictable bytes too: a metric per node
    // would cost every idle deployment its monthly fee, and `vmmig node ls` shows them.
    evictableBytes: node.evictableBytes,
    chunksHeld: node.chunksHeld,
    chunksMarked: node.marked.chunks,
    chunksFreed: node.freed.chunks,
    partial: node.partial,
    reason: node.reason,
  };
}

/**
 * Writes the document where CloudWatch Logs reads it: straight to stdout, one line. Not through `console.log`: with
 * the JSON log format (lib/constructs/base-function.ts) Lambda wraps console output in its own JSON, and CloudWatch
 * would no longer see an EMF document. Elsewhere (the local cloud runs the handler in its own process, with no
 * CloudWatch) nothing is written.
 */
export function emitMetrics(document: Record<string, unknown>, env = process.env): void {
  if (env['AWS_LAMBDA_FUNCTION_NAME']) process.stdout.write(`${JSON.stringify(document)}\n`);
}
