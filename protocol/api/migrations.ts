// Migration routes (CVMM): create, read, list, cancel, retry.
import { createRoute, z } from '@hono/zod-openapi';
import { IMAGE_FORMATS } from '../image-format.ts';
import { errorResponses, json, NodeId, PageQuery, page, Timestamp } from './common.ts';

export const MigrationStatus = z
  .enum([
    'PENDING',
    'ADMITTED',
    'AWAITING_DECISION',
    'QUEUED',
    'UPLOADING',
    'REPLICATING',
    'DOWNLOADING',
    'COMPLETED',
    'FAILED',
    'CANCELLED',
  ])
  .openapi('MigrationStatus');
export type MigrationStatus = z.infer<typeof MigrationStatus>;
export const TERMINAL_STATUSES: readonly MigrationStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export const LegStatus = z
  .enum(['PENDING', 'REPLICATING', 'DOWNLOADING', 'COMPLETED', 'FAILED', 'CANCELLED'])
  .openapi('LegStatus');
export type LegStatus = z.infer<typeof LegStatus>;

export const ImageFormat = z.enum(IMAGE_FORMATS).openapi('ImageFormat');

/** An image id names a file in the data center's image store: no path separators, no leading dot. */
export const ImageId = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/,
    'must be a file name: letters, digits, . _ + -, not starting with a dot',
  )
  .openapi({ example: 'web-01.qcow2' });

const Ident = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, 'letters, digits and . _ : @ -');

export const MigrationId = z
  .string()
  .regex(/^mig-[0-9a-z]{20,40}$/, 'is not a migration id')
  .openapi({ example: 'mig-01jq3v6b1n0k8d4y7r5s2t9w3x' });

export const CreateMigration = z
  .strictObject({
    vmId: Ident.openapi({ example: 'xen-10' }),
    hostId: Ident.openapi({ example: 'west1' }),
    imageId: ImageId,
    sourceDataCenterId: NodeId,
    destinations: z
      .array(
        z.strictObject({
          dataCenterId: NodeId,
        }),
      )
      .min(1)
      .max(16)
      .refine((d) => new Set(d.map((x) => x.dataCenterId)).size === d.length, 'lists a data center twice'),
  })
  .openapi('CreateMigration');
export type CreateMigration = z.infer<typeof CreateMigration>;

export const Leg = z
  .object({
    dataCenterId: NodeId,
    cacheNodeId: NodeId.optional(),
    format: ImageFormat.optional(),
    status: LegStatus,
    chunksToReplicate: z.int(),
    bytesToReplicate: z.int(),
    chunksReplicated: z.int(),
    bytesReplicated: z.int(),
    chunksDownloaded: z.int(),
    bytesDownloaded: z.int(),
    completedAt: Timestamp.optional(),
    error: z.string().optional(),
  })
  .openapi('Leg');
export type Leg = z.infer<typeof Leg>;

export const HistoryEntry = z
  .object({ at: Timestamp, event: z.string(), status: MigrationStatus.optional(), message: z.string() })
  .openapi('HistoryEntry');
export type HistoryEntry = z.infer<typeof HistoryEntry>;

export const Migration = z
  .object({
    id: MigrationId,
    url: z.string(),
    status: MigrationStatus,
    attempt: z.int(),
    vmId: z.string(),
    hostId: z.string(),
    imageId: z.string(),
    sourceDataCenterId: NodeId,
    sourceCacheNodeId: NodeId.optional(),
    image: z
      .object({
        size: z.int(),
        sha256: z.string(),
        format: ImageFormat,
        chunks: z.int(),
        uniqueChunks: z.int(),
        zeroBytes: z.int().describe('bytes in all-zero chunks: never transferred'),
      })
      .optional(),
    upload: z.object({
      chunksTotal: z.int().describe('chunks no cache node held: the source must upload these'),
      bytesTotal: z.int(),
      chunksDone: z.int(),
      bytesDone: z.int(),
      bytesCached: z.int().describe('non-zero bytes some cache node already held'),
    }),
    legs: z.array(Leg),
    error: z.object({ code: z.string(), message: z.string(), at: Timestamp }).optional(),
    history: z.array(HistoryEntry).optional().describe('oldest first; only on GET of one migration'),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi('Migration');
export type Migration = z.infer<typeof Migration>;

const tags = ['migrations'];
const idParams = z.object({
  migrationId: MigrationId.openapi({ param: { name: 'migrationId', in: 'path' } }),
});

export const createMigration = createRoute({
  method: 'post',
  path: '/v1/migrations',
  tags,
  summary: 'Start a migration (admin)',
  description:
    'Send an Idempotency-Key header to make retries safe: the same key and body return the same migration.',
  request: {
    headers: z.object({
      'idempotency-key': z
        .string()
        .min(1)
        .max(128)
        .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
        .optional()
        .openapi({ param: { name: 'idempotency-key', in: 'header' } }),
    }),
    body: { content: { 'application/json': { schema: CreateMigration } }, required: true },
  },
  responses: {
    202: json(Migration, 'Accepted; follow `url` for status'),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

export const getMigration = createRoute({
  method: 'get',
  path: '/v1/migrations/{migrationId}',
  tags,
  summary: 'Status, legs, progress and history of a migration',
  request: { params: idParams },
  responses: { 200: json(Migration, 'The migration'), ...errorResponses(400, 401, 403, 404) },
});

export const MigrationListQuery = PageQuery.extend({
  status: MigrationStatus.optional().openapi({ param: { name: 'status', in: 'query' } }),
  dataCenterId: NodeId.optional().openapi({
    param: { name: 'dataCenterId', in: 'query' },
    description: 'source or destination',
  }),
  vmId: Ident.optional().openapi({ param: { name: 'vmId', in: 'query' } }),
});

export const listMigrations = createRoute({
  method: 'get',
  path: '/v1/migrations',
  tags,
  summary: 'List migrations, newest first',
  request: { query: MigrationListQuery },
  responses: { 200: json(page(Migration, 'MigrationPage'), 'Migrations'), ...errorResponses(400, 401) },
});

export const cancelMigration = createRoute({
  method: 'post',
  path: '/v1/migrations/{migrationId}/cancel',
  tags,
  summary: 'Cancel a migration (admin); releases its cache node slots',
  request: { params: idParams },
  responses: {
    200: json(Migration, 'Cancelled (or already finished: see status)'),
    ...errorResponses(401, 403, 404, 409),
  },
});

export const retryMigration = createRoute({
  method: 'post',
  path: '/v1/migrations/{migrationId}/retry',
  tags,
  summary: 'Run a failed or cancelled migration again (admin); what is done is skipped',
  request: { params: idParams },
  responses: { 202: json(Migration, 'Started again'), ...errorResponses(401, 403, 404, 409) },
});
