// The contract check every e2e test runs (test/support/contract.ts) and the document it checks against: the check
// flags what the document does not describe, and the document describes what the server answers.
import { readdirSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { createApp, getOpenApiDocument, LOCAL_API_PORT, openApiDocument } from '../../../lambdas/api/app.ts';
import type { ApiDeps } from '../../../lambdas/api/deps.ts';
import { DEFAULT_PORT_BASE } from '../../../local/cloud.ts';
import { BackupPolicyInput } from '../../../protocol/api/policies.ts';
import { Contract, contractCheck, documentedContract } from '../../support/contract.ts';

const contract = documentedContract();
const doc = contract.doc as unknown as ReturnType<typeof openApiDocument> & {
  paths: Record<string, Record<string, { operationId?: string; responses: Record<string, unknown> }>>;
};
const json = 'application/json';
const NOW = new Date().toISOString();

const policy = {
  id: 'nightly-web-01',
  vmId: 'web-01',
  hostId: 'kvm-1',
  imageId: 'web-01.qcow2',
  sourceDataCenterId: 'dc-gz',
  destinations: [{ dataCenterId: 'dc-osa' }],
  intervalMinutes: 1440,
  firstRunAt: NOW,
  enabled: true,
  onCongestion: 'wait',
  queueTimeoutSeconds: 3600,
  nextRunAt: NOW,
  lastRun: { at: NOW, migrationId: 'mig-01jq3v6b1n0k8d4y7r5s2t9w3x', status: 'COMPLETED' },
  createdAt: NOW,
  updatedAt: NOW,
};

describe('the contract check', () => {
  it('flags a status the operation does not document', () => {
    expect(contract.check('GET', '/health', 418, json, '{}')).toMatch(/status 418 is not documented/);
    expect(contract.check('DELETE', '/v1/backup-policies/x', 202, null, '')).toMatch(
      /status 202 is not documented for DELETE \/v1\/backup-policies\/\{policyId\}/,
    );
  });

  it('flags a body that does not match, is not JSON, or should not be there', () => {
    expect(contract.check('GET', '/health', 200, json, '{"status":"ok"}')).toMatch(
      /does not match the schema: .*version/,
    );
    expect(contract.check('GET', '/health', 200, json, 'ok')).toMatch(/not JSON/);
    expect(contract.check('GET', '/health', 200, 'text/html', '<p>ok</p>')).toMatch(/answered text\/html/);
    expect(contract.check('DELETE', '/v1/backup-policies/x', 204, json, '{}')).toMatch(/without a body/);
    const notAnError = JSON.stringify({ error: { code: 'Teapot', message: 'x' } });
    expect(contract.check('GET', '/v1/backup-policies/x', 404, json, notAnError)).toMatch(/code/);
  });

  it('flags an answer on a path no operation documents, unless it refuses with an error body', () => {
    expect(contract.check('GET', '/v1/nothing-here', 200, json, '{}')).toMatch(/no operation is documented/);
    expect(contract.check('GET', '/v1/nothing-here', 404, json, '{}')).toMatch(/does not match/);
    const notFound = JSON.stringify({
      error: { code: 'NotFound', message: 'no route for GET /v1/nothing-here' },
    });
    expect(contract.check('GET', '/v1/nothing-here', 404, json, notFound)).toBeUndefined();
  });

  it('passes what the document describes, matching literal path segments first', () => {
    expect(contract.check('GET', '/health', 200, json, '{"status":"ok","version":"1"}')).toBeUndefined();
    expect(contract.check('DELETE', '/v1/backup-policies/x', 204, null, '')).toBeUndefined();
    const work = JSON.stringify({ items: [] });
    expect(contract.check('GET', '/v1/agent/work', 200, `${json}; charset=UTF-8`, work)).toBeUndefined();
    const throttled = JSON.stringify({ message: 'Too Many Requests' });
    expect(contract.check('GET', '/v1/agent/work', 429, json, throttled)).toBeUndefined();
  });

  it('sees every answer of a wrapped handler, and leaves the answer to the caller', async () => {
    const monitor = contractCheck(contract);
    const handler = monitor.wrap(async (request) =>
      new URL(request.url).pathname === '/health'
        ? Response.json({ status: 'ok' }, { status: 200 })
        : new Response(null, { status: 204 }),
    );
    const res = await handler(new Request('http://api/health'), {});
    expect(await res.json()).toEqual({ status: 'ok' });
    await handler(new Request('http://api/v1/backup-policies/x', { method: 'DELETE' }), {});
    expect(await monitor.violations()).toEqual([
      expect.stringMatching(/^GET \/health → status 200 body does not match/),
    ]);
  });
});

describe('the document', () => {
  it('passes an OpenAPI 3.1 validator', async () => {
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
  });

  it('validates a backup policy as the server sends it (one flat schema, not an allOf of strict halves)', () => {
    expect(
      contract.check('GET', '/v1/backup-policies/nightly-web-01', 200, json, JSON.stringify(policy)),
    ).toBe(undefined);
    const page = JSON.stringify({ items: [policy] });
    expect(contract.check('GET', '/v1/backup-policies', 200, json, page)).toBeUndefined();
  });

  it('gives every operation a unique camelCase operationId: the name of its route constant', async () => {
    const dir = new URL('../../../protocol/api/', import.meta.url);
    const exported = new Map<string, string>();
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const module = (await import(new URL(file, dir).href)) as Record<string, unknown>;
      for (const [name, value] of Object.entries(module)) {
        const r = value as { method?: unknown; path?: unknown; operationId?: unknown };
        if (typeof r?.method === 'string' && typeof r.path === 'string') {
          expect(r.operationId, `${file} ${name}`).toBe(name);
          exported.set(`${r.method} ${r.path}`, name);
        }
      }
    }
    exported.set('get /openapi.json', getOpenApiDocument.operationId);
    const ids: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops)) {
        expect(op.operationId, `${method} ${path}`).toBe(exported.get(`${method} ${path}`));
        ids.push(op.operationId as string);
      }
    expect(ids.every((id) => /^[a-z][A-Za-z0-9]*$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('names its servers (the local cloud on its default port, API Gateway) and declares every tag it uses', () => {
    expect(LOCAL_API_PORT).toBe(DEFAULT_PORT_BASE);
    expect(doc.servers?.map((s) => s.url)).toEqual([
      `http://127.0.0.1:${DEFAULT_PORT_BASE}`,
      'https://{apiId}.execute-api.{region}.amazonaws.com',
    ]);
    const declared = new Set((doc.tags ?? []).map((t) => t.name));
    const used = Object.values(doc.paths).flatMap((ops) =>
      Object.values(ops).flatMap((op) => (op as { tags?: string[] }).tags ?? []),
    );
    expect([...new Set(used)].filter((t) => !declared.has(t))).toEqual([]);
    for (const t of doc.tags ?? []) expect(t.description, t.name).toBeTruthy();
  });

  it('documents the statuses every operation can answer: 429 with Retry-After and 500 everywhere; 401, 403, 413, 503 under /v1, and 400 there with input', () => {
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops)) {
        const codes = Object.keys(op.responses);
        const where = `${method} ${path}`;
        expect(codes, where).toEqual(expect.arrayContaining(['429', '500']));
        expect(op.responses['429'], where).toMatchObject({ headers: { 'Retry-After': expect.anything() } });
        if (path.startsWith('/v1/')) {
          expect(codes, where).toEqual(expect.arrayContaining(['401', '403', '413', '503']));
          // An operation without parameters or a body has nothing to refuse as invalid.
          const input = op as { parameters?: unknown[]; requestBody?: unknown };
          if ((input.parameters?.length ?? 0) > 0 || input.requestBody) expect(codes, where).toContain('400');
          if ((op as { requestBody?: unknown }).requestBody) expect(codes, where).toContain('415');
        }
      }
  });

  it('says that a migration goes to exactly one of `destinations` and `near`', () => {
    const ajv = new Ajv2020({ strict: false, validateSchema: false });
    ajv.addSchema(doc as object, 'openapi.json');
    const valid = ajv.compile({ $ref: 'openapi.json#/components/schemas/CreateMigration' });
    const base = { vmId: 'xen-10', hostId: 'west1', imageId: 'web-01.qcow2', sourceDataCenterId: 'dc-gz' };
    const destinations = [{ dataCenterId: 'dc-osa' }];
    const near = { lat: 35.7, lon: 139.7 };
    expect(valid({ ...base, destinations })).toBe(true);
    expect(valid({ ...base, near })).toBe(true);
    expect(valid({ ...base, destinations, near })).toBe(false);
    expect(valid(base)).toBe(false);
  });

  it('types waitSeconds as the integer the server sends (0 to 20), never null', () => {
    const schemas = (doc.components?.schemas ?? {}) as Record<
      string,
      { properties?: Record<string, unknown> }
    >;
    expect(schemas['WorkQueue']?.properties?.['waitSeconds']).toMatchObject({
      type: 'integer',
      minimum: 0,
      maximum: 20,
    });
    expect(JSON.stringify(doc)).not.toMatch(/"waitSeconds":\{[^}]*null/);
  });

  it('lets source/complete answer a 409 without `missing` (a state conflict)', () => {
    const stateConflict = JSON.stringify({
      error: { code: 'Conflict', message: 'migration mig-x is not waiting for an upload', status: 'FAILED' },
    });
    const path = '/v1/migrations/mig-01jq3v6b1n0k8d4y7r5s2t9w3x/source/complete';
    expect(contract.check('POST', path, 409, json, stateConflict)).toBeUndefined();
    const missing = JSON.stringify({
      error: { code: 'Conflict', message: '1 chunk', missing: ['a'.repeat(64)] },
    });
    expect(contract.check('POST', path, 409, json, missing)).toBeUndefined();
  });
});

