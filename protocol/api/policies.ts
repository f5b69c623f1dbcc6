// Backup policies (draft §3.1 step 1, "automatically triggered"): a VM backed up to some destinations every
// interval, on its own.
import { createRoute, z } from '@hono/zod-openapi';
import { errorResponses, json, NodeId, PageQuery, page, pathId, Timestamp } from './common.ts';
import {
  Destination,
  ImageId,
  MigrationId,
  MigrationStatus,
  OnCongestion,
  QueueTimeoutSeconds,
} from './migrations.ts';

const tags = ['policies'];
const Ident = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, 'letters, digits and . _ : @ -');

export const BackupPolicyInput = z
  .strictObject({
    vmId: Ident,
    hostId: Ident,
    imageId: ImageId,
    sourceDataCenterId: NodeId,
    destinations: z
      .array(Destination)
      .min(1)
      .max(16)
      .refine((d) => new Set(d.map((x) => x.dataCenterId)).size === d.length, 'lists a data center twice'),
    intervalMinutes: z
      .int()
      .min(1)
      .max(366 * 24 * 60),
    firstRunAt: z.iso.datetime().optional().describe('default: now'),
    enabled: z.boolean().default(true),
    onCongestion: OnCongestion.default('wait'),
    queueTimeoutSeconds: QueueTimeoutSeconds,
  })
  .openapi('BackupPolicyInput');
export type BackupPolicyInput = z.infer<typeof BackupPolicyInput>;

export const BackupPolicy = BackupPolicyInput.extend({
  id: NodeId,
  nextRunAt: Timestamp,
  lastRun: z
    .object({
      at: Timestamp,
      migrationId: MigrationId.optional(),
      skipped: z.string().optional(),
      status: MigrationStatus.optional(),
    })
    .optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}).openapi('BackupPolicy');
export type BackupPolicy = z.infer<typeof BackupPolicy>;

const idParams = z.object({ policyId: pathId('policyId', 'nightly-web-01') });

export const listPolicies = createRoute({
  method: 'get',
  path: '/v1/backup-policies',
  tags,
  summary: 'List backup policies',
  request: { query: PageQuery },
  responses: {
    200: json(page(BackupPolicy, 'BackupPolicyPage'), 'Policies'),
    ...errorResponses(400, 401, 403),
  },
});

export const getPolicy = createRoute({
  method: 'get',
  path: '/v1/backup-policies/{policyId}',
  tags,
  summary: 'A backup policy and its last run',
  request: { params: idParams },
  responses: { 200: json(BackupPolicy, 'The policy'), ...errorResponses(401, 403, 404) },
});

export const putPolicy = createRoute({
  method: 'put',
  path: '/v1/backup-policies/{policyId}',
  tags,
  summary: 'Create or replace a backup policy (admin)',
  request: {
    params: idParams,
    body: { content: { 'application/json': { schema: BackupPolicyInput } }, required: true },
  },
  responses: {
    200: json(BackupPolicy, 'Replaced'),
    201: json(BackupPolicy, 'Created'),
    ...errorResponses(400, 401, 403, 404),
  },
});

export const deletePolicy = createRoute({
  method: 'delete',
  path: '/v1/backup-policies/{policyId}',
  tags,
  summary: 'Remove a backup policy (admin); running backups go on',
  request: { params: idParams },
  responses: { 204: { description: 'Removed' }, ...errorResponses(401, 403, 404) },
});
