// Limits (issue 6 item 8, DESIGN §9): request bodies over 1 MiB, list fields over their caps, page sizes,
// long-poll waits, and manifests over MAX_MANIFEST_BYTES or MAX_MANIFEST_CHUNKS. Each limit is refused with a 4xx
// that says which limit, the request just under it is served, and nothing is stored either way.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_BODY_BYTES } from '../../lambdas/api/app.ts';
import { MAX_MANIFEST_BYTES } from '../../lambdas/api/routes/agent-source.ts';
import { MAX_BATCH_VMS } from '../../protocol/api/batches.ts';
import { MAX_ESTIMATE_CHUNKS } from '../../protocol/api/estimate.ts';
import { MAX_MANIFEST_CHUNKS } from '../../protocol/manifest.ts';
import { MAX_PACK_BYTES, MIN_PACK_BYTES } from '../../protocol/pack.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import {
  type Driven,
  migrationAt,
  putManifestFile,
  TINY_CHUNKING,
  tinyImage,
} from './support/agent-driver.ts';
import { baselines, type Fixtures } from './support/baselines.ts';
import { createFixtures } from './support/fixtures.ts';
import { expectRejected, ROUTES, routeName, schemasOf, sender } from './support/fuzz.ts';
import { snapshotter } from './support/snapshot.ts';

// The machine may be shared and busy: whole migrations run in some tests.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });
let t: TestCloud;
let f: Fixtures;
let send: ReturnType<typeof sender>;
let snap: ReturnType<typeof snapshotter>;

beforeAll(async () => {
  t = await startTestCloud({ agents: false, policyTickMs: 0 });
  f = await createFixtures(t);
  send = sender(t);
  snap = snapshotter(t, { ignoreAttributes: { Registry: ['agent'] } });
});
afterAll(async () => {
  snap?.close();
  await t?.dispose();
});

const hex = () => randomBytes(32).toString('hex');

describe('request bodies are capped at 1 MiB', () => {
  it('every route with a body answers 413 over the cap, whether the length is announced or streamed', async () => {
    const before = await snap.take();
    const b = baselines(f);
    const withBody = ROUTES.filter((r) => schemasOf(r).body);
    expect(withBody.length).toBeGreaterThan(15);
    // Valid JSON, one byte over: a string field padded out.
    const over = `{"pad":"${'x'.repeat(MAX_BODY_BYTES - 9)}"}`;
    expect(Buffer.byteLength(over)).toBe(MAX_BODY_BYTES + 1);
    for (const r of withBody) {
      const base = { method: r.method, path: r.path, ...b[routeName(r)] };
      expectRejected(await send({ ...base, raw: over }), {
        statuses: [413],
        code: 'LimitExceeded',
        what: routeName(r),
      });
      // Without Content-Length (chunked): the server counts as it reads.
      expectRejected(await send({ ...base, raw: new Blob([over]).stream() }), {
        statuses: [413],
        code: 'LimitExceeded',
        what: `${routeName(r)} chunked`,
      });
    }
    // Unauthenticated, too: the cap comes first, so nobody makes the API read more.
    const anon = await send({ method: 'post', path: '/v1/estimates', raw: over, token: null });
    expectRejected(anon, { statuses: [413], code: 'LimitExceeded' });
    expect(anon.json.error?.message).toContain(String(MAX_BODY_BYTES));
    expect(snap.diff(before, await snap.take())).toEqual([]);
  });

  it('a body exactly at the cap is read (and judged on its content)', async () => {
    const at = `{"pad":"${'x'.repeat(MAX_BODY_BYTES - 10)}"}`;
    expect(Buffer.byteLength(at)).toBe(MAX_BODY_BYTES);
    expectRejected(await send({ method: 'post', path: '/v1/estimates', raw: at }), {
      statuses: [400],
      field: 'pad',
    });
  });
});

