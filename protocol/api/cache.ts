// Cache space (draft §2, the CMN's "cache space"): the cache collector's settings, and pinned images, whose chunks
// the collector keeps at named cache nodes whatever the space and their age. Admin only.
import { z } from '@hono/zod-openapi';
import { errorResponses, json, NodeId, PageQuery, page, route, Timestamp } from './common.ts';
import { ImageId, MigrationId } from './migrations.ts';

const tags = ['cache'];

/** The longest grace period between marking a chunk and deleting it. */
export const MAX_GRACE_SECONDS = 30 * 86_400;
export const MAX_RETENTION_DAYS = 3650;
/** Cache nodes one pin names at most. */
export const MAX_PIN_NODES = 16;

const GraceSeconds = z
  .int()
  .min(0)
  .max(MAX_GRACE_SECONDS)
  .describe('seconds between marking a chunk for eviction and deleting it; a use in between saves it');
const RetentionDays = z
  .int()
  .min(1)
  .max(MAX_RETENTION_DAYS)
  .describe(
    'chunks no migration, pin or backup policy keeps go once unused this many days, whatever the space',
  );
const WaterMark = z.number().gt(0).max(1);

export const CacheSettings = z
  .object({
    graceSeconds: GraceSeconds,
    retentionDays: RetentionDays.optional().describe('absent: only space pressure evicts'),
    highWater: WaterMark.describe("fraction of a node's budget above which the collector evicts"),
    lowWater: WaterMark.describe('fraction of the budget it evicts down to'),
  })
  .openapi('CacheSettings');
export type CacheSettings = z.infer<typeof CacheSettings>;

export const CacheSettingsPatch = z
  .strictObject({
    graceSeconds: GraceSeconds.optional(),
    retentionDays: RetentionDays.nullable().optional().describe('null: no retention period'),
    highWater: WaterMark.optional(),
    lowWater: WaterMark.optional(),
  })
  .refine((p) => Object.keys(p).length > 0, {
    message: 'give at least one setting',
    // An unknown field alone is named as such, not as an empty patch.
    when: (payload) => payload.issues.length === 0,
  })
  // Both given: checked here (each is at fault). One given: the server checks it against the stored other.
  .superRefine((p, ctx) => {
    if (p.lowWater === undefined || p.highWater === undefined || p.lowWater <= p.highWater) return;
    for (const path of ['lowWater', 'highWater'])
      ctx.addIssue({ code: 'custom', path: [path], message: 'lowWater must not be above highWater' });
  })
  .openapi('CacheSettingsPatch');

export const PinInput = z
  .strictObject({
    cacheNodeIds: z
      .array(NodeId)
      .min(1)
      .max(MAX_PIN_NODES)
      .refine((ids) => new Set(ids).size === ids.length, 'lists a cache node twice')
      .describe('the cache nodes that keep the image'),
    migrationId: MigrationId.optional().describe(
      'the migration whose version of the image to keep (its manifest); default: the latest COMPLETED ' +
        'migration of the image',
    ),
  })
  .openapi('PinInput');

export const Pin = z
  .object({
    imageId: ImageId,
    migrationId: MigrationId.describe('the migration whose manifest is the pinned version'),
    cacheNodeIds: z.array(NodeId),
    pinnedAt: Timestamp,
  })
  .openapi('Pin');
export type Pin = z.infer<typeof Pin>;

const imageParams = z.object({
  imageId: ImageId.openapi({ param: { name: 'imageId', in: 'path' }, example: 'web-01.qcow2' }),
});

export const getCacheSettings = route({
  operationId: 'getCacheSettings',
  method: 'get',
  path: '/v1/cache/settings',
  tags,
  summary: "The cache collector's settings (admin)",
  responses: { 200: json(CacheSettings, 'The settings') },
});

export const patchCacheSettings = route({
  operationId: 'patchCacheSettings',
  method: 'patch',
  path: '/v1/cache/settings',
  tags,
  summary: "Change some of the cache collector's settings (admin); the next pass uses them",
  request: { body: { content: { 'application/json': { schema: CacheSettingsPatch } }, required: true } },
  responses: { 200: json(CacheSettings, 'The settings now') },
});

export const listPins = route({
  operationId: 'listPins',
  method: 'get',
  path: '/v1/pins',
  tags,
  summary: 'List pinned images (admin)',
  request: { query: PageQuery },
  responses: { 200: json(page(Pin, 'PinPage'), 'Pins, by image id') },
});

export const getPin = route({
  operationId: 'getPin',
  method: 'get',
  path: '/v1/pins/{imageId}',
  tags,
  summary: "An image's pin (admin)",
  request: { params: imageParams },
  responses: { 200: json(Pin, 'The pin'), ...errorResponses(404) },
});

export const putPin = route({
  operationId: 'putPin',
  method: 'put',
  path: '/v1/pins/{imageId}',
  tags,
  summary: 'Pin a version of an image at some cache nodes, or change its pin (admin)',
  request: {
    params: imageParams,
    body: { content: { 'application/json': { schema: PinInput } }, required: true },
  },
  responses: {
    200: json(Pin, 'Replaced'),
    201: json(Pin, 'Pinned'),
    ...errorResponses(404, 409),
  },
});

export const deletePin = route({
  operationId: 'deletePin',
  method: 'delete',
  path: '/v1/pins/{imageId}',
  tags,
  summary: 'Unpin an image (admin): its chunks are evictable again',
  request: { params: imageParams },
  responses: { 204: { description: 'Unpinned' }, ...errorResponses(404) },
});
