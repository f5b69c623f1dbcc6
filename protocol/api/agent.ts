// The agent protocol (draft V-C, DESIGN §3): how a data center's agent gets work, sends a manifest, uploads
// missing chunks in packs with presigned PUTs, downloads (ranges of packs) through the edge with signed GETs, and
// reports back.
import { z } from '@hono/zod-openapi';
import { ENCODINGS, MAX_PACK_BYTES, MIN_PACK_BYTES } from '../pack.ts';
import { errorResponses, json, NodeId, PageQuery, pathId, route, Timestamp } from './common.ts';
import { ImageFormat, MigrationId } from './migrations.ts';

const tags = ['agent'];
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
const idParams = z.object({
  migrationId: MigrationId.openapi({ param: { name: 'migrationId', in: 'path' } }),
});
const destParams = idParams.extend({ dataCenterId: pathId('dataCenterId', 'dc-osa') });

export const WorkItem = z
  .object({
    migrationId: MigrationId,
    action: z
      .enum(['manifest', 'upload', 'download', 'handover', 'release'])
      .describe(
        'manifest/upload: source; download: remote destination; handover: local destination (same data center); release: source, after every destination has the VM (mode migrate)',
      ),
    role: z.enum(['source', 'destination']),
    dataCenterId: NodeId,
    vmId: z.string(),
    hostId: z.string(),
    imageId: z.string(),
    format: ImageFormat.optional().describe('download: the format the destination asked for'),
    overwrite: z
      .boolean()
      .optional()
      .describe(
        'download/handover: a file vmmig did not deliver may be replaced (the migration asked for it)',
      ),
    chunking: z
      .object({ minSize: z.int(), avgSize: z.int(), maxSize: z.int() })
      .optional()
      .describe(
        'manifest: chunk with these parameters, the ones the image was stored with before, so its chunks are ' +
          'reused (absent: the default for the image size); upload: the parameters of the accepted manifest',
      ),
    createdAt: Timestamp,
  })
  .openapi('WorkItem');
export type WorkItem = z.infer<typeof WorkItem>;

export const getWork = route({
  operationId: 'getWork',
  method: 'get',
  path: '/v1/agent/work',
  tags,
  summary: "The calling agent's pending work (admins pass dataCenterId)",
  description:
    'Answers at once. An idle agent does not poll this: it long-polls its work queue (POST /v1/agent/work-queue) ' +
    'and asks here when woken, when a job ends, and every few minutes. Asking keeps the listed work alive ' +
    '(heartbeats to the waiting workflow steps).',
  request: {
    query: z.object({
      dataCenterId: NodeId.optional().openapi({ param: { name: 'dataCenterId', in: 'query' } }),
      agentVersion: z
        .string()
        .max(64)
        .optional()
        .openapi({ param: { name: 'agentVersion', in: 'query' } }),
      qemuImg: z
        .string()
        .max(64)
        .optional()
        .openapi({
          param: { name: 'qemuImg', in: 'query' },
          description: 'the agent reports its qemu-img version',
        }),
    }),
  },
  responses: {
    200: json(z.object({ items: z.array(WorkItem) }), 'Work items'),
  },
});

export const WorkQueue = z
  .object({
    queueUrl: z.string().describe('the SQS queue to long-poll with the agent’s own AWS credentials'),
    region: z.string(),
    waitSeconds: z
      .int()
      .min(0)
      .max(20)
      .describe('ReceiveMessage WaitTimeSeconds to use (SQS allows at most 20)'),
  })
  .openapi('WorkQueue');
export type WorkQueue = z.infer<typeof WorkQueue>;

export const openWorkQueue = route({
  operationId: 'openWorkQueue',
  method: 'post',
  path: '/v1/agent/work-queue',
  tags,
  summary: "The calling agent's work queue, created if missing (admins pass dataCenterId)",
  description:
    'An SQS queue per data center: a message means "look at your work" (GET /v1/agent/work); the work itself ' +
    'stays with the API. An idle agent costs one long poll every 20 s instead of a busy API call.',
  request: {
    query: z.object({
      dataCenterId: NodeId.optional().openapi({ param: { name: 'dataCenterId', in: 'query' } }),
    }),
  },
  responses: {
    200: json(WorkQueue, 'The queue'),
    ...errorResponses(404),
  },
});

