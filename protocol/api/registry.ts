// Node registry routes (RMG): data centers (VRN) and cache nodes (CCN).
import { z } from '@hono/zod-openapi';
import { awsRegionSchema, MIN_BUDGET_BYTES } from '../topology.ts';
import {
  errorResponses,
  json,
  Location,
  NodeId,
  PageQuery,
  page,
  pathId,
  route,
  Timestamp,
} from './common.ts';

export const CacheNodeStatus = z.enum(['active', 'draining', 'down']).openapi('CacheNodeStatus');
export type CacheNodeStatus = z.infer<typeof CacheNodeStatus>;

const BudgetBytes = z
  .int()
  .min(MIN_BUDGET_BYTES)
  .max(Number.MAX_SAFE_INTEGER)
  .describe('storage budget in bytes (at least 1 MiB); absent: unlimited')
  .openapi({ example: 10 * 1024 ** 3 });

const Amount = z.object({ chunks: z.int(), bytes: z.int() });

export const CacheNodeInput = z
  .strictObject({
    name: z.string().min(1).max(100),
    region: awsRegionSchema,
    location: Location,
    capacity: z.int().min(1).max(10_000).describe('maximum concurrent transfers'),
    status: CacheNodeStatus.optional().describe(
      'default: active for a new node, unchanged for an existing one',
    ),
    budgetBytes: BudgetBytes.optional(),
  })
  .openapi('CacheNodeInput');

export const CacheNodePatch = z
  .strictObject({
    capacity: z.int().min(1).max(10_000).optional(),
    status: CacheNodeStatus.optional(),
    budgetBytes: BudgetBytes.nullable()
      .optional()
      .describe('storage budget in bytes (at least 1 MiB); null removes it (unlimited)'),
  })
  .refine(
    (p) => p.capacity !== undefined || p.status !== undefined || p.budgetBytes !== undefined,
    'give at least one of capacity, status and budgetBytes',
  )
  .openapi('CacheNodePatch');

