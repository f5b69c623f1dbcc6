// Broken object-level authorization and signed edge URLs (issue 6 item 5). An agent that guesses another data
// center's migration, batch, image or chunk ids gets exactly what it gets for ids that exist nowhere; a signed
// edge URL (of the pack a chunk is stored in) works only as issued: expired, tampered, moved to another cache node
// or re-pointed at another pack or chunk, it is a 403.
import { createHash, randomBytes } from 'node:crypto';
import { getSignedUrl } from '@aws-sdk/cloudfront-signer';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadOrCreateEdgeKeys } from '../../local/edge-keys.ts';
import type { PlanChunk } from '../../protocol/api/agent.ts';
import { chunkKey, packKey, parsePackKey } from '../../protocol/chunk-key.ts';
import { packEntries } from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { type Driven, downloadPlan, fetchChunk, migrationAt } from './support/agent-driver.ts';
import { baselines, type Fixtures } from './support/baselines.ts';
import { createFixtures } from './support/fixtures.ts';
import { type RawResponse, ROUTES, routeName, sender } from './support/fuzz.ts';

// The machine may be shared and busy: whole migrations run in some tests.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });
let t: TestCloud;
let f: Fixtures;
let second: Driven;
let send: ReturnType<typeof sender>;
let other: string;

beforeAll(async () => {
  t = await startTestCloud({ agents: false, policyTickMs: 0 });
  f = await createFixtures(t);
  // A second migration replicated to the same cache node (nrt): its chunks are there, outside the first one.
  second = await migrationAt(t, 'download', { from: 'dc-sh', to: 'dc-osa' });
  send = sender(t);
  other = t.cloud.agentToken('dc-jkt');
});
afterAll(() => t?.dispose());

const unknownMigration = () => `mig-${randomBytes(13).toString('hex').slice(0, 26)}`;

/** An answer with the ids masked: what a caller could learn from it. */
const shape = (res: RawResponse, ids: readonly string[]) => {
  let text = res.text;
  for (const id of ids) text = text.split(id).join('<id>');
  return `${res.status} ${text}`;
};

describe('guessing ids reveals nothing', () => {
  it('every migration route answers an unrelated agent the same for an existing id as for one that exists nowhere', async () => {
    const b = baselines(f);
    const scoped = ROUTES.filter((r) => r.path.includes('{migrationId}'));
    expect(scoped.length).toBeGreaterThan(12);
    for (const r of scoped) {
      const req = b[routeName(r)] ?? {};
      // The unrelated agent names its own data center where a route takes one: the likeliest probe.
      const ask = async (migrationId: string) =>
        send({
          method: r.method,
          path: r.path,
          ...req,
          params: { ...req.params, migrationId, dataCenterId: 'dc-jkt' },
          ...(r.path.endsWith('/heartbeat')
            ? {
                body: {
                  role: 'destination',
                  dataCenterId: 'dc-jkt',
                  phase: 'downloading',
                  bytesDone: 0,
                  chunksDone: 0,
                },
              }
            : {}),
          token: other,
        });
      const ghost = unknownMigration();
      const [real, none] = [await ask(f.migrationId), await ask(ghost)];
      expect(real.status, `${routeName(r)} → ${real.text}`).toBeGreaterThanOrEqual(403);
      expect(shape(real, [f.migrationId]), routeName(r)).toBe(shape(none, [ghost]));
    }
  });

  it('a batch, a migration list, the mapping tables and the work list show the unrelated agent nothing', async () => {
    const ghost = `batch-${randomBytes(13).toString('hex').slice(0, 25)}`;
    const batch = (id: string) =>
      send({ method: 'get', path: '/v1/batches/{batchId}', params: { batchId: id }, token: other });
    expect(shape(await batch(f.batchId), [f.batchId])).toBe(shape(await batch(ghost), [ghost]));
    expect((await batch(f.batchId)).status).toBe(404);

    const m = (
      await send({
        method: 'get',
        path: '/v1/migrations/{migrationId}',
        params: { migrationId: f.migrationId },
      })
    ).json as { vmId: string; imageId: string };
    for (const query of [{ migrationId: f.migrationId }, { vmId: m.vmId }, { imageId: m.imageId }]) {
      const rows = await send({ method: 'get', path: '/v1/content-map', query, token: other });
      expect(rows.status).toBe(200);
      expect(rows.json['items'], JSON.stringify(query)).toEqual([]);
    }
    const located = await send({
      method: 'get',
      path: '/v1/location-map',
      query: { migrationId: f.migrationId },
      token: other,
    });
    expect(located.json['items']).toEqual([]);
    const listed = await send({
      method: 'get',
      path: '/v1/migrations',
      query: { vmId: m.vmId },
      token: other,
    });
    expect(listed.json['items']).toEqual([]);
    const named = await send({
      method: 'get',
      path: '/v1/migrations',
      query: { dataCenterId: 'dc-gz' },
      token: other,
    });
    expect(named.status).toBe(403);
    const work = await send({
      method: 'get',
      path: '/v1/agent/work',
      query: { dataCenterId: 'dc-gz' },
      token: other,
    });
    expect(work.status).toBe(403);
  });

  it("another data center's record is a 403 whether it exists or not", async () => {
    const dc = (id: string) =>
      send({
        method: 'get',
        path: '/v1/data-centers/{dataCenterId}',
        params: { dataCenterId: id },
        token: other,
      });
    expect(shape(await dc('dc-gz'), ['dc-gz'])).toBe(shape(await dc('dc-nowhere'), ['dc-nowhere']));
    expect((await dc('dc-gz')).status).toBe(403);
  });
});

