// Fuzzes one route in every dimension a request has — path ids, query, body, referenced ids, credentials,
// content type, idempotency key — each property breaking one thing in an otherwise valid request, and proves
// afterwards that nothing was stored.
import fc from 'fast-check';
import { expect } from 'vitest';
import {
  badAuthorization,
  badBodies,
  badIdempotencyKey,
  fcOptions,
  junkString,
  notJsonContentType,
} from './arbitraries.ts';
import { type Baseline, CREATES_BY_ID, REFERENCES } from './baselines.ts';
import {
  expectRejected,
  type RawRequest,
  type RawResponse,
  type Route,
  routeName,
  schemasOf,
} from './fuzz.ts';
import type { Snapshot } from './snapshot.ts';

export interface FuzzContext {
  readonly send: (req: RawRequest) => Promise<RawResponse>;
  readonly snapshot: { take(): Promise<Snapshot>; diff(a: Snapshot, b: Snapshot): string[] };
  /** Tokens that do authenticate (the bad ones are made from these). */
  readonly validTokens: readonly string[];
  /** Ids that exist: never used as "unknown". */
  readonly knownIds: ReadonlySet<string>;
  /** Runs per property. */
  readonly runs: number;
}

/** Well-formed ids that name nothing, for a parameter validated by `schema`. */
const unknownIdFor = (name: string) =>
  name === 'migrationId'
    ? fc.stringMatching(/^[0-9a-z]{26}$/).map((s) => `mig-${s}`)
    : name === 'batchId'
      ? fc.stringMatching(/^[0-9a-z]{25}$/).map((s) => `batch-${s}`)
      : fc.stringMatching(/^[a-z][a-z0-9]{1,12}$/).map((s) => `zz-${s}`);

const cursorKeys = [
  'kind',
  'id',
  'pk',
  'sk',
  'gsi1pk',
  'gsi1sk',
  'migrationId',
  'rowKey',
  'dataCenterId',
  'x',
];

/** Cursors a client could forge: garbage, numbers, and base64url JSON shaped like the keys the API encodes. */
const forgedCursor = fc.oneof(
  junkString.filter((s) => s.length <= 2048),
  fc.integer({ min: -5, max: 100_000 }).map(String),
  fc
    .dictionary(fc.constantFrom(...cursorKeys), fc.oneof(junkString, fc.integer(), fc.constant(null)), {
      maxKeys: 5,
    })
    .map((key) => Buffer.from(JSON.stringify(key)).toString('base64url'))
    .filter((s) => s.length <= 2048),
);