export const CacheNode = z
  .object({
    id: NodeId,
    name: z.string(),
    region: z.string(),
    location: Location,
    capacity: z.int(),
    status: CacheNodeStatus,
    bucket: z.string(),
    address: z.string().describe('edge base URL of this cache node'),
    activeTransfers: z.int(),
    reservations: z.array(z.string()).describe('migrations holding a transfer slot'),
    budgetBytes: z.int().optional().describe('storage budget in bytes; absent: unlimited'),
    bytesHeld: z.int().describe('bytes of the chunks the content index records at this node'),
    chunksHeld: z.int().describe('chunks the content index records at this node'),
    bytesReserved: z
      .int()
      .describe('bytes admitted migrations may still bring to this node (their space reservations)'),
    collection: z
      .object({
        at: Timestamp,
        evictableBytes: z.int().describe('bytes that no live migration, pinned image or kept backup needs'),
        marked: Amount.describe('marked for eviction by that pass'),
        freed: Amount.describe('deleted by that pass'),
        pending: Amount.describe('marked by an earlier pass, waiting out the grace period'),
        reason: z.string().describe('why that pass marked what it marked'),
      })
      .optional()
      .describe("the cache collector's last pass at this node; absent: none yet"),
    homedDataCenters: z.array(NodeId).describe('data centers that name this node as their home'),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi('CacheNode');
export type CacheNode = z.infer<typeof CacheNode>;

export const DataCenterInput = z
  .strictObject({
    name: z.string().min(1).max(100),
    address: z.string().min(1).max(255).describe('address of the data center (draft Table 1 "VRN IP addr.")'),
    location: Location,
    homeCacheNode: NodeId.optional().describe('omit to use the nearest active cache node'),
  })
  .openapi('DataCenterInput');

export const DataCenter = z
  .object({
    id: NodeId,
    name: z.string(),
    address: z.string(),
    location: Location,
    homeCacheNode: NodeId.optional(),
    cacheNode: z
      .object({ id: NodeId, reason: z.enum(['home', 'nearest']), distanceKm: z.number() })
      .nullable()
      .describe(
        'the cache node this data center uses now: its home when active, else the nearest active one',
      ),
    activeMigrations: z.array(z.string()),
    agent: z
      .object({ version: z.string(), qemuImg: z.string().optional(), seenAt: Timestamp })
      .optional()
      .describe("what the data center's agent last reported (version, qemu-img for format conversion)"),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi('DataCenter');
export type DataCenter = z.infer<typeof DataCenter>;

const tags = ['registry'];
const dcId = z.object({ dataCenterId: pathId('dataCenterId', 'dc-gz') });
const cnId = z.object({ cacheNodeId: pathId('cacheNodeId', 'hkg') });

export const listDataCenters = route({
  operationId: 'listDataCenters',
  method: 'get',
  path: '/v1/data-centers',
  tags,
  summary: 'List data centers (VRN)',
  request: { query: PageQuery },
  responses: { 200: json(page(DataCenter, 'DataCenterPage'), 'Data centers') },
});

export const getDataCenter = route({
  operationId: 'getDataCenter',
  method: 'get',
  path: '/v1/data-centers/{dataCenterId}',
  tags,
  summary: 'Get a data center',
  request: { params: dcId },
  responses: { 200: json(DataCenter, 'The data center'), ...errorResponses(404) },
});

export const putDataCenter = route({
  operationId: 'putDataCenter',
  method: 'put',
  path: '/v1/data-centers/{dataCenterId}',
  tags,
  summary: 'Register or replace a data center (admin)',
  request: {
    params: dcId,
    body: { content: { 'application/json': { schema: DataCenterInput } }, required: true },
  },
  responses: {
    200: json(DataCenter, 'Replaced'),
    201: json(DataCenter, 'Created'),
    ...errorResponses(409),
  },
});

export const deleteDataCenter = route({
  operationId: 'deleteDataCenter',
  method: 'delete',
  path: '/v1/data-centers/{dataCenterId}',
  tags,
  summary: 'Remove a data center (admin); refused while migrations use it',
  request: { params: dcId },
  responses: { 204: { description: 'Removed' }, ...errorResponses(404, 409) },
});

export const listCacheNodes = route({
  operationId: 'listCacheNodes',
  method: 'get',
  path: '/v1/cache-nodes',
  tags,
  summary: 'List cache nodes (CCN)',
  request: { query: PageQuery },
  responses: { 200: json(page(CacheNode, 'CacheNodePage'), 'Cache nodes') },
});

export const getCacheNode = route({
  operationId: 'getCacheNode',
  method: 'get',
  path: '/v1/cache-nodes/{cacheNodeId}',
  tags,
  summary: 'Get a cache node',
  request: { params: cnId },
  responses: { 200: json(CacheNode, 'The cache node'), ...errorResponses(404) },
});

export const putCacheNode = route({
  operationId: 'putCacheNode',
  method: 'put',
  path: '/v1/cache-nodes/{cacheNodeId}',
  tags,
  summary: 'Register or replace a cache node (admin); its bucket must exist',
  request: {
    params: cnId,
    body: { content: { 'application/json': { schema: CacheNodeInput } }, required: true },
  },
  responses: {
    200: json(CacheNode, 'Replaced'),
    201: json(CacheNode, 'Created'),
    ...errorResponses(409),
  },
});

export const patchCacheNode = route({
  operationId: 'patchCacheNode',
  method: 'patch',
  path: '/v1/cache-nodes/{cacheNodeId}',
  tags,
  summary: 'Change a cache node status (active / draining / down), capacity or storage budget (admin)',
  request: {
    params: cnId,
    body: { content: { 'application/json': { schema: CacheNodePatch } }, required: true },
  },
  responses: { 200: json(CacheNode, 'Updated'), ...errorResponses(404) },
});

export const deleteCacheNode = route({
  operationId: 'deleteCacheNode',
  method: 'delete',
  path: '/v1/cache-nodes/{cacheNodeId}',
  tags,
  summary: 'Remove a cache node (admin); refused while data centers or transfers use it',
  request: { params: cnId },
  responses: { 204: { description: 'Removed' }, ...errorResponses(404, 409) },
});
