import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody } from '../../protocol/api/common.ts';
import type { ContentMapRow, LocationMapRow } from '../../protocol/api/mapping.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';

type End = readonly [dataCenterId: string, cacheNodeId: string | undefined];
const mig = (n: number) => `mig-${String(n).padStart(20, '0')}`;
const content: ContentMapRow[] = [];
const location: LocationMapRow[] = [];

/** One migration's rows, as the workflow writes them: a SRC row, a DEST row and a LocationMap row per destination. */
function migration(
  n: number,
  src: End,
  dests: readonly End[],
  vmId: string,
  imageId: string,
  hostId: string,
) {
  const createdAt = new Date(Date.UTC(2026, 10, 1, 0, n)).toISOString();
  const cn = (id: string | undefined, key: string) =>
    id ? { [key]: id, [`${key}Address`]: `http://edge/${id}/` } : {};
  const row = (status: 'SRC' | 'DEST', [dc, node]: End): ContentMapRow => ({
    migrationId: mig(n),
    status,
    ...(cn(node, 'cacheNode') as { cacheNodeId?: string }),
    dataCenterId: dc,
    dataCenterAddress: `10.0.${n}.1`,
    hostId,
    vmId,
    imageId,
    createdAt,
  });
  content.push(row('SRC', src), ...dests.map((d) => row('DEST', d)));
  for (const [dc, node] of dests) {
    location.push({
      migrationId: mig(n),
      ...(cn(src[1], 'sourceCacheNode') as object),
      sourceDataCenterId: src[0],
      sourceDataCenterAddress: '10.0.0.1',
      ...(cn(node, 'destinationCacheNode') as object),
      destinationDataCenterId: dc,
      destinationDataCenterAddress: '10.0.0.2',
      local: src[0] === dc,
      createdAt,
    });
  }
}

migration(1, ['dc-gz', 'hkg'], [['dc-sh', 'hkg']], 'vm-1', 'img-ubuntu', 'host-a');
migration(
  2,
  ['dc-gz', 'hkg'],
  [
    ['dc-osa', 'nrt'],
    ['dc-jkt', 'sin'],
  ],
  'vm-2',
  'img-win',
  'host-b',
);
migration(3, ['dc-sh', undefined], [['dc-sh', undefined]], 'vm-3', 'img-ubuntu', 'host-c');
migration(4, ['dc-osa', 'nrt'], [['dc-jkt', 'sin']], 'vm-4', 'img-win', 'host-a');
migration(5, ['dc-jkt', 'sin'], [['dc-gz', 'hkg']], 'vm-1', 'img-ubuntu', 'host-d');
// An off-site backup to many data centers: more rows than one BatchWrite (25) and one page.
const many = Array.from({ length: 26 }, (_, i): End => [`dc-b${String(i).padStart(2, '0')}`, 'nrt']);
migration(6, ['dc-osa', 'nrt'], many, 'vm-6', 'img-db', 'host-e');

let t: TestCloud;
beforeAll(async () => {
  t = await startTestCloud({ agents: false });
  const store = t.cloud.root.deps.mapping;
  // Twice: writing a migration's rows again must not duplicate them.
  await store.putRows(content, location);
  await store.putRows(content, location);
});
afterAll(() => t?.dispose());

interface Page<T> {
  items: T[];
  nextCursor?: string;
}
type Filters = Record<string, string>;

