// Backup policies (draft §3.1 step 1, "automatically triggered"): a VM backed up to some destinations every
// interval, on its own.
import { z } from '@hono/zod-openapi';
import { errorResponses, json, NodeId, PageQuery, page, pathId, route, Timestamp } from './common.ts';
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

/** How far in the past a first run time may lie: the caller's clock and ours differ by a little. */
export const FIRST_RUN_SKEW_MS = 60_000;
/** How far ahead a first run may be set. */
export const FIRST_RUN_HORIZON_MS = 366 * 86_400_000;

// A string that is no date-time at all gets only the format's complaint (NaN passes the two checks on time).
const FirstRunAt = z.iso
  .datetime({ offset: true })
  .refine(
    (t) => !(Date.parse(t) < Date.now() - FIRST_RUN_SKEW_MS),
    'must be in the future (a first run time in the past would run at once)',
  )
  .refine((t) => !(Date.parse(t) > Date.now() + FIRST_RUN_HORIZON_MS), 'must be within a year from now')
  .describe(
    'when the first backup runs (ISO 8601 date-time, in the future and within a year); then every ' +
      'intervalMinutes. Default: at once for a new policy; a changed policy keeps its schedule',
  )
  .openapi({ example: '2026-11-26T02:00:00Z' });

/** Runs a policy keeps at most (and remembers in recentRuns). */
export const MAX_KEPT_RUNS = 30;

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
    firstRunAt: FirstRunAt.optional(),
    enabled: z.boolean().default(true),
    onCongestion: OnCongestion.default('wait'),
    queueTimeoutSeconds: QueueTimeoutSeconds,
    keepRuns: z
      .int()
      .min(0)
      .max(MAX_KEPT_RUNS)
      .default(1)
      .describe(
        "the latest completed runs whose chunks the cache collector keeps at the destinations' cache nodes " +
          '(0: none; the next run then moves only what changed since a kept run)',
      ),
  })
  .openapi('BackupPolicyInput');
export type BackupPolicyInput = z.infer<typeof BackupPolicyInput>;

// One flat object, not an `allOf` of the input and the server's fields: the input is strict (no other
// keys), so each half of such an allOf refuses the other's fields and no policy could validate.
export const BackupPolicy = z
  .object({
    ...BackupPolicyInput.shape,
    firstRunAt: Timestamp.optional().describe('the first run time given when the policy was put'),
    id: NodeId,
    nextRunAt: Timestamp,
    recentRuns: z
      .array(z.object({ at: Timestamp, migrationId: MigrationId }))
      .optional()
      .describe('the latest runs that started a backup, newest first'),
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
  })
  .openapi('BackupPolicy');
export type BackupPolicy = z.infer<typeof BackupPolicy>;

const idParams = z.object({ policyId: pathId('policyId', 'nightly-web-01') });

export const listPolicies = route({
  operationId: 'listPolicies',
  method: 'get',
  path: '/v1/backup-policies',
  tags,
  summary: 'List backup policies',
  request: { query: PageQuery },
  responses: {
    200: json(page(BackupPolicy, 'BackupPolicyPage'), 'Policies'),
  },
});

export const getPolicy = route({
  operationId: 'getPolicy',
  method: 'get',
  path: '/v1/backup-policies/{policyId}',
  tags,
  summary: 'A backup policy and its last run',
  request: { params: idParams },
  responses: { 200: json(BackupPolicy, 'The policy'), ...errorResponses(404) },
});

export const putPolicy = route({
  operationId: 'putPolicy',
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
    ...errorResponses(404),
  },
});

export const deletePolicy = route({
  operationId: 'deletePolicy',
  method: 'delete',
  path: '/v1/backup-policies/{policyId}',
  tags,
  summary: 'Remove a backup policy (admin); running backups go on',
  request: { params: idParams },
  responses: { 204: { description: 'Removed' }, ...errorResponses(404) },
});
