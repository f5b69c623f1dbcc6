// Batch migration (draft §4.1): many VMs from one data center to another in one request, one status that
// rolls the rest up.
import { z } from '@hono/zod-openapi';
import { errorResponses, json, NodeId, route, Timestamp } from './common.ts';
import { Destination, ImageId, MigrationId, MigrationOptions, MigrationStatus } from './migrations.ts';

const tags = ['migrations'];
const Ident = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, 'letters, digits and . _ : @ -');

export const BatchId = z
  .string()
  .regex(/^batch-[0-9a-z]{20,40}$/, 'is not a batch id')
  .openapi({ example: 'batch-0mwvv646j8lwuhuhypl020a' });

export const BatchVm = z.strictObject({ vmId: Ident, hostId: Ident, imageId: ImageId }).openapi('BatchVm');

export const MAX_BATCH_VMS = 100;

export const CreateBatch = MigrationOptions.extend({
  sourceDataCenterId: NodeId,
  destinations: z
    .array(Destination)
    .min(1)
    .max(16)
    .refine((d) => new Set(d.map((x) => x.dataCenterId)).size === d.length, 'lists a data center twice'),
  vms: z
    .array(BatchVm)
    .min(1)
    .max(MAX_BATCH_VMS)
    .refine((v) => new Set(v.map((x) => x.vmId)).size === v.length, 'lists a VM twice'),
}).openapi('CreateBatch');
export type CreateBatch = z.infer<typeof CreateBatch>;

export const BatchStatus = z
  .enum(['RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'])
  .describe(
    'RUNNING until every migration has ended; then COMPLETED if all completed, else FAILED (CANCELLED if all were)',
  )
  .openapi('BatchStatus');

export const Batch = z
  .object({
    id: BatchId,
    url: z.string(),
    status: BatchStatus,
    sourceDataCenterId: NodeId,
    destinations: z.array(NodeId),
    total: z.int(),
    counts: z.partialRecord(MigrationStatus, z.int()).describe('migrations per status'),
    bytes: z.object({
      image: z.int().describe('sum of image sizes known so far'),
      uploaded: z.int(),
      cached: z.int().describe('not uploaded: some cache node already held it'),
      shared: z.int().describe('chunks two VMs of the batch share: uploaded once'),
      replicated: z
        .int()
        .describe('bytes the destination cache nodes hold of the images (already there or copied)'),
      copied: z.int().describe('bytes copied between cache nodes, each chunk once per node'),
      downloaded: z.int(),
    }),
    slowest: z
      .object({
        migrationId: MigrationId,
        vmId: z.string(),
        status: MigrationStatus,
        progress: z.number().min(0).max(1),
      })
      .optional()
      .describe('the migration furthest from done (the one that took longest, once all ended)'),
    migrations: z.array(
      z.object({ id: MigrationId, vmId: z.string(), status: MigrationStatus, progress: z.number() }),
    ),
    createdAt: Timestamp,
  })
  .openapi('Batch');
export type Batch = z.infer<typeof Batch>;

export const createBatch = route({
  operationId: 'createBatch',
  method: 'post',
  path: '/v1/batches',
  tags,
  summary: 'Migrate many VMs in one request (admin)',
  description:
    'One migration per VM; VMs sharing content upload the shared chunks once. Idempotency-Key works as for migrations.',
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
    body: { content: { 'application/json': { schema: CreateBatch } }, required: true },
  },
  responses: { 202: json(Batch, 'Accepted'), ...errorResponses(404, 409) },
});

export const getBatch = route({
  operationId: 'getBatch',
  method: 'get',
  path: '/v1/batches/{batchId}',
  tags,
  summary: 'The rolled-up status of a batch',
  request: { params: z.object({ batchId: BatchId.openapi({ param: { name: 'batchId', in: 'path' } }) }) },
  responses: { 200: json(Batch, 'The batch'), ...errorResponses(404) },
});
