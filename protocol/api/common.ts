// Shared API pieces: error body, pagination, ids. Every route's schemas are built from these.
import { createRoute, type RouteConfig, z } from '@hono/zod-openapi';
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

/** What API Gateway itself answers (AWS: IAM authorizer 403, stage throttling 429, integration failures 5xx). */
export const GatewayError = z
  .object({ message: z.string() })
  .describe("API Gateway's own answer, before or instead of the API's")
  .openapi('GatewayError');

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 500 | 503;

const ERROR_TEXT: Record<ErrorStatus, string> = {
  400: 'Invalid input: the body names the field and the reason',
  401: 'Missing or invalid credentials',
  403: 'The principal may not do this',
  404: 'No such resource',
  409: 'Conflict with the current state: the body says what to do next',
  413: 'Request body over 1 MiB',
  415: 'A body not sent as application/json',
  429: 'Too many requests: retry after Retry-After seconds',
  500: 'Unexpected failure, logged with its cause',
  503: 'A storage service (DynamoDB, S3) failed transiently beyond its own retries: retry after Retry-After seconds',
};

/** Statuses API Gateway may answer itself on AWS (and the local IAM gate's 403 locally), in its own body. */
const GATEWAY_TOO: ReadonlySet<ErrorStatus> = new Set([403, 429, 500, 503]);
const RETRY_AFTER = {
  'Retry-After': {
    description: 'seconds to wait before sending again',
    schema: { type: 'integer', minimum: 1 },
  },
} as const;

function errorResponse(code: ErrorStatus) {
  const schema = GATEWAY_TOO.has(code) ? z.union([ErrorBody, GatewayError]) : ErrorBody;
  return {
    content: { 'application/json': { schema } },
    description: ERROR_TEXT[code],
    ...(code === 429 || code === 503 ? { headers: RETRY_AFTER } : {}),
  };
}

/** The statuses one route answers besides those every route shares (see `route`). */
export const errorResponses = (...codes: ErrorStatus[]) =>
  Object.fromEntries(codes.map((code) => [code, errorResponse(code)]));

/**
 * The statuses every operation can answer, whatever it does: 429 (rate limit) and 500 anywhere; under /v1 also
 * 401 and 403 (authentication, and the IAM authorizer in front), 413 (the body cap) and 503 (storage); 400 where
 * the request has anything to validate and 415 where it takes a body.
 */
function commonErrors(config: Pick<RouteConfig, 'path' | 'request'>): ErrorStatus[] {
  const v1 = config.path.startsWith('/v1/');
  const r = config.request;
  const validated = Boolean(r?.params || r?.query || r?.headers || r?.body);
  return [
    ...(v1 && validated ? [400 as const] : []),
    ...(v1 ? [401 as const, 403 as const, 413 as const] : []),
    ...(r?.body ? [415 as const] : []),
    429,
    500,
    ...(v1 ? [503 as const] : []),
  ];
}

/**
 * createRoute with the responses every route shares added, and an operationId every route must give (the name
 * of its constant: generated clients call it by that name).
 */
export function route<
  P extends string,
  R extends Omit<RouteConfig, 'path'> & { path: P; operationId: string },
>(config: R): ReturnType<typeof createRoute<P, R>> {
  const responses = { ...errorResponses(...commonErrors(config)), ...config.responses };
  return createRoute({ ...config, responses }) as ReturnType<typeof createRoute<P, R>>;
}

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

export const health = route({
  operationId: 'health',
  method: 'get',
  path: '/health',
  tags: ['service'],
  summary: 'Liveness; needs no credentials',
  security: [],
  responses: { 200: json(z.object({ status: z.literal('ok'), version: z.string() }), 'The API is up') },
});