describe('lists in bodies are capped', () => {
  const estimate = (n: number) => ({
    destinationDataCenterId: 'dc-osa',
    sourceDataCenterId: 'dc-gz',
    chunks: Array.from({ length: n }, () => ({ sha256: hex(), length: 4096 })),
  });

  it(`estimates take ${MAX_ESTIMATE_CHUNKS} chunks, not one more`, async () => {
    const ok = await send({ method: 'post', path: '/v1/estimates', body: estimate(MAX_ESTIMATE_CHUNKS) });
    expect(ok.status).toBe(200);
    expect(ok.json['chunks']).toBe(MAX_ESTIMATE_CHUNKS);
    const over = await send({
      method: 'post',
      path: '/v1/estimates',
      body: estimate(MAX_ESTIMATE_CHUNKS + 1),
    });
    expectRejected(over, { statuses: [400], field: 'chunks' });
  });

  it(`batches take ${MAX_BATCH_VMS} VMs, migrations and policies 16 destinations, pack reports 100 packs`, async () => {
    const before = await snap.take();
    const b = baselines(f);
    const vms = Array.from({ length: MAX_BATCH_VMS + 1 }, (_, i) => ({
      vmId: `vm-${i}`,
      hostId: 'h',
      imageId: `i${i}.img`,
    }));
    const batch = b['POST /v1/batches'] ?? {};
    expectRejected(
      await send({ method: 'post', path: '/v1/batches', ...batch, body: { ...(batch.body as object), vms } }),
      { statuses: [400], field: 'vms' },
    );
    const destinations = Array.from({ length: 17 }, (_, i) => ({ dataCenterId: `dc-${i}` }));
    for (const name of ['POST /v1/migrations', 'POST /v1/batches', 'PUT /v1/backup-policies/{policyId}']) {
      const [method, path] = name.split(' ') as [string, string];
      const req = b[name] ?? {};
      expectRejected(await send({ method, path, ...req, body: { ...(req.body as object), destinations } }), {
        statuses: [400],
        field: 'destinations',
        what: name,
      });
    }
    const retry = await send({
      method: 'post',
      path: '/v1/migrations/{migrationId}/retry',
      params: { migrationId: f.migrationId },
      body: { destinations: destinations.map((d) => d.dataCenterId) },
    });
    expectRejected(retry, { statuses: [400], field: 'destinations' });
    const report = (packs: string[]) =>
      send({
        method: 'post',
        path: '/v1/migrations/{migrationId}/source/packs',
        params: { migrationId: f.migrationId },
        body: { packs },
        token: t.cloud.agentToken(f.from),
      });
    expectRejected(await report(Array.from({ length: 101 }, hex)), { statuses: [400], field: 'packs' });
    // 100 are read back (none was stored: each is rejected, nothing is indexed).
    const hundred = await report(Array.from({ length: 100 }, hex));
    expect(hundred.status, hundred.text.slice(0, 300)).toBe(200);
    expect(hundred.json).toMatchObject({ verified: 0, chunks: 0 });
    expect(hundred.json['rejected']).toHaveLength(100);
    expect(snap.diff(before, await snap.take())).toEqual([]);
  });

  it(`a pack URL is for ${MIN_PACK_BYTES} to ${MAX_PACK_BYTES} bytes, not one more or less`, async () => {
    const m: Driven = await migrationAt(t, 'upload');
    const before = await snap.take();
    const url = (size: number) =>
      send({
        method: 'post',
        path: '/v1/migrations/{migrationId}/source/pack-url',
        params: { migrationId: m.migration.id },
        body: { sha256: hex(), size },
        token: t.cloud.agentToken(m.from),
      });
    for (const size of [MIN_PACK_BYTES - 1, MAX_PACK_BYTES + 1])
      expectRejected(await url(size), { statuses: [400], field: 'size', what: `size ${size}` });
    for (const size of [MIN_PACK_BYTES, MAX_PACK_BYTES]) {
      const ok = await url(size);
      expect(ok.status, `size ${size} → ${ok.text.slice(0, 200)}`).toBe(200);
      expect(ok.json['headers']).toMatchObject({ 'x-amz-checksum-sha256': expect.any(String) });
    }
    // Signing a URL stores nothing.
    expect(snap.diff(before, await snap.take())).toEqual([]);
  });
});

