// Cache space per node over HTTP and through `vmmig node`, against the real local cloud: a storage budget given,
// changed and removed, refused when it is not whole bytes of at least 1 MiB, the node's view of what it holds,
// what admitted migrations reserved and what the collector last found evictable, and migrations queued for space
// starting when the budget grows or goes.

import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectGarbage } from '../../lambdas/workflow/collect-garbage.ts';
import { LOCAL_NAMES, type RootDeps } from '../../local/deployment.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import type { ErrorBody } from '../../protocol/api/common.ts';
import type { Migration } from '../../protocol/api/migrations.ts';
import type { CacheNode } from '../../protocol/api/registry.ts';
import { rawCall, startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

let t: TestCloud;
let deps: RootDeps;

beforeAll(async () => {
  // No scheduled functions (policyTickMs 0): only the events under test wake a queued migration.
  t = await startTestCloud({ agents: true, policyTickMs: 0 });
  deps = t.cloud.root.deps;
});
afterAll(() => t?.dispose());

const call = <T = ErrorBody>(method: string, path: string, o: { json?: unknown; token?: string } = {}) =>
  rawCall<T>(t, method, path, o);

const node = async (id: string) => (await call<CacheNode>('GET', `/v1/cache-nodes/${id}`)).body;
const patch = (id: string, json: unknown) => call<CacheNode>('PATCH', `/v1/cache-nodes/${id}`, { json });
const listed = async (id: string) =>
  (await call<{ items: CacheNode[] }>('GET', '/v1/cache-nodes')).body.items.find((n) => n.id === id);
const digest = (n: number) => n.toString(16).padStart(64, '0');

describe('a cache node with a storage budget', () => {
  it('is registered with a budget (PUT), and a PUT without one leaves it unlimited', async () => {
    await t.cloud.root.clients
      .s3('eu-west-1')
      .send(new CreateBucketCommand({ Bucket: LOCAL_NAMES.cacheBucket('dub') }));
    const input = { name: 'Dublin', region: 'eu-west-1', location: { lat: 53.35, lon: -6.26 }, capacity: 4 };
    const created = await call<CacheNode>('PUT', '/v1/cache-nodes/dub', {
      json: { ...input, budgetBytes: 64 * MiB },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      budgetBytes: 64 * MiB,
      bytesHeld: 0,
      chunksHeld: 0,
      bytesReserved: 0,
    });
    expect(created.body.collection).toBeUndefined();
    expect(await node('dub')).toEqual(created.body);
    expect(await listed('dub')).toEqual(created.body);

    const replaced = await call<CacheNode>('PUT', '/v1/cache-nodes/dub', { json: input });
    expect(replaced.status).toBe(200);
    expect(replaced.body.budgetBytes).toBeUndefined();
    expect((await node('dub')).budgetBytes).toBeUndefined();
    expect((await call('DELETE', '/v1/cache-nodes/dub')).status).toBe(204);
  });

  it('is changed alone by PATCH and removed with null, keeping capacity and status', async () => {
    const before = await node('nrt');
    expect(before.budgetBytes).toBeUndefined();
    const set = await patch('nrt', { budgetBytes: 10 * GiB });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({
      budgetBytes: 10 * GiB,
      capacity: before.capacity,
      status: before.status,
    });
    expect((await listed('nrt'))?.budgetBytes).toBe(10 * GiB);
    expect((await patch('nrt', { capacity: 6 })).body).toMatchObject({ budgetBytes: 10 * GiB, capacity: 6 });
    const removed = await patch('nrt', { budgetBytes: null, capacity: before.capacity });
    expect(removed.status).toBe(200);
    expect(removed.body.budgetBytes).toBeUndefined();
    expect(removed.body.capacity).toBe(before.capacity);
    expect('budgetBytes' in (await node('nrt'))).toBe(false);
  });

  it.each([
    ['zero', 'PATCH', 0],
    ['below 1 MiB', 'PATCH', MiB - 1],
    ['a fraction', 'PATCH', 1.5 * MiB + 0.5],
    ['negative', 'PATCH', -GiB],
    ['beyond 2^53-1', 'PATCH', 2 ** 53],
    ['a string', 'PATCH', '10GiB'],
    ['below 1 MiB, on PUT', 'PUT', 1024],
    ['null on PUT (omit it instead)', 'PUT', null],
  ])('refuses %s: 400 naming budgetBytes, nothing written', async (_name, method, budgetBytes) => {
    const before = await node('hkg');
    const json =
      method === 'PATCH'
        ? { budgetBytes }
        : { name: before.name, region: before.region, location: before.location, capacity: 8, budgetBytes };
    const res = await call(method, '/v1/cache-nodes/hkg', { json });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('ValidationError');
    expect(res.body.error.issues?.map((i) => i.field)).toContain('budgetBytes');
    expect(await node('hkg')).toEqual(before);
  });

  it('refuses an empty PATCH, naming all three fields it takes', async () => {
    const res = await patch('hkg', {});
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('give at least one of capacity, status and budgetBytes');
  });
});

describe("a cache node's space in its view", () => {
  it('shows what the content index holds there, what migrations reserved, and the last collection', async () => {
    const chunks = [
      { sha256: digest(1), length: 3 * MiB },
      { sha256: digest(2), length: 5 * MiB },
    ];
    await deps.contentIndex.record('sin', chunks);
    const reserved = await deps.slots.reserveSpace('sin', 'mig-space0000000000000a', 7 * MiB, () => true);
    expect(reserved.reserved).toBe(true);
    try {
      const viewed = await node('sin');
      expect(viewed).toMatchObject({ bytesHeld: 8 * MiB, chunksHeld: 2, bytesReserved: 7 * MiB });
      expect(viewed.collection).toBeUndefined();
      // Who reserved is not shown (agents see the same view): only how much.
      expect(viewed).not.toHaveProperty('spaceReservations');
      const agent = await call<CacheNode>('GET', '/v1/cache-nodes/sin', {
        token: t.cloud.agentToken('dc-jkt'),
      });
      expect(agent.body).toMatchObject({ bytesHeld: 8 * MiB, bytesReserved: 7 * MiB });

      // Nothing references these chunks: the collector finds them evictable, and with no budget marks none.
      const report = await collectGarbage(deps, { nodes: ['sin'] });
      const pass = report.nodes[0];
      expect(pass).toMatchObject({ cacheNodeId: 'sin', evictableBytes: 8 * MiB });
      const after = await listed('sin');
      expect(after?.collection).toEqual({
        at: pass?.at,
        evictableBytes: 8 * MiB,
        marked: pass?.marked,
        freed: pass?.freed,
        pending: pass?.pending,
        reason: pass?.reason,
      });
      expect(after).toMatchObject({ bytesHeld: 8 * MiB, chunksHeld: 2 });
    } finally {
      await deps.slots.releaseSpace('sin', 'mig-space0000000000000a');
      for (const c of chunks) await deps.contentIndex.remove('sin', c.sha256);
    }
    expect(await node('sin')).toMatchObject({ bytesHeld: 0, chunksHeld: 0, bytesReserved: 0 });
  });
});

describe('migrations queued for space at a node', { timeout: 180_000 }, () => {
  // nrt (Osaka's cache node) is filled with index entries of chunks no migration names, close to its budget.
  const filler = Array.from({ length: 15 }, (_, i) => ({ sha256: digest(0x100 + i), length: 4 * MiB }));
  const queuedForSpace = (m: Migration) =>
    m.status === 'QUEUED' &&
    m.history?.some(
      (h) => h.event === 'queued' && /cache node nrt .*waiting for room/.test(h.message ?? ''),
    ) === true;
  const migrate = async (image: string, seed: string) => {
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-gz'), 'images', image),
      vmLikeSpec(32 * MiB, 12 * MiB, seed, 4),
    );
    return startMigration(t.admin, { imageId: image, from: 'dc-gz', to: ['dc-osa'] });
  };

  it('start once the budget grows, and once it is removed', async () => {
    await deps.contentIndex.record('nrt', filler);
    try {
      expect((await patch('nrt', { budgetBytes: 64 * MiB })).status).toBe(200);
      const first = await migrate('space-1.img', 'space-1');
      await waitForMigration(t.admin, first.id, queuedForSpace);
      expect(await node('nrt')).toMatchObject({ bytesHeld: 60 * MiB, bytesReserved: 0 });

      expect((await patch('nrt', { budgetBytes: GiB })).status).toBe(200);
      const done = await waitForMigration(t.admin, first.id);
      expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
      // Its chunks are held at nrt now, beside the filler, and its reservation was given back.
      const after = await node('nrt');
      expect(after.bytesHeld).toBeGreaterThanOrEqual(60 * MiB + 12 * MiB);
      expect(after.chunksHeld).toBeGreaterThan(filler.length);
      expect(after.bytesReserved).toBe(0);

      // 4 MiB free again: the next image waits, until the budget goes.
      await patch('nrt', { budgetBytes: after.bytesHeld + 4 * MiB });
      const second = await migrate('space-2.img', 'space-2');
      await waitForMigration(t.admin, second.id, queuedForSpace);
      const removed = await patch('nrt', { budgetBytes: null });
      expect(removed.status).toBe(200);
      const done2 = await waitForMigration(t.admin, second.id);
      expect(done2.status, JSON.stringify(done2.error)).toBe('COMPLETED');
    } finally {
      await patch('nrt', { budgetBytes: null });
      for (const c of filler) await deps.contentIndex.remove('nrt', c.sha256);
    }
  });
});