async function get<T>(path: string, q: Filters, token = t.cloud.tokens.adminToken) {
  const res = await fetch(`${t.cloud.endpoints.api}${path}?${new URLSearchParams(q)}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Every row of a query, page by page; checks each page's size and that no row comes twice. */
async function walk<T>(path: string, q: Filters, limit: number, token?: string): Promise<T[]> {
  const rows: T[] = [];
  let cursor: string | undefined;
  do {
    const res = await get<Page<T>>(
      path,
      { ...q, limit: String(limit), ...(cursor ? { cursor } : {}) },
      token,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.items.length).toBeLessThanOrEqual(limit);
    rows.push(...res.body.items);
    cursor = res.body.nextCursor;
  } while (cursor);
  return rows;
}

const ck = (r: ContentMapRow) => `${r.migrationId} ${r.status} ${r.dataCenterId}`;
const lk = (r: LocationMapRow) => `${r.migrationId} ${r.destinationDataCenterId}`;
const matching = <T>(rows: T[], f: Filters) =>
  rows.filter((r) => Object.entries(f).every(([k, v]) => (r as Record<string, unknown>)[k] === v));
const keys = <T>(rows: T[], key: (r: T) => string) => rows.map(key).sort();
const agent = (dc: string) => t.cloud.agentToken(dc);

describe('GET /v1/content-map (draft Table 1)', () => {
  it.each<Filters>([
    {},
    { migrationId: mig(2) },
    { dataCenterId: 'dc-sh' },
    { cacheNodeId: 'hkg' },
    { vmId: 'vm-1' },
    { imageId: 'img-win' },
    { hostId: 'host-a' },
    { status: 'DEST' },
    { dataCenterId: 'dc-gz', status: 'SRC' },
    { imageId: 'img-ubuntu', cacheNodeId: 'hkg' },
    { migrationId: mig(2), status: 'DEST', cacheNodeId: 'sin' },
    { vmId: 'vm-1', hostId: 'host-d' },
    { migrationId: mig(6), dataCenterId: 'dc-b07' },
    { vmId: 'vm-3', imageId: 'img-win' },
    { migrationId: mig(99) },
  ])('filter %j returns exactly the matching rows, on one page and walking pages of 1 and 7', async (f) => {
    const expected = keys(matching(content, f), ck);
    const one = await get<Page<ContentMapRow>>('/v1/content-map', { ...f, limit: '1000' });
    expect(one.body.nextCursor).toBeUndefined();
    expect(keys(one.body.items, ck)).toEqual(expected);
    expect(keys(await walk<ContentMapRow>('/v1/content-map', f, 1), ck)).toEqual(expected);
    expect(keys(await walk<ContentMapRow>('/v1/content-map', f, 7), ck)).toEqual(expected);
  });

  it('returns rows as written, without storage keys; a local migration has no cache node', async () => {
    const { body } = await get<Page<ContentMapRow>>('/v1/content-map', { migrationId: mig(3) });
    expect(body.items.sort((a, b) => ck(a).localeCompare(ck(b)))).toEqual(
      matching(content, { migrationId: mig(3) }).sort((a, b) => ck(a).localeCompare(ck(b))),
    );
    expect(body.items.every((r) => r.cacheNodeId === undefined && !('rowKey' in r))).toBe(true);
  });

  it('an agent sees only rows of its own data center, and 403 for another', async () => {
    const mine = (q: Filters) => keys(matching(content, { ...q, dataCenterId: 'dc-sh' }), ck);
    for (const q of [
      {},
      { migrationId: mig(1) },
      { dataCenterId: 'dc-sh' },
      { vmId: 'vm-2' },
      { status: 'SRC' },
    ])
      expect(keys(await walk<ContentMapRow>('/v1/content-map', q, 1, agent('dc-sh')), ck)).toEqual(mine(q));
    const other = await get<ErrorBody>('/v1/content-map', { dataCenterId: 'dc-gz' }, agent('dc-sh'));
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe('Forbidden');
  });
});

describe('GET /v1/location-map (draft Table 2)', () => {
  it.each<Filters>([
    {},
    { migrationId: mig(2) },
    { sourceDataCenterId: 'dc-gz' },
    { destinationDataCenterId: 'dc-jkt' },
    { sourceCacheNodeId: 'nrt' },
    { destinationCacheNodeId: 'hkg' },
    { sourceDataCenterId: 'dc-gz', destinationCacheNodeId: 'sin' },
    { migrationId: mig(2), destinationDataCenterId: 'dc-osa' },
    { destinationDataCenterId: 'dc-sh', sourceDataCenterId: 'dc-sh' },
    { migrationId: mig(6), sourceCacheNodeId: 'hkg' },
  ])('filter %j returns exactly the matching rows, on one page and walking pages of 1 and 7', async (f) => {
    const expected = keys(matching(location, f), lk);
    const one = await get<Page<LocationMapRow>>('/v1/location-map', { ...f, limit: '1000' });
    expect(keys(one.body.items, lk)).toEqual(expected);
    expect(keys(await walk<LocationMapRow>('/v1/location-map', f, 1), lk)).toEqual(expected);
    expect(keys(await walk<LocationMapRow>('/v1/location-map', f, 7), lk)).toEqual(expected);
  });

  it('marks a local migration and keeps both ends of every row', async () => {
    const { body } = await get<Page<LocationMapRow>>('/v1/location-map', { migrationId: mig(3) });
    expect(body.items).toEqual(matching(location, { migrationId: mig(3) }));
    expect(body.items[0]).toMatchObject({ local: true, sourceDataCenterId: 'dc-sh' });
  });

  const osa = (r: LocationMapRow) =>
    r.sourceDataCenterId === 'dc-osa' || r.destinationDataCenterId === 'dc-osa';
  it.each<Filters>([
    { migrationId: mig(2) },
    { migrationId: mig(1) },
    { migrationId: mig(6) },
    { sourceDataCenterId: 'dc-osa' },
    { destinationDataCenterId: 'dc-osa' },
    { sourceDataCenterId: 'dc-gz', destinationDataCenterId: 'dc-osa' },
    { migrationId: mig(2), sourceCacheNodeId: 'hkg' },
    { sourceDataCenterId: 'dc-osa', destinationCacheNodeId: 'sin' },
  ])('an agent pinned by %j sees only rows where its data center is one end', async (f) => {
    const expected = keys(matching(location, f).filter(osa), lk);
    const rows = await walk<LocationMapRow>('/v1/location-map', f, 1, agent('dc-osa'));
    expect(rows.every(osa)).toBe(true);
    expect(keys(rows, lk)).toEqual(expected);
  });

  it('an agent must pin migrationId or its own data center (400), and may not name others (403)', async () => {
    for (const q of [{}, { sourceCacheNodeId: 'nrt' }]) {
      const res = await get<ErrorBody>('/v1/location-map', q, agent('dc-osa'));
      expect(res.status).toBe(400);
      expect(res.body.error.issues?.[0]?.reason).toContain('migrationId');
    }
    for (const q of [
      { sourceDataCenterId: 'dc-gz' },
      { destinationDataCenterId: 'dc-jkt' },
      { migrationId: mig(2), destinationDataCenterId: 'dc-jkt' },
    ]) {
      expect((await get<ErrorBody>('/v1/location-map', q, agent('dc-osa'))).status).toBe(403);
    }
  });
});

describe('bad input and credentials', () => {
  it('rejects a garbage cursor, a cursor of another query and an empty id with 400 naming the field', async () => {
    const first = await get<Page<ContentMapRow>>('/v1/content-map', { dataCenterId: 'dc-gz', limit: '1' });
    const cursor = first.body.nextCursor ?? '';
    expect(cursor).not.toBe('');
    for (const [path, q, field] of [
      ['/v1/content-map', { dataCenterId: 'dc-sh', cursor }, 'cursor'],
      ['/v1/content-map', { cursor: 'not-a-cursor' }, 'cursor'],
      ['/v1/location-map', { cursor }, 'cursor'],
      ['/v1/content-map', { migrationId: '' }, 'migrationId'],
      ['/v1/location-map', { migrationId: '' }, 'migrationId'],
      ['/v1/content-map', { status: 'BOTH' }, 'status'],
      ['/v1/location-map', { sourceDataCenterId: 'DC GZ' }, 'sourceDataCenterId'],
    ] as const) {
      const res = await get<ErrorBody>(path, q);
      expect(res.status, `${path} ${JSON.stringify(q)}`).toBe(400);
      expect(res.body.error.issues?.map((i) => i.field)).toContain(field);
    }
  });

  it('401 without or with a bad token', async () => {
    for (const path of ['/v1/content-map', '/v1/location-map']) {
      expect((await fetch(`${t.cloud.endpoints.api}${path}`)).status).toBe(401);
      expect((await get(path, {}, 'vmmig-agent.dc-sh.forged')).status).toBe(401);
    }
  });
});
