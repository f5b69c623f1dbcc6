// Running the cache collector on request (it also runs on its own every 15 minutes): one pass at every cache node, or
// at the nodes named, or a dry run that says what a pass would do. Admin only.
import { z } from '@hono/zod-openapi';
import { CacheSettings } from './cache.ts';
import { json, NodeId, route, Timestamp } from './common.ts';

const tags = ['cache'];

/**
 * Index entries a request reads in all, shared among the nodes it collects: enough for hundreds of GiB per node,
 * small enough to fit API Gateway's 29 s. A larger node is collected in part (`partial`); the scheduled pass reads
 * up to 2,000,000 entries per node (lambdas/workflow/collect-garbage.ts, MAX_ENTRIES_PER_PASS).
 */
export const GC_REQUEST_MAX_ENTRIES = 200_000;
/** Cache nodes one request names at most. */
export const MAX_GC_NODES = 100;

export const CollectGarbageInput = z
  .strictObject({
    dryRun: z
      .boolean()
      .default(false)
      .describe('say what a pass would mark and free, and change nothing (default false: a real pass)'),
    cacheNodeIds: z
      .array(NodeId)
      .min(1)
      .max(MAX_GC_NODES)
      .refine((ids) => new Set(ids).size === ids.length, 'lists a cache node twice')
      .optional()
      .describe('only these cache nodes (default: every registered one)'),
  })
  .openapi('CollectGarbageInput');
export type CollectGarbageInput = z.input<typeof CollectGarbageInput>;

const Bytes = z.int().min(0);
const Amount = z
  .object({ chunks: z.int().min(0), bytes: Bytes })
  .openapi('ChunkAmount', { example: { chunks: 12, bytes: 50_331_648 } });

export const NodeCollection = z
  .object({
    cacheNodeId: NodeId,
    at: Timestamp,
    dryRun: z.boolean(),
    budgetBytes: Bytes.optional().describe('the node’s storage budget; absent: none'),
    bytesHeld: Bytes.describe('what the node holds after the pass (dry run: would hold)'),
    chunksHeld: z.int().min(0),
    evictableBytes: Bytes.describe(
      'bytes of the chunks no live migration, pinned image or backup policy’s kept runs uses: what eviction ' +
        'could free',
    ),
    marked: Amount.describe(
      'marked by this pass (dry run: would be): deleted by a later pass after the grace period unless used meanwhile',
    ),
    freed: Amount.describe('deleted by this pass (dry run: would be, if still unused then)'),
    pending: Amount.describe('marked by earlier passes, grace period not over yet'),
    pardoned: z.int().min(0).describe('marks taken back: the chunk is used again'),
    reverted: z.int().min(0).describe('deletions taken back for the same reason'),
    targetBytes: z
      .number()
      .min(0)
      .optional()
      .describe('the level this pass evicts down to (absent: no space pressure)'),
    reason: z.string().describe('why the pass marks what it marks'),
    partial: z
      .boolean()
      .describe(
        'the node has more index entries than this pass read (maxEntriesPerNode): only those were counted, swept ' +
          'and marked, and bytesHeld is the running count, not a recount',
      ),
  })
  .openapi('CacheNodeCollection');
export type NodeCollection = z.infer<typeof NodeCollection>;

export const CollectGarbageReport = z
  .object({
    at: Timestamp,
    settings: CacheSettings,
    maxEntriesPerNode: z.int().min(1).describe('index entries this request read at most per node'),
    nodes: z.array(NodeCollection),
  })
  .openapi('CacheCollection');
export type CollectGarbageReport = z.infer<typeof CollectGarbageReport>;

export const collectGarbage = route({
  operationId: 'collectGarbage',
  method: 'post',
  path: '/v1/cache/gc',
  tags,
  summary: 'Run the cache collector now, or see what it would do (dryRun) (admin)',
  description:
    'One pass at each cache node named (default: all): deletes the chunks an earlier pass marked at least the grace ' +
    'period ago and that are still unused, then marks what this pass chooses (least recently used first above the ' +
    'high-water mark of a node’s budget, and chunks unused past the retention period). The same pass runs on its ' +
    'own every 15 minutes. Synchronous, so bounded: at most GC_REQUEST_MAX_ENTRIES (200,000) index entries in all, ' +
    'shared among the nodes; a node with more is collected in part (`partial`).',
  request: {
    body: { content: { 'application/json': { schema: CollectGarbageInput } }, required: true },
  },
  responses: {
    200: json(CollectGarbageReport, 'What the pass did (dry run: would do), per node'),
  },
});