describe('pages and long polls', () => {
  it('page sizes run from 1 to 1000 on every list', async () => {
    const lists = ROUTES.filter((r) => r.method === 'get' && 'limit' in (schemasOf(r).query?.shape ?? {}));
    expect(lists.length).toBeGreaterThanOrEqual(8);
    const b = baselines(f);
    for (const r of lists) {
      const base = { method: r.method, path: r.path, ...b[routeName(r)] };
      for (const limit of ['0', '1001', '-1', '2.5']) {
        expectRejected(await send({ ...base, query: { ...base.query, limit } }), {
          statuses: [400],
          field: 'limit',
          what: `${routeName(r)} limit=${limit}`,
        });
      }
      const max = await send({ ...base, query: { ...base.query, limit: '1000' } });
      expect([200, 409], `${routeName(r)} limit=1000 → ${max.text.slice(0, 200)}`).toContain(max.status);
    }
  });

  it('the upload plan comes `limit` chunks to a page (up to 1000); the next page goes on from there', async () => {
    const image = tinyImage(Array.from({ length: 510 }, () => TINY_CHUNKING.minSize));
    const m: Driven = await migrationAt(t, 'upload', { image });
    const page = (query: Record<string, string>) =>
      send({
        method: 'get',
        path: '/v1/migrations/{migrationId}/source/upload-plan',
        params: { migrationId: m.migration.id },
        query,
        token: t.cloud.agentToken(m.from),
      });
    const first = await page({ limit: '500' });
    expect(first.status).toBe(200);
    expect((first.json['items'] as unknown[]).length).toBe(500);
    expect(first.json['nextCursor']).toBe('500');
    const second = await page({ limit: '500', cursor: '500' });
    expect((second.json['items'] as unknown[]).length).toBe(10);
    expect(second.json['nextCursor']).toBeUndefined();
    // No URLs to sign any more: a page is as long as asked, the whole plan of 510 in one.
    const whole = await page({ limit: '1000' });
    expect((whole.json['items'] as unknown[]).length).toBe(510);
    expect(whole.json['nextCursor']).toBeUndefined();
    expectRejected(await page({ cursor: '511' }), { statuses: [400], field: 'cursor' });
  });

  it('an agent look at its work answers at once (an idle agent waits on its work queue, not on the API)', async () => {
    const work = await send({ method: 'get', path: '/v1/agent/work', token: t.cloud.agentToken('dc-jkt') });
    expect(work.status).toBe(200);
  });
});

describe('manifests', () => {
  let m: Driven;
  const submit = (body: { sha256: string; size: number }) =>
    send({
      method: 'post',
      path: '/v1/migrations/{migrationId}/source/manifest',
      params: { migrationId: m.migration.id },
      body,
      token: t.cloud.agentToken(m.from),
    });

  beforeAll(async () => {
    m = await migrationAt(t, 'manifest');
  });

  it(`over ${MAX_MANIFEST_BYTES} bytes announced: 400 naming size, before any upload URL is given`, async () => {
    const big = { sha256: hex(), size: MAX_MANIFEST_BYTES + 1 };
    const url = await send({
      method: 'post',
      path: '/v1/migrations/{migrationId}/source/manifest-url',
      params: { migrationId: m.migration.id },
      body: big,
      token: t.cloud.agentToken(m.from),
    });
    expectRejected(url, { statuses: [400], field: 'size' });
    expect(url.json.error?.message).toContain(String(MAX_MANIFEST_BYTES));
    expectRejected(await submit(big), { statuses: [400], field: 'size' });
  });

  it(`more than ${MAX_MANIFEST_CHUNKS} chunks: 400 naming manifest.chunks, and nothing recorded`, async () => {
    // The count is checked before any chunk is looked at, so entries need not even be chunks: a list of zeros
    // keeps the file at 1 MB (the local S3 server takes no PUT over 11 MiB; a real list of 500,001 is ~50 MB).
    const chunks = new Array(MAX_MANIFEST_CHUNKS + 1).fill(0);
    const file = JSON.stringify({
      version: 1,
      format: 'raw',
      size: 0,
      sha256: hex(),
      chunking: TINY_CHUNKING,
      chunks,
    });
    const ref = await putManifestFile(t.agent(m.from), m.migration.id, file);
    expect(ref.sha256).toBe(createHash('sha256').update(file).digest('hex'));
    const res = await submit(ref);
    expectRejected(res, { statuses: [400], field: 'manifest.chunks' });
    expect(res.json.error?.message).toContain(String(MAX_MANIFEST_CHUNKS));
    const after = await send({
      method: 'get',
      path: '/v1/migrations/{migrationId}',
      params: { migrationId: m.migration.id },
    });
    expect(after.json['image']).toBeUndefined();
  });
});