describe('signed edge URLs', () => {
  let url: URL;
  let chunk: PlanChunk;
  let foreign: { sha256: string; url: string };

  beforeAll(async () => {
    const plan = await downloadPlan(t.agent('dc-osa'), f.migrationId, 'dc-osa');
    const first = plan.find((c) => c.url);
    if (!first?.url) throw new Error('no signed URL in the plan');
    url = new URL(first.url);
    chunk = first;
    const theirs = (await downloadPlan(t.agent('dc-osa'), second.migration.id, 'dc-osa')).find((c) => c.url);
    if (!theirs?.url) throw new Error('no signed URL in the second plan');
    foreign = { sha256: theirs.sha256, url: theirs.url };
  });

  const get = async (u: URL | string) => (await fetch(u)).status;
  const variant = (edit: (u: URL) => void) => {
    const u = new URL(url);
    edit(u);
    return u;
  };

  it('the URL as issued serves the pack, its range the chunk; the other migration’s pack is there with its own URL', async () => {
    // The URL names the pack the chunk is stored in at nrt; the plan's part is the chunk's range of it.
    const pack = parsePackKey(url.pathname.replace(/^\/nrt\//, '')) as string;
    expect(url.pathname).toBe(`/nrt/${packKey(pack)}`);
    const entry = (await packEntries(t, 'nrt', pack))?.find((e) => e.sha256 === chunk.sha256);
    expect(chunk.part).toEqual({ offset: entry?.offset, length: entry?.stored, encoding: entry?.encoding });
    // The whole object is the pack (its bytes hash to its name); the range decodes to the chunk (fetchChunk checks).
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const whole = Buffer.from(await res.arrayBuffer());
    expect(createHash('sha256').update(whole).digest('hex')).toBe(pack);
    expect((await fetchChunk(chunk)).length).toBe(chunk.length);
    expect(await get(foreign.url)).toBe(200);
    expect(new URL(foreign.url).pathname).not.toBe(url.pathname);
  });

  it('expired: signed with the real key but in the past, or with Expires moved', async () => {
    const keys = loadOrCreateEdgeKeys(t.dataDir);
    const expired = getSignedUrl({
      url: `${url.origin}${url.pathname}`,
      keyPairId: keys.keyPairId,
      privateKey: keys.privateKeyPem,
      dateLessThan: new Date(Date.now() - 1000).toISOString(),
    });
    expect(await get(expired)).toBe(403);
    expect(
      await get(
        variant((u) => u.searchParams.set('Expires', String(Math.floor(Date.now() / 1000) + 86400 * 365))),
      ),
    ).toBe(403);
  });

  it('tampered: signature flipped, truncated or missing, another key pair id', async () => {
    const sig = url.searchParams.get('Signature') ?? '';
    for (const s of [`${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`, sig.slice(0, -4), '']) {
      expect(await get(variant((u) => u.searchParams.set('Signature', s)))).toBe(403);
    }
    expect(await get(variant((u) => u.searchParams.delete('Signature')))).toBe(403);
    expect(await get(variant((u) => u.searchParams.set('Key-Pair-Id', 'KNOTTHEKEY')))).toBe(403);
  });

  it('for another cache node: the same chunk, also stored at hkg, through a URL signed for nrt', async () => {
    expect(await get(variant((u) => (u.pathname = u.pathname.replace('/nrt/', '/hkg/'))))).toBe(403);
    expect(await get(variant((u) => (u.pathname = u.pathname.replace('/nrt/', '/sin/'))))).toBe(403);
  });

  it('outside the migration: re-pointed at another migration’s pack, at a chunk’s own key, or at a digest stored nowhere', async () => {
    expect(await get(variant((u) => (u.pathname = new URL(foreign.url).pathname)))).toBe(403);
    expect(await get(variant((u) => (u.pathname = `/nrt/${chunkKey(chunk.sha256)}`)))).toBe(403);
    expect(await get(variant((u) => (u.pathname = `/nrt/${packKey('0'.repeat(64))}`)))).toBe(403);
    expect(await get(variant((u) => (u.pathname = `/nrt/${chunkKey('0'.repeat(64))}`)))).toBe(403);
    // Nor does a prefix of the path, or a query string added to it, pass.
    expect(await get(variant((u) => (u.pathname = `${u.pathname}x`)))).toBe(403);
    expect(await get(variant((u) => u.searchParams.set('response-content-type', 'text/html')))).toBe(403);
  });
});
