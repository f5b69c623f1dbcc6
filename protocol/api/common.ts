// Shared API pieces: error body, pagination, ids. Every route's schemas are built from these.
import { createRoute, z } from '@hono/zod-openapi';
import { nodeIdSchema, locationSchema as topologyLocationSchema } from '../topology.ts';

export const ErrorBody = z
  .object({
    error: z
      .object({
        code: z.enum([
          'ValidationError',
          'Unauthorized',
          'Forbidden',
          'NotFound',
          'Conflict',
          'LimitExceeded',
          'UnsupportedMediaType',
          'ServiceUnavailable',
          'InternalError',
        ]),
        message: z.string(),
        issues: z.array(z.object({ field: z.string(), reason: z.string() })).optional(),
      })
      .catchall(z.unknown()),
  })
  .openapi('Error');
export type ErrorBody = z.infer<typeof ErrorBody>;

// zod copies prototype methods onto a schema when it is built, so a schema built by ../topology.ts before
// @hono/zod-openapi was first imported has no `.openapi`; a clone is built now, after the extension.
export const NodeId = nodeIdSchema.clone().openapi({ example: 'dc-gz' });
export const Location = topologyLocationSchema
  .clone()
  .openapi('Location', { example: { lat: 23.13, lon: 113.26 } });

export const Timestamp = z.iso.datetime().openapi({ example: '2026-11-25T08:00:00.000Z' });

export const PageQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(100)
    .openapi({ param: { name: 'limit', in: 'query' } }),
  cursor: z
    .string()
    .max(2048)
    .optional()
    .openapi({ param: { name: 'cursor', in: 'query' }, description: 'nextCursor of the previous page' }),
});

export function page<T extends z.ZodType>(item: T, name: string) {
  return z.object({ items: z.array(item), nextCursor: z.string().optional() }).openapi(name);
}

export const pathId = (name: string, example: string) =>
  NodeId.openapi({ param: { name, in: 'path' }, example });

/** The listed statuses, and 503: any route that touches storage can meet a storage service that is briefly down. */
export const errorResponses = (...codes: (400 | 401 | 403 | 404 | 409 | 413 | 429)[]) =>
  Object.fromEntries(
    [...codes, 503 as const].map((code) => [
      code,
      { content: { 'application/json': { schema: ErrorBody } }, description: ERROR_TEXT[code] },
    ]),
  );

const ERROR_TEXT = {
  400: 'Invalid input: the body names the field and the reason',
  401: 'Missing or invalid credentials',
  403: 'The principal may not do this',
  404: 'No such resource',
  409: 'Conflict with the current state: the body says what to do next',
  413: 'Request too large',
  429: 'Too many requests',
  503: 'A storage service (DynamoDB, S3) failed transiently beyond its own retries: retry after Retry-After seconds',
} as const;

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

export const health = createRoute({
  method: 'get',
  path: '/health',
  tags: ['service'],
  summary: 'Liveness; needs no credentials',
  security: [],
  responses: { 200: json(z.object({ status: z.literal('ok'), version: z.string() }), 'The API is up') },
});