/** The app with an admin caller and no adapters: enough for everything that is refused before a route runs. */
const admin = createApp({ authenticate: () => ({ kind: 'admin', id: 'admin' }) } as unknown as ApiDeps);
const fresh = new Contract(JSON.parse(JSON.stringify(openApiDocument())));

describe('the server answers as documented', () => {
  const badIds = Object.entries(doc.paths).flatMap(([path, ops]) =>
    path.includes('{')
      ? Object.keys(ops).map(
          // Valid as no id: not a migration, batch or node id, and no file name starts with '-'.
          (method) => [method.toUpperCase(), path.replace(/\{[^}]+\}/g, '-NOT_AN_ID')] as const,
        )
      : [],
  );

  it.each(badIds)(
    '%s %s with a malformed id → a documented 400 naming the parameter',
    async (method, path) => {
      const body = method === 'GET' || method === 'DELETE' ? undefined : '{}';
      const res = await admin.request(path, {
        method,
        ...(body ? { body, headers: { 'content-type': json } } : {}),
      });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      expect(JSON.parse(text).error.issues[0].field).toMatch(/Id$/);
      expect(fresh.check(method, path, res.status, res.headers.get('content-type'), text)).toBeUndefined();
    },
  );

  it('refuses a migration with both or neither of `destinations` and `near` (400 naming destinations)', async () => {
    const base = { vmId: 'xen-10', hostId: 'west1', imageId: 'web-01.qcow2', sourceDataCenterId: 'dc-gz' };
    for (const body of [
      base,
      { ...base, destinations: [{ dataCenterId: 'dc-osa' }], near: { lat: 1, lon: 2 } },
    ]) {
      const res = await admin.request('/v1/migrations', {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': json },
      });
      const text = await res.text();
      expect(res.status).toBe(400);
      expect(JSON.parse(text).error.issues).toEqual([
        { field: 'destinations', reason: 'give either destinations or near, not both and not neither' },
      ]);
      expect(
        fresh.check('POST', '/v1/migrations', 400, res.headers.get('content-type'), text),
      ).toBeUndefined();
    }
  });

  it('answers a body not sent as JSON with a documented 415', async () => {
    const res = await admin.request('/v1/backup-policies/p1', {
      method: 'PUT',
      body: 'x=1',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const text = await res.text();
    expect(res.status).toBe(415);
    expect(
      fresh.check('PUT', '/v1/backup-policies/p1', 415, res.headers.get('content-type'), text),
    ).toBeUndefined();
  });
});

describe('a backup policy’s first run time (firstRunAt)', () => {
  const input = {
    vmId: 'web-01',
    hostId: 'kvm-1',
    imageId: 'web-01.qcow2',
    sourceDataCenterId: 'dc-gz',
    destinations: [{ dataCenterId: 'dc-osa' }],
    intervalMinutes: 1440,
  };
  const at = (ms: number) => new Date(Date.now() + ms).toISOString();

  it.each([
    ['an hour ago', at(-3_600_000), 'must be in the future'],
    ['in two years', at(2 * 366 * 86_400_000), 'must be within a year'],
    ['not a time', 'next tuesday', 'Invalid ISO datetime'],
  ])('%s → 400 naming firstRunAt', async (_what, firstRunAt, reason) => {
    const res = await admin.request('/v1/backup-policies/p1', {
      method: 'PUT',
      body: JSON.stringify({ ...input, firstRunAt }),
      headers: { 'content-type': json },
    });
    const body = (await res.json()) as { error: { issues: { field: string; reason: string }[] } };
    expect(res.status).toBe(400);
    expect(body.error.issues).toEqual([{ field: 'firstRunAt', reason: expect.stringContaining(reason) }]);
  });

  it('takes a time within the year, with any UTC offset', () => {
    expect(BackupPolicyInput.safeParse({ ...input, firstRunAt: at(3_600_000) }).success).toBe(true);
    const tomorrow = new Date(Date.now() + 86_400_000);
    const tokyo = new Date(tomorrow.getTime() + 9 * 3_600_000).toISOString().replace('Z', '+09:00');
    expect(BackupPolicyInput.safeParse({ ...input, firstRunAt: tokyo }).success).toBe(true);
  });

  it('is the policy’s first slot (in UTC); without it the first slot is now', async () => {
    const stored = new Map<string, unknown>();
    const app = createApp({
      authenticate: () => ({ kind: 'admin', id: 'admin' }),
      registry: { requireDataCenter: async () => ({}), getDataCenter: async () => ({}) },
      policies: {
        get: async (id: string) => stored.get(id),
        put: async (p: { id: string }) => void stored.set(p.id, p),
      },
    } as unknown as ApiDeps);
    const tomorrow = new Date(Date.now() + 86_400_000);
    tomorrow.setUTCMilliseconds(0);
    const offset = new Date(tomorrow.getTime() + 2 * 3_600_000).toISOString().replace(/\.000Z$/, '+02:00');
    const put = async (id: string, extra: object) => {
      const res = await app.request(`/v1/backup-policies/${id}`, {
        method: 'PUT',
        body: JSON.stringify({ ...input, ...extra }),
        headers: { 'content-type': json },
      });
      const text = await res.text();
      expect(res.status, text).toBe(201);
      expect(
        fresh.check('PUT', `/v1/backup-policies/${id}`, 201, res.headers.get('content-type'), text),
      ).toBeUndefined();
      return JSON.parse(text) as { nextRunAt: string; firstRunAt?: string };
    };
    const later = await put('later', { firstRunAt: offset });
    expect(later.nextRunAt).toBe(tomorrow.toISOString());
    expect(later.firstRunAt).toBe(tomorrow.toISOString());
    const before = Date.now();
    const atOnce = await put('at-once', {});
    expect(Date.parse(atOnce.nextRunAt)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(atOnce.nextRunAt)).toBeLessThanOrEqual(Date.now());
  });
});
