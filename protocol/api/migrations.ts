// Migration routes (CVMM): create, read, list, cancel, retry.
import { z } from '@hono/zod-openapi';
import { IMAGE_FORMATS } from '../image-format.ts';
import { errorResponses, json, NodeId, PageQuery, page, route, Timestamp } from './common.ts';

export const MIGRATION_STATUSES = [
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
] as const;

export const MigrationStatus = z.enum(MIGRATION_STATUSES).openapi('MigrationStatus');
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

export const MigrationMode = z
  .enum(['migrate', 'backup'])
  .describe(
    'migrate: the source agent runs its --on-migrated hook once every destination has the VM; backup: the source is left alone',
  )
  .openapi('MigrationMode');

export const OnCongestion = z
  .enum(['wait', 'suggest', 'redirect'])
  .describe(
    'when a destination cache node is at capacity (draft §3.1 step 4): wait (QUEUED until a slot frees or the queue timeout), ' +
      'suggest (AWAITING_DECISION with an alternative destination), redirect (take the alternative at once)',
  )
  .openapi('OnCongestion');

export const Destination = z
  .strictObject({
    dataCenterId: NodeId,
    format: ImageFormat.optional().describe(
      'convert to this format at the destination (cross-hypervisor); default: as the source',
    ),
  })
  .openapi('Destination');

export const Near = z
  .strictObject({
    lat: z.number().min(-90).max(90),
    lon: z.number().min(-180).max(180),
    format: ImageFormat.optional(),
  })
  .describe('deliver to the data center nearest to this location (a desktop near its user)')
  .openapi('Near');

/** What every way of starting migrations shares (single, batch, policy). */
export const MAX_QUEUE_TIMEOUT_SECONDS = 7 * 86400;
export const QueueTimeoutSeconds = z
  .int()
  .min(0)
  .max(MAX_QUEUE_TIMEOUT_SECONDS)
  .default(3600)
  .describe('how long to wait for a free slot before failing');

export const MigrationOptions = z.strictObject({
  mode: MigrationMode.default('migrate'),
  onCongestion: OnCongestion.default('wait'),
  queueTimeoutSeconds: QueueTimeoutSeconds,
  startAt: z.iso.datetime().optional().describe('scheduled start; the migration waits in PENDING until then'),
  application: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .describe('the application that triggered the migration (draft §3.1 step 1), recorded in the history'),
  overwrite: z
    .boolean()
    .default(false)
    .describe(
      'replace a file at a destination that vmmig did not deliver, or that changed since it delivered it; ' +
        'without it such a destination fails, naming the file, and the file is left as it is',
    ),
});

export const CreateMigration = MigrationOptions.extend({
  vmId: Ident.openapi({ example: 'xen-10' }),
  hostId: Ident.openapi({ example: 'west1' }),
  imageId: ImageId,
  sourceDataCenterId: NodeId,
  destinations: z
    .array(Destination)
    .min(1)
    .max(16)
    .refine((d) => new Set(d.map((x) => x.dataCenterId)).size === d.length, 'lists a data center twice')
    .optional()
    .describe('one destination to migrate, several for a multi-node backup; or give `near` instead'),
  near: Near.optional(),
})
  .refine((b) => (b.destinations === undefined) !== (b.near === undefined), {
    message: 'give either destinations or near, not both and not neither',
    path: ['destinations'],
  })
  // The rule above, for validators and generated clients: exactly one of the two.
  .openapi('CreateMigration', {
    description: 'Give exactly one of `destinations` and `near`.',
    oneOf: [
      { required: ['destinations'], title: 'to named data centers' },
      { required: ['near'], title: 'to the data center nearest to a location' },
    ],
  });
export type CreateMigration = z.infer<typeof CreateMigration>;