export async function fuzzRoute(ctx: FuzzContext, route: Route, baseline: Baseline): Promise<void> {
  const name = routeName(route);
  const schemas = schemasOf(route);
  const base: RawRequest = { method: route.method, path: route.path, ...baseline };
  const before = await ctx.snapshot.take();
  const check = async (
    arb: fc.Arbitrary<RawRequest>,
    expectation: (res: RawResponse, req: RawRequest) => void,
  ) =>
    fc.assert(
      fc.asyncProperty(arb, async (req) => expectation(await ctx.send(req), req)),
      fcOptions(ctx.runs),
    );

  // Path ids: malformed ones are a 400 naming the parameter; well-formed ones that name nothing a 404 (a PUT
  // that would create is only given malformed ids).
  for (const param of Object.keys(schemas.params?.shape ?? {})) {
    const schema = schemas.params?.shape[param] as { safeParse(v: unknown): { success: boolean } };
    const values = CREATES_BY_ID.has(name)
      ? junkString.filter((v) => !schema.safeParse(v).success)
      : fc.oneof(junkString, unknownIdFor(param)).filter((v) => !ctx.knownIds.has(v));
    await check(
      values.map((v) => ({ ...base, params: { ...base.params, [param]: v } })),
      (res, req) => {
        const v = req.params?.[param] ?? '';
        const what = `${name} with ${param}=${JSON.stringify(v.slice(0, 80))}`;
        // '', '.' and '..' change the path itself: no such route.
        if (['', '.', '..'].includes(v)) expectRejected(res, { statuses: [404], what });
        else if (!schema.safeParse(v).success) expectRejected(res, { statuses: [400], field: param, what });
        else expectRejected(res, { statuses: [404, 409], what });
      },
    );
  }

  // Query parameters: wrong types, out of range, repeated.
  const queryShape = schemas.query?.shape ?? {};
  const queryNames = Object.keys(queryShape);
  if (queryNames.length > 0) {
    const query = schemas.query as { safeParse(v: unknown): { success: boolean } };
    await check(
      fc
        .tuple(fc.constantFrom(...queryNames), fc.oneof(junkString, fc.tuple(junkString, junkString)))
        .map(([p, v]) => ({ ...base, query: { ...base.query, [p]: typeof v === 'string' ? v : [...v] } }))
        .filter((req) => !query.safeParse(req.query).success),
      (res, req) => {
        const bad = queryNames.find(
          (p) =>
            JSON.stringify(req.query?.[p]) !== JSON.stringify(base.query?.[p]) &&
            req.query?.[p] !== undefined,
        );
        expectRejected(res, {
          statuses: [400],
          ...(bad ? { field: bad } : {}),
          what: `${name} ?${JSON.stringify(req.query).slice(0, 200)}`,
        });
      },
    );
    if ('cursor' in queryShape) {
      // A forged cursor may happen to be a valid position; it must never be a 5xx or change anything.
      await check(
        forgedCursor.map((cursor) => ({ ...base, query: { ...base.query, cursor } })),
        (res, req) => {
          const what = `${name} cursor=${JSON.stringify(req.query?.['cursor']).slice(0, 200)}`;
          expect(res.status, `${what} → ${res.text.slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400) expectRejected(res, { statuses: [400, 409], field: 'cursor', what });
        },
      );
    }
  }

  // Bodies broken in one place.
  if (schemas.body && baseline.body !== undefined) {
    await check(
      badBodies(schemas.body, baseline.body).map((m) => ({
        ...base,
        body: m.body,
        how: m.how,
        field: m.field,
      })),
      (res, req) => {
        const m = req as RawRequest & { how: string; field: string };
        expectRejected(res, {
          statuses: [400],
          field: m.field,
          what: `${name} body ${m.how} at ${m.field}: ${JSON.stringify(m.body).slice(0, 200)}`,
        });
      },
    );
  }

  // Well-formed references to entities that do not exist.
  for (const ref of REFERENCES[name] ?? []) {
    await check(
      unknownIdFor('dataCenterId').map((id) => {
        const body = JSON.parse(JSON.stringify(baseline.body)) as Record<string | number, unknown>;
        const parent = ref
          .slice(0, -1)
          .reduce<Record<string | number, unknown>>((o, k) => o[k] as Record<string | number, unknown>, body);
        parent[ref[ref.length - 1] as string | number] = id;
        return { ...base, body };
      }),
      (res, req) =>
        expectRejected(res, {
          statuses: [400, 404, 409],
          what: `${name} ${ref.join('.')} unknown: ${JSON.stringify(req.body).slice(0, 200)}`,
        }),
    );
  }

  if (route.path.startsWith('/v1/')) {
    // Credentials: anything but a valid bearer token is a 401, before the request is looked at.
    await check(
      badAuthorization(ctx.validTokens).map((authorization) => ({
        ...base,
        token: null,
        headers: { ...base.headers, authorization },
      })),
      (res, req) =>
        expectRejected(res, {
          statuses: [401],
          code: 'Unauthorized',
          what: `${name} authorization ${JSON.stringify(req.headers?.['authorization']).slice(0, 100)}`,
        }),
    );
    const missing = await ctx.send({ ...base, token: null });
    expectRejected(missing, { statuses: [401], code: 'Unauthorized', what: `${name} without credentials` });
  }

  if (schemas.body && baseline.body !== undefined) {
    // A JSON body sent as something else: 415 naming the header. Without any content type too.
    await check(
      notJsonContentType.map((type) => ({ ...base, headers: { ...base.headers, 'content-type': type } })),
      (res, req) =>
        expectRejected(res, {
          statuses: [415],
          field: 'content-type',
          what: `${name} content-type ${req.headers?.['content-type']}`,
        }),
    );
    const untyped = await ctx.send({
      ...base,
      raw: new TextEncoder().encode(JSON.stringify(baseline.body)),
      headers: { ...base.headers, 'content-type': '' },
    });
    expectRejected(untyped, { statuses: [415], field: 'content-type', what: `${name} without content-type` });
  }

  if (schemas.headers?.shape['idempotency-key']) {
    await check(
      badIdempotencyKey.map((key) => ({ ...base, headers: { ...base.headers, 'idempotency-key': key } })),
      (res, req) =>
        expectRejected(res, {
          statuses: [400],
          field: 'idempotency-key',
          what: `${name} idempotency-key ${JSON.stringify(req.headers?.['idempotency-key'])}`,
        }),
    );
  }

  const changes = ctx.snapshot.diff(before, await ctx.snapshot.take());
  expect(changes, `${name}: rejected requests changed stored state`).toEqual([]);
}
