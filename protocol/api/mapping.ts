// The draft's RMG mapping tables (§3.3): Table 1 ContentMap and Table 2 LocationMap, read-only over the API.
import { z } from '@hono/zod-openapi';
import { json, NodeId, PageQuery, page, route, Timestamp } from './common.ts';

const q = (name: string) => ({ param: { name, in: 'query' as const } });

export const ContentMapRow = z
  .object({
    migrationId: z.string(),
    status: z.enum(['SRC', 'DEST']).describe('draft Table 1 "Status": source or destination node'),
    cacheNodeId: NodeId.optional().describe('absent for a local migration (no cache node involved)'),
    cacheNodeAddress: z.string().optional(),
    dataCenterId: NodeId,
    dataCenterAddress: z.string(),
    hostId: z.string(),
    vmId: z.string(),
    imageId: z.string(),
    format: z.string().optional().describe('image format at this end, when known'),
    createdAt: Timestamp,
  })
  .openapi('ContentMapRow');
export type ContentMapRow = z.infer<typeof ContentMapRow>;

export const LocationMapRow = z
  .object({
    migrationId: z.string(),
    sourceCacheNodeId: NodeId.optional(),
    sourceCacheNodeAddress: z.string().optional(),
    sourceDataCenterId: NodeId,
    sourceDataCenterAddress: z.string(),
    destinationCacheNodeId: NodeId.optional(),
    destinationCacheNodeAddress: z.string().optional(),
    destinationDataCenterId: NodeId,
    destinationDataCenterAddress: z.string(),
    local: z.boolean().describe('source and destination in the same data center: no CDN involved'),
    createdAt: Timestamp,
  })
  .openapi('LocationMapRow');
export type LocationMapRow = z.infer<typeof LocationMapRow>;

export const ContentMapQuery = PageQuery.extend({
  migrationId: z.string().min(1).max(64).optional().openapi(q('migrationId')),
  dataCenterId: NodeId.optional().openapi(q('dataCenterId')),
  cacheNodeId: NodeId.optional().openapi(q('cacheNodeId')),
  vmId: z.string().min(1).max(128).optional().openapi(q('vmId')),
  imageId: z.string().min(1).max(255).optional().openapi(q('imageId')),
  hostId: z.string().min(1).max(128).optional().openapi(q('hostId')),
  status: z.enum(['SRC', 'DEST']).optional().openapi(q('status')),
});
export type ContentMapQuery = z.infer<typeof ContentMapQuery>;

export const LocationMapQuery = PageQuery.extend({
  migrationId: z.string().min(1).max(64).optional().openapi(q('migrationId')),
  sourceDataCenterId: NodeId.optional().openapi(q('sourceDataCenterId')),
  destinationDataCenterId: NodeId.optional().openapi(q('destinationDataCenterId')),
  sourceCacheNodeId: NodeId.optional().openapi(q('sourceCacheNodeId')),
  destinationCacheNodeId: NodeId.optional().openapi(q('destinationCacheNodeId')),
});
export type LocationMapQuery = z.infer<typeof LocationMapQuery>;

export const listContentMap = route({
  operationId: 'listContentMap',
  method: 'get',
  path: '/v1/content-map',
  tags: ['mapping'],
  summary: 'Draft Table 1 (CDN-VRN content mapping), filtered',
  description:
    'Filters combine with AND. An agent sees only rows of its own data center. The most selective key filter ' +
    '(migrationId, dataCenterId, vmId, imageId, cacheNodeId) picks the index; the others filter.',
  request: { query: ContentMapQuery },
  responses: { 200: json(page(ContentMapRow, 'ContentMapPage'), 'Rows') },
});

export const listLocationMap = route({
  operationId: 'listLocationMap',
  method: 'get',
  path: '/v1/location-map',
  tags: ['mapping'],
  summary: 'Draft Table 2 (CDN-VRN location mapping), filtered',
  description:
    'An agent must filter by migrationId or by its own data center as source or destination, and sees only rows ' +
    'where its data center is one end.',
  request: { query: LocationMapQuery },
  responses: { 200: json(page(LocationMapRow, 'LocationMapPage'), 'Rows') },
});
