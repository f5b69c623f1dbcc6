// The node registry over HTTP against the real local cloud (DynamoDB Local, the S3 server): data centers (VRN) and
// cache nodes (CCN), the nearest-active-node rule, conflicts, validation, paging, auth and restarts.

import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeSlots } from '../../lambdas/aws/node-slots.ts';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import type { ErrorBody } from '../../protocol/api/common.ts';
import type { CacheNode, DataCenter } from '../../protocol/api/registry.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';

let t: TestCloud;
let slots: NodeSlots;

beforeAll(async () => {
  t = await startTestCloud({ agents: false });
  slots = t.cloud.root.deps.slots;
});
afterAll(() => t?.dispose());

/** Calls the API as the admin, or with `token` (null: no credentials); the body is parsed JSON. */
async function call<T = ErrorBody>(
  method: string,
  path: string,
  o: { json?: unknown; raw?: string; token?: string | null } = {},
): Promise<{ status: number; body: T }> {
  const token = o.token === undefined ? t.cloud.tokens.adminToken : o.token;
  const body = o.raw ?? (o.json === undefined ? undefined : JSON.stringify(o.json));
  const headers: Record<string, string> = {};
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${t.cloud.endpoints.api}${path}`, { method, headers, ...(body ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

const dc = async (id: string) => (await call<DataCenter>('GET', `/v1/data-centers/${id}`)).body;
const node = async (id: string) => (await call<CacheNode>('GET', `/v1/cache-nodes/${id}`)).body;
const setStatus = (id: string, status: string) =>
  call('PATCH', `/v1/cache-nodes/${id}`, { json: { status } });
const fields = (b: ErrorBody) => (b.error.issues ?? []).map((i) => i.field);

/** Haversine, written independently of lambdas/domain/geo.ts. */
function km(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const r = (d: number) => (d * Math.PI) / 180;
  const h =
    Math.sin(r(b.lat - a.lat) / 2) ** 2 +
    Math.cos(r(a.lat)) * Math.cos(r(b.lat)) * Math.sin(r(b.lon - a.lon) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}

const DC_INPUT = { name: 'Test DC', address: '10.9.0.10', location: { lat: 35.0, lon: 135.77 } };

describe('data centers', () => {
  it('lists the topology with the cache node each uses, and gets one', async () => {
    const { status, body } = await call<{ items: DataCenter[] }>('GET', '/v1/data-centers');
    expect(status).toBe(200);
    expect(body.items.map((d) => d.id).sort()).toEqual(['dc-gz', 'dc-jkt', 'dc-osa', 'dc-sh']);
    const gz = await dc('dc-gz');
    expect(gz).toMatchObject({ id: 'dc-gz', homeCacheNode: 'hkg', address: '10.1.0.10' });
    expect(gz.cacheNode?.reason).toBe('home');
    expect(gz.cacheNode?.distanceKm).toBeCloseTo(130, -1);
    expect((await dc('dc-jkt')).cacheNode).toMatchObject({ id: 'sin', reason: 'nearest' });
  });

  it('creates (201), replaces (200) and deletes (204) a data center, keeping the home back-references', async () => {
    const created = await call<DataCenter>('PUT', '/v1/data-centers/dc-kyoto', {
      json: { ...DC_INPUT, homeCacheNode: 'nrt' },
    });
    expect(created.status).toBe(201);
    expect(created.body.cacheNode).toMatchObject({ id: 'nrt', reason: 'home' });
    expect(await dc('dc-kyoto')).toEqual(created.body);
    expect((await node('nrt')).homedDataCenters).toContain('dc-kyoto');

    const replaced = await call<DataCenter>('PUT', '/v1/data-centers/dc-kyoto', {
      json: { ...DC_INPUT, name: 'Kyoto DC' },
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ name: 'Kyoto DC', createdAt: created.body.createdAt });
    expect(replaced.body.homeCacheNode).toBeUndefined();
    expect(replaced.body.cacheNode?.reason).toBe('nearest');
    expect((await node('nrt')).homedDataCenters).not.toContain('dc-kyoto');

    expect((await call('DELETE', '/v1/data-centers/dc-kyoto')).status).toBe(204);
    const gone = await call('GET', '/v1/data-centers/dc-kyoto');
    expect(gone.status).toBe(404);
    expect(gone.body.error).toMatchObject({ code: 'NotFound', id: 'dc-kyoto' });
    expect((await call('DELETE', '/v1/data-centers/dc-kyoto')).status).toBe(404);
  });

  it('without a usable home, uses the nearest active cache node and follows status changes', async () => {
    const sh = await dc('dc-sh');
    const near = async (id: string) => ({
      id,
      reason: 'nearest',
      distanceKm: expect.closeTo(km(sh.location, (await node(id)).location), 0),
    });
    try {
      expect(sh.cacheNode).toEqual(await near('hkg'));
      expect((await setStatus('hkg', 'draining')).status).toBe(200);
      expect((await dc('dc-sh')).cacheNode).toEqual(await near('nrt'));
      // A draining home is passed over too.
      expect((await dc('dc-gz')).cacheNode).toMatchObject({ id: 'sin', reason: 'nearest' });
      await setStatus('nrt', 'down');
      expect((await dc('dc-sh')).cacheNode).toEqual(await near('sin'));
      await setStatus('sin', 'down');
      expect((await dc('dc-sh')).cacheNode).toBeNull();
    } finally {
      for (const id of ['hkg', 'nrt', 'sin']) await setStatus(id, 'active');
    }
    expect((await dc('dc-gz')).cacheNode).toMatchObject({ id: 'hkg', reason: 'home' });
  });

  it('refuses to delete a data center with active migrations, naming them, and changes nothing', async () => {
    expect((await call('PUT', '/v1/data-centers/dc-busy', { json: DC_INPUT })).status).toBe(201);
    expect(await slots.addActiveMigration('dc-busy', 'mig-aaaaaaaaaaaaaaaaaaaa')).toBe(true);
    const refused = await call('DELETE', '/v1/data-centers/dc-busy');
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'Conflict', migrations: ['mig-aaaaaaaaaaaaaaaaaaaa'] });
    expect(refused.body.error.message).toContain('mig-aaaaaaaaaaaaaaaaaaaa');
    expect((await dc('dc-busy')).activeMigrations).toEqual(['mig-aaaaaaaaaaaaaaaaaaaa']);
    await slots.removeActiveMigration('dc-busy', 'mig-aaaaaaaaaaaaaaaaaaaa');
    expect((await call('DELETE', '/v1/data-centers/dc-busy')).status).toBe(204);
  });
});

describe('cache nodes', () => {
  it('registers a node only once its bucket exists (409 naming it, then 201), replaces (200), deletes', async () => {
    const location = { lat: -33.87, lon: 151.21 };
    const input = { name: 'Sydney', region: 'ap-southeast-2', location, capacity: 4 };
    const refused = await call('PUT', '/v1/cache-nodes/syd', { json: input });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'Conflict', bucket: LOCAL_NAMES.cacheBucket('syd') });
    expect(refused.body.error.message).toContain(LOCAL_NAMES.cacheBucket('syd'));
    expect((await call('GET', '/v1/cache-nodes/syd')).status).toBe(404);

    const s3 = t.cloud.root.clients.s3('ap-southeast-2');
    await s3.send(new CreateBucketCommand({ Bucket: LOCAL_NAMES.cacheBucket('syd') }));
    const created = await call<CacheNode>('PUT', '/v1/cache-nodes/syd', { json: input });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      ...input,
      status: 'active',
      bucket: LOCAL_NAMES.cacheBucket('syd'),
      activeTransfers: 0,
    });
    expect(created.body.address).toBe(`${t.cloud.endpoints.edge}/syd/`);
    const replaced = await call<CacheNode>('PUT', '/v1/cache-nodes/syd', { json: { ...input, capacity: 6 } });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ capacity: 6, createdAt: created.body.createdAt });
    expect((await call('DELETE', '/v1/cache-nodes/syd')).status).toBe(204);
    expect((await call('GET', '/v1/cache-nodes/syd')).status).toBe(404);
  });

  it('refuses a region change (409) and leaves the node as it was', async () => {
    const before = await node('hkg');
    const res = await call('PUT', '/v1/cache-nodes/hkg', {
      json: { name: 'HK', region: 'ap-southeast-2', location: before.location, capacity: 8 },
    });
    expect(res.status).toBe(409);
    expect(res.body.error['field']).toBe('region');
    expect(await node('hkg')).toEqual(before);
  });

  it('patches capacity and status independently', async () => {
    const res = await call<CacheNode>('PATCH', '/v1/cache-nodes/sin', { json: { capacity: 3 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ capacity: 3, status: 'active' });
    expect((await setStatus('sin', 'draining')).body).toMatchObject({ capacity: 3, status: 'draining' });
    await call('PATCH', '/v1/cache-nodes/sin', { json: { capacity: 8, status: 'active' } });
    expect(await node('sin')).toMatchObject({ capacity: 8, status: 'active' });
    expect((await call('PATCH', '/v1/cache-nodes/nope', { json: { capacity: 2 } })).status).toBe(404);
  });

  it('refuses to delete a node that is a home or holds reservations, naming what uses it', async () => {
    const home = await call('DELETE', '/v1/cache-nodes/hkg');
    expect(home.status).toBe(409);
    expect(home.body.error).toMatchObject({ dataCenters: ['dc-gz'] });
    expect(home.body.error.message).toContain('dc-gz');
    expect((await node('hkg')).homedDataCenters).toEqual(['dc-gz']);
    expect((await dc('dc-gz')).homeCacheNode).toBe('hkg');

    const mig = 'mig-bbbbbbbbbbbbbbbbbbbb';
    expect(await slots.reserve('nrt', mig)).toBe('reserved');
    const busy = await call('DELETE', '/v1/cache-nodes/nrt');
    expect(busy.status).toBe(409);
    expect(busy.body.error).toMatchObject({ migrations: [mig] });
    expect(await node('nrt')).toMatchObject({ activeTransfers: 1, reservations: [mig] });
    await slots.release('nrt', mig);
    expect((await node('nrt')).activeTransfers).toBe(0);
  });

  it('admits up to capacity on the real table: full, idempotent, not active, unknown', async () => {
    await call('PATCH', '/v1/cache-nodes/sin', { json: { capacity: 2 } });
    const [a, b, c] = ['mig-c1cccccccccccccccccc', 'mig-c2cccccccccccccccccc', 'mig-c3cccccccccccccccccc'];
    try {
      expect([await slots.reserve('sin', a), await slots.reserve('sin', b)]).toEqual([
        'reserved',
        'reserved',
      ]);
      expect(await slots.reserve('sin', c)).toBe('full');
      expect(await slots.reserve('sin', b)).toBe('reserved');
      expect((await node('sin')).reservations).toEqual([a, b]);
      await setStatus('sin', 'draining');
      expect(await slots.reserve('sin', c)).toBe('not_active');
      expect(await slots.reserve('nowhere', c)).toBe('unknown_node');
    } finally {
      for (const id of [a, b, c]) await slots.release('sin', id);
      await call('PATCH', '/v1/cache-nodes/sin', { json: { capacity: 8, status: 'active' } });
    }
  });
});

describe('bad input: 400 naming the field and the reason, nothing written', () => {
  const ok = { name: 'X', address: '10.0.0.1', location: { lat: 1, lon: 1 } };
  const cn = { name: 'X', region: 'ap-east-1', location: { lat: 1, lon: 1 }, capacity: 1 };
  const nodeCursor = Buffer.from(JSON.stringify({ kind: 'cacheNode', id: 'hkg' })).toString('base64url');
  it.each([
    ['wrong type', 'PUT', '/v1/data-centers/dc-x', { ...ok, name: 5 }, 'name'],
    ['missing field', 'PUT', '/v1/data-centers/dc-x', { name: 'X', address: 'a' }, 'location'],
    ['extra field', 'PUT', '/v1/data-centers/dc-x', { ...ok, owner: 'me' }, 'owner'],
    ['lat 100', 'PUT', '/v1/data-centers/dc-x', { ...ok, location: { lat: 100, lon: 1 } }, 'location.lat'],
    ['unknown home', 'PUT', '/v1/data-centers/dc-x', { ...ok, homeCacheNode: 'nope' }, 'homeCacheNode'],
    ['bad data center id', 'PUT', '/v1/data-centers/DC_X', ok, 'dataCenterId'],
    ['bad cache node id', 'PUT', '/v1/cache-nodes/-x', cn, 'cacheNodeId'],
    ['bad region', 'PUT', '/v1/cache-nodes/hkg', { ...cn, region: 'mars-1' }, 'region'],
    ['fractional capacity', 'PATCH', '/v1/cache-nodes/hkg', { capacity: 1.5 }, 'capacity'],
    ['unknown status', 'PATCH', '/v1/cache-nodes/hkg', { status: 'asleep' }, 'status'],
    ['garbage cursor', 'GET', '/v1/data-centers?cursor=garbage', undefined, 'cursor'],
    ['empty cursor object', 'GET', '/v1/data-centers?cursor=e30', undefined, 'cursor'],
    ['cursor of another list', 'GET', `/v1/data-centers?cursor=${nodeCursor}`, undefined, 'cursor'],
    ['limit 0', 'GET', '/v1/cache-nodes?limit=0', undefined, 'limit'],
  ])('%s', async (_name, method, path, json, field) => {
    const res = await call(method, path, { json });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('ValidationError');
    expect(fields(res.body)).toContain(field);
    expect(res.body.error.issues?.every((i) => i.reason.length > 0)).toBe(true);
  });

  it('malformed JSON names the body; nothing was created and hkg is unchanged', async () => {
    const res = await call('PUT', '/v1/data-centers/dc-x', { raw: '{"name":' });
    expect(res.status).toBe(400);
    expect(fields(res.body)).toEqual(['body']);
    expect((await call('GET', '/v1/data-centers/dc-x')).status).toBe(404);
    expect(await node('hkg')).toMatchObject({ region: 'ap-east-1', capacity: 8, status: 'active' });
  });
});

describe('paging', () => {
  it.each(['/v1/data-centers', '/v1/cache-nodes'])('limit=1 walks every item of %s once', async (path) => {
    const all = (await call<{ items: { id: string }[] }>('GET', path)).body.items.map((i) => i.id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const q = cursor ? `&cursor=${cursor}` : '';
      const page = await call<{ items: { id: string }[]; nextCursor?: string }>('GET', `${path}?limit=1${q}`);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(1);
      seen.push(...page.body.items.map((i) => i.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(all);
    expect(all.length).toBeGreaterThanOrEqual(3);
  });
});

describe('auth', () => {
  it('401 without a token, with a bad one, and with a tampered agent token', async () => {
    const tampered = `${t.cloud.agentToken('dc-sh').slice(0, -2)}xx`;
    for (const token of [null, 'nope', tampered]) {
      const res = await call('GET', '/v1/data-centers', { token });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('Unauthorized');
    }
  });

  it('an agent may not write (403), reads only its own data center', async () => {
    const token = t.cloud.agentToken('dc-sh');
    expect((await call('PUT', '/v1/data-centers/dc-sh', { json: DC_INPUT, token })).status).toBe(403);
    expect((await call('PATCH', '/v1/cache-nodes/hkg', { json: { status: 'down' }, token })).status).toBe(
      403,
    );
    expect((await call('DELETE', '/v1/data-centers/dc-sh', { token })).status).toBe(403);
    expect((await call('DELETE', '/v1/cache-nodes/nrt', { token })).status).toBe(403);
    expect((await dc('dc-sh')).name).toBe('Shanghai DC');
    expect((await node('hkg')).status).toBe('active');
    const other = await call('GET', '/v1/data-centers/dc-gz', { token });
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe('Forbidden');
    expect((await call('GET', '/v1/data-centers/dc-sh', { token })).status).toBe(200);
    for (const q of ['', '?limit=1']) {
      const list = await call<{ items: DataCenter[]; nextCursor?: string }>('GET', `/v1/data-centers${q}`, {
        token,
      });
      expect(list.body).toEqual({ items: [await dc('dc-sh')] });
    }
  });
});

describe('health, OpenAPI and restarts', () => {
  it('/health answers without credentials', async () => {
    expect(await call('GET', '/health', { token: null })).toMatchObject({
      status: 200,
      body: { status: 'ok' },
    });
  });

  it('/openapi.json is served without credentials (its content: test/unit/lambdas/api/openapi.test.ts)', async () => {
    const res = await call<{ openapi: string; paths: Record<string, unknown> }>('GET', '/openapi.json', {
      token: null,
    });
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    expect(Object.keys(res.body.paths)).toContain('/v1/data-centers/{dataCenterId}');
  });

  it('a registered data center and a changed cache node survive a restart, and so do the tokens', async () => {
    const created = await call<DataCenter>('PUT', '/v1/data-centers/dc-keep', { json: DC_INPUT });
    expect(created.status).toBe(201);
    const patched = await call<CacheNode>('PATCH', '/v1/cache-nodes/nrt', { json: { capacity: 5 } });
    await t.stop();
    t = await t.restart();
    expect(await call('GET', '/v1/data-centers/dc-keep')).toEqual({ status: 200, body: created.body });
    // The topology seeds only what is missing: runtime changes to its nodes stay.
    expect(await node('nrt')).toEqual(patched.body);
  });
});
