// The collector's metrics as CloudWatch embedded metric format documents: per node with dimension CacheNode, the
// count of nodes over budget without dimension, stamped with the pass's time; written only where Lambda runs.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CACHE_METRICS_NAMESPACE,
  cacheMetricsDocument,
  emitMetrics,
} from '../../../../lambdas/workflow/cache-metrics.ts';
import type { NodeCollection } from '../../../../lambdas/workflow/collect-garbage.ts';
import { passTime } from '../../../../lambdas/workflow/list-cache-nodes.ts';

const MiB = 1024 ** 2;
const node = (over: Partial<NodeCollection> = {}): NodeCollection => ({
  cacheNodeId: 'hkg',
  at: '2026-05-01T10:07:31.000Z',
  dryRun: false,
  budgetBytes: 100 * MiB,
  bytesHeld: 120 * MiB,
  chunksHeld: 30,
  evictableBytes: 40 * MiB,
  marked: { chunks: 3, bytes: 12 * MiB },
  freed: { chunks: 1, bytes: 4 * MiB },
  pending: { chunks: 0, bytes: 0 },
  pardoned: 0,
  reverted: 0,
  reason: 'over budget',
  partial: false,
  ...over,
});
const PASS = new Date('2026-05-01T10:00:00.000Z');

describe('cacheMetricsDocument', () => {
  it('has the node metrics under CacheNode and NodesOverBudget without dimension, at the pass time', () => {
    const doc = cacheMetricsDocument(node(), PASS);
    expect(doc['_aws']).toEqual({
      Timestamp: PASS.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: CACHE_METRICS_NAMESPACE,
          Dimensions: [['CacheNode']],
          Metrics: ['BytesHeld', 'BudgetBytes', 'BytesMarked', 'BytesFreed'].map((Name) => ({
            Name,
            Unit: 'Bytes',
          })),
        },
        {
          Namespace: CACHE_METRICS_NAMESPACE,
          Dimensions: [[]],
          Metrics: [{ Name: 'NodesOverBudget', Unit: 'Count' }],
        },
      ],
    });
    expect(doc).toMatchObject({
      CacheNode: 'hkg',
      BytesHeld: 120 * MiB,
      BudgetBytes: 100 * MiB,
      BytesMarked: 12 * MiB,
      BytesFreed: 4 * MiB,
      NodesOverBudget: 1,
    });
  });

  it('leaves out a budget the node does not have, and marks or frees of nothing; a node without budget is never over', () => {
    const doc = cacheMetricsDocument(
      node({
        budgetBytes: undefined as never,
        marked: { chunks: 0, bytes: 0 },
        freed: { chunks: 0, bytes: 0 },
      }),
      PASS,
    ) as { _aws: { CloudWatchMetrics: { Metrics: { Name: string }[] }[] } } & Record<string, unknown>;
    expect(doc._aws.CloudWatchMetrics[0]?.Metrics.map((m) => m.Name)).toEqual(['BytesHeld']);
    for (const name of ['BudgetBytes', 'BytesMarked', 'BytesFreed', 'EvictableBytes'])
      expect(doc[name], name).toBeUndefined();
    expect(doc['NodesOverBudget']).toBe(0);
  });

  it('counts a node at its budget as within it', () => {
    expect(cacheMetricsDocument(node({ bytesHeld: 100 * MiB }), PASS)['NodesOverBudget']).toBe(0);
  });
});

describe('emitMetrics', () => {
  afterEach(() => vi.restoreAllMocks());

  it('writes one JSON line to stdout on Lambda (not through console, which Lambda wraps), nothing elsewhere', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const doc = cacheMetricsDocument(node(), PASS);
    emitMetrics(doc, {});
    expect(write).not.toHaveBeenCalled();
    emitMetrics(doc, { AWS_LAMBDA_FUNCTION_NAME: 'vmmig-collect-garbage' });
    expect(write).toHaveBeenCalledExactlyOnceWith(`${JSON.stringify(doc)}\n`);
  });
});

describe('passTime', () => {
  it("is the schedule's time when it gives one, else now", () => {
    const now = new Date('2026-05-01T10:00:03.250Z');
    expect(passTime('2026-05-01T10:00:00Z', now)).toBe('2026-05-01T10:00:00.000Z');
    expect(passTime(undefined, now)).toBe(now.toISOString());
    expect(passTime('<aws.scheduler.scheduled-time>', now)).toBe(now.toISOString());
  });
});
