// The CVMM front end: one platform-neutral Hono app. Lambda (lambdas/api/lambda.ts) and the local cloud
// (@hono/node-server) both serve exactly this app; only `deps` differ.
import { health } from '../../protocol/api/common.ts';
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
import { estimateRoutes } from './routes/estimate.ts';
import { mappingRoutes } from './routes/mapping.ts';
import { migrationRoutes } from './routes/migrations.ts';
import { policyRoutes } from './routes/policies.ts';
import { registryRoutes } from './routes/registry.ts';

export const API_VERSION = '1.0.0';
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
  security: [{ bearer: [] }],
};

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
  app.route('/', agentSourceRoutes(deps));
  app.route('/', agentDestinationRoutes(deps));
  app.route('/', agentRepairRoutes(deps));

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'Local cloud: the tokens printed by `vmmig local`. On AWS the API uses IAM (SigV4) instead.',
  });
  app.doc31('/openapi.json', OPENAPI_CONFIG);
  return app;
}

export type App = ReturnType<typeof createApp>;

/** The OpenAPI document, without a running app (the routes never touch their dependencies to describe themselves). */
export function openApiDocument() {
  const app = createApp({} as ApiDeps);
  return app.getOpenAPI31Document(OPENAPI_CONFIG);
}