export const ManifestUploadUrl = z
  .object({
    url: z.string(),
    method: z.literal('PUT'),
    headers: z.record(z.string(), z.string()),
    expiresAt: Timestamp,
  })
  .openapi('ManifestUploadUrl');

export const ManifestUploadRequest = z
  .strictObject({ sha256: Sha256.describe('SHA-256 of the manifest file'), size: z.int().min(2) })
  .openapi('ManifestUploadRequest');

export const createManifestUploadUrl = route({
  operationId: 'createManifestUploadUrl',
  method: 'post',
  path: '/v1/migrations/{migrationId}/source/manifest-url',
  tags,
  summary: 'A presigned URL to PUT the manifest (source agent)',
  description:
    'Manifests go to storage, not through the API body, so their size is not bound by request limits. The URL ' +
    'carries the SHA-256 checksum: storage refuses other bytes.',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: ManifestUploadRequest } }, required: true },
  },
  responses: {
    200: json(ManifestUploadUrl, 'Upload the manifest JSON here'),
    ...errorResponses(404, 409),
  },
});

export const SubmitManifest = ManifestUploadRequest.openapi('SubmitManifest');

export const ManifestAccepted = z
  .object({
    size: z.int(),
    chunks: z.int(),
    uniqueChunks: z.int(),
    format: ImageFormat,
  })
  .openapi('ManifestAccepted');

export const submitManifest = route({
  operationId: 'submitManifest',
  method: 'post',
  path: '/v1/migrations/{migrationId}/source/manifest',
  tags,
  summary: 'Submit the uploaded manifest (source agent)',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: SubmitManifest } }, required: true },
  },
  responses: { 200: json(ManifestAccepted, 'Accepted'), ...errorResponses(404, 409) },
});

export const UploadChunk = z
  .object({
    sha256: Sha256,
    offset: z.int().describe('where the chunk starts in the source image'),
    length: z.int(),
  })
  .openapi('UploadChunk');
export type UploadChunk = z.infer<typeof UploadChunk>;

export const listUploadChunks = route({
  operationId: 'listUploadChunks',
  method: 'get',
  path: '/v1/migrations/{migrationId}/source/upload-plan',
  tags,
  summary: 'The chunks still missing at the source cache node (paged): pack and upload these',
  description:
    'Chunks already stored and verified at the source cache node are left out, so a restarted agent resumes where ' +
    'it stopped. The agent encodes each chunk (zstd, or raw when that does not shrink it), groups them into packs ' +
    'of several MiB, PUTs each pack to the URL from pack-url, and reports it.',
  request: { params: idParams, query: PageQuery },
  responses: {
    200: json(z.object({ items: z.array(UploadChunk), nextCursor: z.string().optional() }), 'Chunks'),
    ...errorResponses(404, 409),
  },
});

export const PackUploadRequest = z
  .strictObject({
    sha256: Sha256.describe('SHA-256 of the pack (its name, and the checksum storage checks)'),
    size: z.int().min(MIN_PACK_BYTES).max(MAX_PACK_BYTES),
  })
  .openapi('PackUploadRequest');

export const createPackUploadUrl = route({
  operationId: 'createPackUploadUrl',
  method: 'post',
  path: '/v1/migrations/{migrationId}/source/pack-url',
  tags,
  summary: 'A presigned URL to PUT one pack of chunks to the source cache node (source agent)',
  description:
    'The URL carries the SHA-256 checksum: storage refuses other bytes. A pack is not indexed until it is reported ' +
    '(POST …/source/packs) and verified.',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: PackUploadRequest } }, required: true },
  },
  responses: {
    200: json(ManifestUploadUrl, 'PUT the pack here'),
    ...errorResponses(404, 409),
  },
});

export const ReportPacks = z
  .strictObject({ packs: z.array(Sha256).min(1).max(100).describe('SHA-256 of each pack stored') })
  .openapi('ReportPacks');

