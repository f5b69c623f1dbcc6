// Bad input, property-based (issue 6 item 4): every route of protocol/api/*.ts but the agent protocol (see
// api-fuzz-agent.test.ts) gets requests broken in one place at a time — malformed and unknown ids, wrong query
// values and forged cursors, bodies with a field missing, of the wrong type or huge, unknown references, bad
// credentials, a non-JSON content type, bad Idempotency-Keys. Every answer is a 4xx with a JSON error naming the
// field; the tables and buckets are unchanged afterwards.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { getOpenApiDocument, openApiDocument } from '../../lambdas/api/app.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { fcOptions } from './support/arbitraries.ts';
import { baselines, type Fixtures } from './support/baselines.ts';
import { createFixtures, knownIds } from './support/fixtures.ts';
import { expectRejected, ROUTES, routeName, sender } from './support/fuzz.ts';
import { type FuzzContext, fuzzRoute } from './support/fuzz-route.ts';
import { snapshotter } from './support/snapshot.ts';

// The machine may be shared and busy: whole migrations run in some tests.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });
const RUNS = Number(process.env['CHAOS_FUZZ_RUNS'] ?? 25);

let t: TestCloud;
let f: Fixtures;
let ctx: FuzzContext;
let close: () => void;

beforeAll(async () => {
  // Fuzzing sends hundreds of requests a second from one principal: no rate limit here (api-rate-limit tests it).
  t = await startTestCloud({ agents: false, policyTickMs: 0, rateLimit: false });
  f = await createFixtures(t);
  const snapshot = snapshotter(t, { ignoreAttributes: { Registry: ['agent'] } });
  close = snapshot.close;
  ctx = {
    send: sender(t),
    snapshot,
    validTokens: [t.cloud.tokens.adminToken, t.cloud.agentToken('dc-gz'), t.cloud.agentToken('dc-osa')],
    knownIds: knownIds(t, f),
    runs: RUNS,
  };
});
afterAll(async () => {
  close?.();
  await t?.dispose();
});

const controlRoutes = ROUTES.filter((r) => !(r.tags ?? []).includes('agent'));

describe('every route is covered', () => {
  it('the route list matches the OpenAPI document, and each route has a valid baseline request', () => {
    // The document's own route is the app's, not the protocol's (it takes no input to fuzz).
    const own = `${getOpenApiDocument.method.toUpperCase()} ${getOpenApiDocument.path}`;
    const documented = Object.entries(openApiDocument().paths ?? {})
      .flatMap(([path, item]) => Object.keys(item as object).map((m) => `${m.toUpperCase()} ${path}`))
      .filter((name) => name !== own);
    expect(ROUTES.map(routeName).sort()).toEqual(documented.sort());
    const defined = baselines({} as Fixtures);
    for (const r of ROUTES) expect(defined[routeName(r)], routeName(r)).toBeDefined();
  });
});

describe('bad input is a 4xx naming the field, and changes nothing', () => {
  for (const r of controlRoutes) {
    it(routeName(r), async () => {
      await fuzzRoute(ctx, r, baselines(f)[routeName(r)] ?? {});
    });
  }

  it('a method a path does not serve is a JSON 404', async () => {
    const served = new Map<string, Set<string>>();
    for (const r of ROUTES) served.set(r.path, (served.get(r.path) ?? new Set()).add(r.method.toUpperCase()));
    const pairs = [...served].flatMap(([path, methods]) =>
      ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => !methods.has(m)).map((m) => [path, m] as const),
    );
    const params = {
      migrationId: f.migrationId,
      dataCenterId: f.to,
      batchId: f.batchId,
      cacheNodeId: 'hkg',
      policyId: f.policyId,
    };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...pairs), async ([path, method]) => {
        const res = await ctx.send({ method, path, params, ...(method === 'GET' ? {} : { body: {} }) });
        expectRejected(res, { statuses: [404], code: 'NotFound', what: `${method} ${path}` });
      }),
      fcOptions(Math.min(pairs.length, RUNS * 3)),
    );
  });
});
