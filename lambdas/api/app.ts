// The CVMM front end: one platform-neutral Hono app. Lambda (lambdas/api/lambda.ts) and the local cloud
// (@hono/node-server) both serve exactly this app; only `deps` differ.
import { z } from '@hono/zod-openapi';
import { health, json, route } from '../../protocol/api/common.ts';
import { AppError } from '../domain/errors.ts';
import { bodyCap } from './body-cap.ts';
import type { ApiDeps } from './deps.ts';
import { router } from './env.ts';
import { errorResponse } from './errors.ts';
import { unauthorized } from './principal.ts';
import { agentDestinationRoutes } from './routes/agent-destination.ts';
import { agentRepairRoutes } from './routes/agent-repair.ts';
import { agentSourceRoutes } from './routes/agent-source.ts';
import { batchRoutes } from './routes/batches.ts';
import { cacheRoutes } from './routes/cache.ts';
import { cacheGcRoutes } from './routes/cache-gc.ts';
import { cacheVerifyRoutes } from './routes/cache-verify.ts';
import { estimateRoutes } from './routes/estimate.ts';
import { mappingRoutes } from './routes/mapping.ts';
import { migrationRoutes } from './routes/migrations.ts';
import { policyRoutes } from './routes/policies.ts';
import { registryRoutes } from './routes/registry.ts';

export const API_VERSION = '1.0.0';
/** The local cloud's API port unless told otherwise (local/cloud.ts DEFAULT_PORT_BASE; a test keeps them equal). */
export const LOCAL_API_PORT = 7700;
/** API Gateway caps bodies at 10 MB; we stay well below and say so. */
export const MAX_BODY_BYTES = 1024 * 1024;

export const OPENAPI_CONFIG = {
  openapi: '3.1.0',
  info: {
    title: 'cdn-vm-migration API',
    version: API_VERSION,
    description:
      'CVMM front end of the CDN-based VM migration scheme (draft-ou-cdn-vm-migration-scheme-00): node registry, ' +
      'the RMG mapping tables, migrations and the agent protocol.',
  },
  servers: [
    {
      url: `http://127.0.0.1:${LOCAL_API_PORT}`,
      description: 'The local cloud (`vmmig local`; another port with --port-base)',
    },
    {
      url: 'https://{apiId}.execute-api.{region}.amazonaws.com',
      // Variables carry no description: the OpenAPI 3.1 schema validators use (2022-10-07) misspells that field.
      description:
        'Deployed on AWS: the ApiUrl output of the control-plane stack ($default stage): apiId is the HTTP API id, ' +
        'region the home region (cdk.json)',
      variables: { apiId: { default: 'abcde12345' }, region: { default: 'ap-northeast-1' } },
    },
  ],
  tags: [
    { name: 'service', description: 'Liveness and this document; no credentials' },
    { name: 'registry', description: 'Data centers (VRN) and cache nodes (CCN) of the RMG node registry' },
    {
      name: 'mapping',
      description: "The draft's RMG mapping tables: ContentMap (Table 1), LocationMap (Table 2)",
    },
    { name: 'migrations', description: 'Migrations, batches and estimates (CVMM)' },
    { name: 'policies', description: 'Backup policies: a VM backed up on a schedule' },
    {
      name: 'cache',
      description: "Cache space: the cache collector's settings, and images pinned at cache nodes",
    },
    {
      name: 'agent',
      description: "The data center agent's protocol (draft V-C): work, upload, download, reports",
    },
  ],
  security: [{ bearer: [] }],
};

// The document itself, served by doc31 (an app-level route, not one of the protocol's: the CLI never calls it).
export const getOpenApiDocument = route({
  operationId: 'getOpenApiDocument',
  method: 'get',
  path: '/openapi.json',
  tags: ['service'],
  summary: 'This OpenAPI document; needs no credentials',
  security: [],
  responses: {
    200: json(z.object({ openapi: z.string() }).catchall(z.unknown()), 'The OpenAPI 3.1 document'),
  },
});

export function createApp(deps: ApiDeps) {
  const app = router();

  app.onError((err, c) => errorResponse(c, err));
  app.notFound((c) =>
    errorResponse(c, new AppError('not_found', `no route for ${c.req.method} ${c.req.path}`)),
  );

  app.openapi(health, (c) => c.json({ status: 'ok' as const, version: API_VERSION }, 200));

  app.use(
    '/v1/*',
    bodyCap(MAX_BODY_BYTES, (c) =>
      errorResponse(c, new AppError('limit', `request body over ${MAX_BODY_BYTES} bytes`)),
    ),
  );
  app.use('/v1/*', async (c, next) => {
    const principal = await deps.authenticate(c.req.raw, c.env);
    if (!principal) throw unauthorized();
    c.set('principal', principal);
    await next();
  });

  app.route('/', registryRoutes(deps));
  app.route('/', mappingRoutes(deps));
  app.route('/', migrationRoutes(deps));
  app.route('/', batchRoutes(deps));
  app.route('/', estimateRoutes(deps));
  app.route('/', policyRoutes(deps));
  app.route('/', cacheRoutes(deps));
  app.route('/', cacheGcRoutes(deps));
  app.route('/', cacheVerifyRoutes(deps));
  app.route('/', agentSourceRoutes(deps));
  app.route('/', agentDestinationRoutes(deps));
  app.route('/', agentRepairRoutes(deps));

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'Local cloud: the tokens printed by `vmmig local`. On AWS the API uses IAM (SigV4) instead.',
  });
  // Served by doc31 below; registered so that the document describes itself too.
  app.openAPIRegistry.registerPath(getOpenApiDocument);
  app.doc31('/openapi.json', OPENAPI_CONFIG);
  return app;
}

export type App = ReturnType<typeof createApp>;

/** The OpenAPI document, without a running app (the routes never touch their dependencies to describe themselves). */
export function openApiDocument() {
  const app = createApp({} as ApiDeps);
  return app.getOpenAPI31Document(OPENAPI_CONFIG);
}