export const PacksVerified = z
  .object({
    verified: z.int().describe('packs read back and indexed'),
    chunks: z.int().describe('chunks of those packs now indexed at the source cache node'),
    rejected: z
      .array(z.object({ sha256: Sha256, reason: z.string() }))
      .describe('packs not stored, or not intact: build and upload their chunks again'),
  })
  .openapi('PacksVerified');

export const reportStoredPacks = route({
  operationId: 'reportStoredPacks',
  method: 'post',
  path: '/v1/migrations/{migrationId}/source/packs',
  tags,
  summary: 'Report uploaded packs; the server reads each back, checks every chunk in it, and indexes them',
  description:
    'Storage vouches for the pack (its SHA-256 checksum); the server decodes every entry and checks its digest, ' +
    'so no chunk is indexed that a destination would refuse.',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: ReportPacks } }, required: true },
  },
  responses: {
    200: json(PacksVerified, 'Verified'),
    ...errorResponses(404, 409),
  },
});

export const completeUpload = route({
  operationId: 'completeUpload',
  method: 'post',
  path: '/v1/migrations/{migrationId}/source/complete',
  tags,
  summary: 'Report the upload complete; the server checks every chunk is stored, then moves on',
  request: { params: idParams },
  responses: {
    200: json(z.object({ status: z.literal('complete'), verifiedChunks: z.int() }), 'All chunks verified'),
    202: json(
      z.object({ status: z.literal('verifying'), remaining: z.int() }),
      'Still verifying: call again',
    ),
    409: json(
      z.object({
        error: z
          .object({
            code: z.literal('Conflict'),
            message: z.string(),
            missing: z
              .array(Sha256)
              .optional()
              .describe('chunks not stored: upload these and call again (absent for a state conflict)'),
          })
          .catchall(z.unknown()),
      }),
      'Some chunks are not stored (`missing` lists them: upload these and call again), or the migration is not ' +
        'waiting for an upload (its `status` says where it is)',
    ),
    ...errorResponses(404),
  },
});

export const FailSource = z.strictObject({ reason: z.string().min(1).max(2000) }).openapi('FailSource');

export const failSource = route({
  operationId: 'failSource',
  method: 'post',
  path: '/v1/migrations/{migrationId}/source/failed',
  tags,
  summary: 'Report that the source cannot provide the image, with the cause (source agent)',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: FailSource } }, required: true },
  },
  responses: {
    200: json(z.object({ status: z.literal('failed') }), 'Recorded'),
    ...errorResponses(404, 409),
  },
});

export const SourceReleased = z
  .strictObject({
    hook: z
      .enum(['ran', 'none', 'skipped'])
      .describe(
        'whether an --on-migrated hook ran; skipped: the image was handed over in place at the source, so the hook, ' +
          'which would act on the delivered image, was not run',
      ),
  })
  .openapi('SourceReleased');

export const releaseSource = route({
  operationId: 'releaseSource',
  method: 'post',
  path: '/v1/migrations/{migrationId}/source/released',
  tags,
  summary:
    'Report that the source released the VM after every destination got it (source agent, mode migrate)',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: SourceReleased } }, required: true },
  },
  responses: {
    200: json(z.object({ status: z.literal('released') }), 'Recorded'),
    ...errorResponses(404, 409),
  },
});

export const AgentInfo = z
  .object({
    version: z.string().max(64),
    qemuImg: z
      .string()
      .max(64)
      .optional()
      .describe('qemu-img version; absent: this agent cannot convert formats'),
    seenAt: Timestamp,
  })
  .openapi('AgentInfo');

export const StoredPart = z
  .object({
    offset: z.int().min(0),
    length: z.int().min(1).describe('stored bytes: fetch bytes offset … offset + length − 1'),
    encoding: z.enum(ENCODINGS).describe('zstd: decompress to the chunk; raw: the bytes are the chunk'),
  })
  .openapi('StoredPart');
export type StoredPart = z.infer<typeof StoredPart>;

export const PlanChunk = z
  .object({
    index: z.int(),
    offset: z.int(),
    length: z.int(),
    sha256: Sha256,
    zero: z.boolean().describe('all zero bytes: write a hole, nothing to download'),
    url: z.string().optional().describe('signed edge URL (absent for zero chunks)'),
    part: StoredPart.optional().describe(
      'the chunk is this range of the object at url (a pack); absent: the whole object, raw',
    ),
  })
  .openapi('PlanChunk');