describe('vmmig node', () => {
  it('set --budget takes sizes and none; ls --json gives the raw objects', async () => {
    const set = await t.vmmig(['node', 'set', 'sin', '--budget', '64MiB', '--no-json']);
    expect(set, set.stderr).toMatchObject({ code: 0 });
    expect(set.stdout).toBe('sin: active, capacity 8, budget 64.0 MiB (0 B held)\n');
    expect((await node('sin')).budgetBytes).toBe(64 * MiB);

    const json = await t.vmmig(['node', 'set', 'sin', '--budget', '1TB', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: 'sin', budgetBytes: 1e12 });

    const ls = await t.vmmig(['node', 'ls', '--json']);
    expect(ls.code).toBe(0);
    const lines = ls.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as CacheNode);
    expect(lines.find((n) => n.id === 'sin')).toEqual(await node('sin'));

    const none = await t.vmmig(['node', 'set', 'sin', '--budget', 'none', '--json']);
    expect(none.code, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout).budgetBytes).toBeUndefined();
    expect((await node('sin')).budgetBytes).toBeUndefined();
  });

  it('lists each node with its space on one line of text', async () => {
    const ls = await t.vmmig(['node', 'ls', '--no-json']);
    expect(ls.code).toBe(0);
    // sin: nothing held, no budget, and the collection of the test above (its chunks were removed since).
    expect(ls.stdout).toMatch(
      /^sin +Singapore +ap-southeast-1 +active +0\/8 transfers +held +0 B \/ unlimited +reserved +0 B +evictable +8\.0 MiB +http:\/\/\S+\/sin\/$/m,
    );
    // nrt: the images migrated above, no collection yet.
    expect(ls.stdout).toMatch(
      /^nrt +Tokyo .* held +\d+\.\d MiB \/ unlimited +reserved +0 B +evictable +- +http/m,
    );
  });

  it('refuses a size it cannot read and a budget the API refuses (exit 2, naming budgetBytes)', async () => {
    const unreadable = await t.vmmig(['node', 'set', 'sin', '--budget', '10XB']);
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toContain('"10XB" is not a size');
    const small = await t.vmmig(['node', 'set', 'sin', '--budget', '512K']);
    expect(small.stderr).toMatch(/budgetBytes: /);
    expect(small.code).toBe(2);
    expect((await node('sin')).budgetBytes).toBeUndefined();
  });
});
