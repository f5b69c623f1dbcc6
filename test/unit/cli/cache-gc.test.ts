// `vmmig cache gc` as text: per node what it holds against its budget, what could be freed, what the pass marked
// (and when that goes), freed, what is pending, why; a note when everything held is in use, or the node was read
// in part.
import { describe, expect, it } from 'vitest';
import { renderCollection } from '../../../cli/commands/cache-gc.ts';
import type { CollectGarbageReport, NodeCollection } from '../../../protocol/api/cache-gc.ts';

const MiB = 1024 ** 2;
const node = (over: Partial<NodeCollection> = {}): NodeCollection => ({
  cacheNodeId: 'hkg',
  at: '2026-05-01T10:00:01.000Z',
  dryRun: false,
  budgetBytes: 100 * MiB,
  bytesHeld: 95 * MiB,
  chunksHeld: 24,
  evictableBytes: 40 * MiB,
  marked: { chunks: 5, bytes: 20 * MiB },
  freed: { chunks: 2, bytes: 8 * MiB },
  pending: { chunks: 1, bytes: 4 * MiB },
  pardoned: 0,
  reverted: 0,
  targetBytes: 75 * MiB,
  reason: '95.0 MiB held of a 100.0 MiB budget: 5 least recently used chunks down to 75.0 MiB',
  partial: false,
  ...over,
});
const report = (nodes: NodeCollection[]): CollectGarbageReport => ({
  at: '2026-05-01T10:00:00.000Z',
  settings: { graceSeconds: 3600, highWater: 0.9, lowWater: 0.75 },
  maxEntriesPerNode: 200_000,
  nodes,
});

describe('renderCollection', () => {
  it('shows each node: held of budget, evictable, marked with the grace period, freed, pending, reason', () => {
    expect(renderCollection(report([node()]))).toBe(
      [
        "Cache collector pass at 2026-05-01T10:00:00.000Z. Grace period 1h; eviction above 90% of a node's budget, down to 75%.",
        '',
        'cache node hkg',
        '  held       95.0 MiB of a 100.0 MiB budget (95%), 24 chunks',
        '  evictable  40.0 MiB: used by no live migration, pinned image or kept backup',
        '  marked     5 chunks, 20.0 MiB: deleted after the grace period (1h) unless used',
        '  freed      2 chunks, 8.0 MiB',
        '  pending    1 chunk, 4.0 MiB: marked earlier, grace period not over',
        '  reason     95.0 MiB held of a 100.0 MiB budget: 5 least recently used chunks down to 75.0 MiB',
        '',
      ].join('\n'),
    );
  });

  it('speaks of what a dry run would do, and of a node without a budget', () => {
    const text = renderCollection(
      report([
        node({
          dryRun: true,
          budgetBytes: undefined as never,
          marked: { chunks: 0, bytes: 0 },
          freed: { chunks: 0, bytes: 0 },
          pending: { chunks: 0, bytes: 0 },
          reason: 'within budget',
        }),
      ]),
    );
    expect(text).toMatch(/^Dry run \(nothing changed\): what a pass would do at /);
    expect(text).toContain('  held       95.0 MiB in 24 chunks (no budget)\n');
    expect(text).toContain('  would mark nothing\n  would free nothing\n  pending    nothing\n');
  });

  it('says when nothing can be freed because every chunk is in use, and when a node was read in part', () => {
    const text = renderCollection(report([node({ evictableBytes: 0, partial: true })]));
    expect(text).toContain(
      "  note: nothing here can be freed: every chunk is used by a live migration, a pinned image or a backup policy's kept runs\n",
    );
    expect(text).toContain('  note: collected in part: the node has more than 200,000 index entries');
  });
});