export const Leg = z
  .object({
    dataCenterId: NodeId,
    cacheNodeId: NodeId.optional().describe(
      'absent for a local leg (same data center: no cache node involved)',
    ),
    local: z.boolean(),
    format: ImageFormat.optional().describe('the format asked for at this destination'),
    status: LegStatus,
    chunksToReplicate: z
      .int()
      .describe('distinct non-zero chunks of the image this leg’s cache node must hold'),
    bytesToReplicate: z.int(),
    chunksReplicated: z.int(),
    bytesReplicated: z
      .int()
      .describe(
        'bytes of the image at this leg’s cache node: already there, or copied (by this migration or another)',
      ),
    chunksDownloaded: z.int(),
    bytesDownloaded: z.int(),
    wireBytesDownloaded: z
      .int()
      .optional()
      .describe(
        'bytes fetched through the edge for bytesDownloaded, as they crossed the network (compressed)',
      ),
    bytesReusedAtDestination: z
      .int()
      .optional()
      .describe(
        'bytes the destination took from images it already held instead of downloading them (not in bytesDownloaded)',
      ),
    deliveredPath: z.string().optional().describe('where the agent put the image'),
    deliveredFormat: ImageFormat.optional(),
    allocatedBytes: z
      .int()
      .optional()
      .describe('disk space the delivered image takes (zero ranges are left as holes)'),
    replaced: z
      .boolean()
      .optional()
      .describe(
        'a file was at deliveredPath before and was replaced (only ever one vmmig delivered, or with overwrite)',
      ),
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
    mode: MigrationMode,
    onCongestion: OnCongestion,
    queueTimeoutSeconds: z.int(),
    startAt: Timestamp.optional(),
    application: z.string().optional(),
    batchId: z.string().optional(),
    policyId: z.string().optional(),
    vmId: z.string(),
    hostId: z.string(),
    imageId: z.string(),
    sourceDataCenterId: NodeId,
    sourceCacheNodeId: NodeId.optional(),
    placement: z
      .object({
        near: z.object({ lat: z.number(), lon: z.number() }),
        dataCenterId: NodeId,
        distanceKm: z.number(),
      })
      .optional()
      .describe('for a `near` request: the data center chosen for the user'),
    decision: z
      .object({
        congestedCacheNode: NodeId,
        congestedDataCenterId: NodeId,
        suggestedDataCenterId: NodeId,
        suggestedCacheNodeId: NodeId,
        reason: z.string(),
        since: Timestamp,
      })
      .optional()
      .describe('AWAITING_DECISION: the alternative the CMN suggests; answer with POST …/decision'),
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
      chunksTotal: z
        .int()
        .describe('chunks this migration uploads (no cache node held them, none was uploading them)'),
      bytesTotal: z.int(),
      chunksDone: z.int(),
      bytesDone: z.int(),
      bytesCached: z.int().describe('non-zero bytes some cache node already held'),
      chunksShared: z
        .int()
        .describe('chunks another migration was uploading at the same time: awaited, not sent twice'),
      wireBytesDone: z
        .int()
        .optional()
        .describe('bytes of the packs uploaded for bytesDone, as they crossed the network (compressed)'),
    }),
    overwrite: z.boolean().describe('files vmmig did not deliver may be replaced at the destinations'),
    sourceReleased: z.boolean().describe('mode migrate: the source agent ran its --on-migrated hook'),
    replication: z
      .object({
        chunksCopied: z.int(),
        bytesCopied: z
          .int()
          .describe(
            'bytes this migration copied between cache nodes, as stored and moved: whole packs, compressed (chunks ' +
              'of other images in them included), and chunks stored alone before packs; what a destination node ' +
              'already held, or another migration was copying there at the same time, is not counted (a leg’s ' +
              'bytesReplicated counts the chunks’ own bytes: it is what its node holds of the image)',
          ),
      })
      .describe('copies between cache nodes (the CDN-internal transfer of draft §3.1 step 5)'),
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

export const createMigration = route({
  operationId: 'createMigration',
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
    ...errorResponses(404, 409),
  },
});

export const getMigration = route({
  operationId: 'getMigration',
  method: 'get',
  path: '/v1/migrations/{migrationId}',
  tags,
  summary: 'Status, legs, progress and history of a migration',
  request: { params: idParams },
  responses: { 200: json(Migration, 'The migration'), ...errorResponses(404) },
});

export const MigrationListQuery = PageQuery.extend({
  status: MigrationStatus.optional().openapi({ param: { name: 'status', in: 'query' } }),
  dataCenterId: NodeId.optional().openapi({
    param: { name: 'dataCenterId', in: 'query' },
    description: 'source or destination',
  }),
  vmId: Ident.optional().openapi({ param: { name: 'vmId', in: 'query' } }),
});

export const listMigrations = route({
  operationId: 'listMigrations',
  method: 'get',
  path: '/v1/migrations',
  tags,
  summary: 'List migrations, newest first',
  request: { query: MigrationListQuery },
  responses: { 200: json(page(Migration, 'MigrationPage'), 'Migrations') },
});

export const cancelMigration = route({
  operationId: 'cancelMigration',
  method: 'post',
  path: '/v1/migrations/{migrationId}/cancel',
  tags,
  summary: 'Cancel a migration (admin); releases its cache node slots',
  request: { params: idParams },
  responses: {
    200: json(Migration, 'Cancelled (or already finished: see status)'),
    ...errorResponses(404, 409),
  },
});

export const RetryRequest = z
  .strictObject({
    destinations: z
      .array(NodeId)
      .min(1)
      .max(16)
      .optional()
      .describe('retry only these destinations (default: every destination not completed)'),
  })
  .openapi('RetryRequest');

export const retryMigration = route({
  operationId: 'retryMigration',
  method: 'post',
  path: '/v1/migrations/{migrationId}/retry',
  tags,
  summary: 'Run a failed or cancelled migration again (admin); what is done is skipped',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: RetryRequest } }, required: false },
  },
  responses: { 202: json(Migration, 'Started again'), ...errorResponses(404, 409) },
});

export const Decision = z.strictObject({ accept: z.boolean() }).openapi('Decision');

export const decideMigration = route({
  operationId: 'decideMigration',
  method: 'post',
  path: '/v1/migrations/{migrationId}/decision',
  tags,
  summary: "Accept or reject the CMN's suggested destination (admin; status AWAITING_DECISION)",
  description:
    'accept: the migration goes to the suggested data center instead; reject: it keeps its destination and waits for a slot.',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: Decision } }, required: true },
  },
  responses: { 200: json(Migration, 'Recorded'), ...errorResponses(404, 409) },
});