export type PlanChunk = z.infer<typeof PlanChunk>;

export const DownloadPlan = z
  .object({
    image: z.object({ size: z.int(), sha256: Sha256, format: ImageFormat, chunks: z.int() }),
    targetFormat: ImageFormat,
    items: z.array(PlanChunk),
    nextCursor: z.string().optional(),
    expiresAt: Timestamp,
  })
  .openapi('DownloadPlan');
export type DownloadPlan = z.infer<typeof DownloadPlan>;

export const getDownloadPlan = route({
  operationId: 'getDownloadPlan',
  method: 'get',
  path: '/v1/migrations/{migrationId}/destinations/{dataCenterId}/plan',
  tags,
  summary: 'The image manifest with signed edge URLs for the destination (paged)',
  request: { params: destParams, query: PageQuery },
  responses: { 200: json(DownloadPlan, 'Plan page'), ...errorResponses(404, 409) },
});

export const CompleteDestination = z
  .strictObject({
    sha256: Sha256.describe('SHA-256 of the image as received (before any format conversion)'),
    path: z.string().min(1).max(4096).optional().describe('where the agent put the image'),
    format: ImageFormat.optional().describe('the format of the image at that path (after conversion)'),
    bytesReused: z
      .int()
      .min(0)
      .optional()
      .describe('bytes taken from images the data center already held instead of downloaded'),
    allocatedBytes: z.int().min(0).optional().describe('disk space the image at that path takes'),
    replaced: z.boolean().optional().describe('a file was at that path before and was replaced'),
    bytesFetched: z
      .int()
      .min(0)
      .optional()
      .describe('bytes fetched through the edge, as they crossed the network (compressed)'),
  })
  .openapi('CompleteDestination');

export const completeDestination = route({
  operationId: 'completeDestination',
  method: 'post',
  path: '/v1/migrations/{migrationId}/destinations/{dataCenterId}/complete',
  tags,
  summary: 'Report the image written, verified and handed to the VM ready hook (destination agent)',
  request: {
    params: destParams,
    body: { content: { 'application/json': { schema: CompleteDestination } }, required: true },
  },
  responses: {
    200: json(z.object({ status: z.literal('complete') }), 'Leg completed'),
    ...errorResponses(404, 409),
  },
});

export const FailDestination = z
  .strictObject({ reason: z.string().min(1).max(2000) })
  .openapi('FailDestination');

export const failDestination = route({
  operationId: 'failDestination',
  method: 'post',
  path: '/v1/migrations/{migrationId}/destinations/{dataCenterId}/failed',
  tags,
  summary: 'Report that this destination cannot complete, with the cause (destination agent)',
  request: {
    params: destParams,
    body: { content: { 'application/json': { schema: FailDestination } }, required: true },
  },
  responses: {
    200: json(z.object({ status: z.literal('failed') }), 'Recorded'),
    ...errorResponses(404, 409),
  },
});

export const Heartbeat = z
  .strictObject({
    role: z.enum(['source', 'destination']),
    dataCenterId: NodeId,
    phase: z.enum(['chunking', 'uploading', 'downloading', 'verifying', 'converting']),
    bytesDone: z.int().min(0),
    chunksDone: z.int().min(0),
    bytesTotal: z.int().min(0).optional(),
    wireBytesDone: z
      .int()
      .min(0)
      .optional()
      .describe('bytes that crossed the network for bytesDone (compressed): a destination reports them'),
  })
  .openapi('Heartbeat');
export type Heartbeat = z.infer<typeof Heartbeat>;

export const sendHeartbeat = route({
  operationId: 'sendHeartbeat',
  method: 'post',
  path: '/v1/migrations/{migrationId}/heartbeat',
  tags,
  summary: 'Progress from an agent; keeps its waiting step alive',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: Heartbeat } }, required: true },
  },
  responses: {
    200: json(z.object({ status: z.string() }), 'Recorded; status tells the agent whether to go on'),
    ...errorResponses(404),
  },
});
