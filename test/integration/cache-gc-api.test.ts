// The cache collector on request (POST /v1/cache/gc, `vmmig cache gc`) and on its own (the collector state machine,
// started by the local cloud's timer as EventBridge Scheduler starts it on AWS), against the real local cloud: chunks
// stored at a cache node and indexed there, a small budget and no grace period. A dry run changes nothing; a pass
// marks, the next one deletes objects and entries; the scheduled pass does the same with nobody asking.
import { createHash, randomBytes } from 'node:crypto';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { IndexEntry } from '../../lambdas/aws/content-index.ts';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import type { CollectGarbageReport } from '../../protocol/api/cache-gc.ts';
import type { ErrorBody } from '../../protocol/api/common.ts';
import { chunkKey } from '../../protocol/chunk-key.ts';
import { rawCall, startTestCloud, type TestCloud } from '../support/local-cloud.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 240_000 });

const MiB = 1024 ** 2;
const NODE = 'hkg';
const CHUNK = 512 * 1024;

/** `n` chunks of 512 KiB stored in a node's bucket and indexed there, as a finished migration leaves them. */
async function storeChunks(t: TestCloud, node: string, n: number): Promise<string[]> {
  const s3 = t.cloud.root.clients.s3(t.cloud.root.deps.control.region);
  const digests: string[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = randomBytes(CHUNK);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await s3.send(
      new PutObjectCommand({ Bucket: LOCAL_NAMES.cacheBucket(node), Key: chunkKey(sha256), Body: bytes }),
    );
    digests.push(sha256);
  }
  await t.cloud.root.deps.contentIndex.record(
    node,
    digests.map((sha256) => ({ sha256, length: CHUNK })),
  );
  return digests;
}

async function stored(t: TestCloud, node: string, sha256: string): Promise<boolean> {
  const s3 = t.cloud.root.clients.s3(t.cloud.root.deps.control.region);
  try {
    await s3.send(new HeadObjectCommand({ Bucket: LOCAL_NAMES.cacheBucket(node), Key: chunkKey(sha256) }));
    return true;
  } catch (err) {
    if ((err as Error).name === 'NotFound') return false;
    throw err;
  }
}

async function entries(t: TestCloud, node: string): Promise<IndexEntry[]> {
  return (await t.cloud.root.deps.contentIndex.entries(node, { limit: 1000 })).items;
}

/** A 1 MiB budget (the least the API takes) at the node, no grace period: marked chunks go at the next pass. */
async function squeeze(t: TestCloud, node: string): Promise<void> {
  expect((await rawCall(t, 'PATCH', `/v1/cache-nodes/${node}`, { json: { budgetBytes: MiB } })).status).toBe(
    200,
  );
  expect((await rawCall(t, 'PATCH', '/v1/cache/settings', { json: { graceSeconds: 0 } })).status).toBe(200);
}

describe('POST /v1/cache/gc', () => {
  let t: TestCloud;
  let digests: string[];
  beforeAll(async () => {
    t = await startTestCloud({ agents: false, policyTickMs: 0 });
    // 2 MiB held against a 1 MiB budget: over the high-water mark (90%), down to the low-water mark (75%).
    digests = await storeChunks(t, NODE, 4);
    await squeeze(t, NODE);
  });
  afterAll(() => t?.dispose());

  const gc = (json: unknown, token?: string) =>
    rawCall<CollectGarbageReport>(t, 'POST', '/v1/cache/gc', { json, ...(token ? { token } : {}) });

  it('a dry run says what a pass would mark, and changes nothing', async () => {
    const before = await entries(t, NODE);
    const usage = await t.cloud.root.deps.contentIndex.usage(NODE);
    const { status, body } = await gc({ dryRun: true, cacheNodeIds: [NODE] });
    expect(status).toBe(200);
    expect(body.settings.graceSeconds).toBe(0);
    expect(body.maxEntriesPerNode).toBe(200_000);
    expect(body.nodes).toHaveLength(1);
    const [n] = body.nodes;
    expect(n).toMatchObject({
      cacheNodeId: NODE,
      dryRun: true,
      budgetBytes: MiB,
      bytesHeld: 4 * CHUNK,
      evictableBytes: 4 * CHUNK,
      // Least recently used first, until 0.75 MiB is left: three of the four.
      marked: { chunks: 3, bytes: 3 * CHUNK },
      freed: { chunks: 0, bytes: 0 },
      targetBytes: 0.75 * MiB,
      partial: false,
    });
    expect(await entries(t, NODE)).toEqual(before);
    expect(await t.cloud.root.deps.contentIndex.usage(NODE)).toEqual(usage);
    for (const d of digests) expect(await stored(t, NODE, d)).toBe(true);
  });

  it('a pass marks; the next one deletes what it marked, objects and entries', async () => {
    const first = (await gc({ cacheNodeIds: [NODE] })).body.nodes[0];
    expect(first).toMatchObject({ dryRun: false, marked: { chunks: 3 }, freed: { chunks: 0 } });
    const marked = (await entries(t, NODE)).filter((e) => e.condemnedAt).map((e) => e.sha256);
    expect(marked).toHaveLength(3);
    for (const d of digests) expect(await stored(t, NODE, d)).toBe(true);

    const second = (await gc({})).body.nodes.find((n) => n.cacheNodeId === NODE);
    expect(second).toMatchObject({
      freed: { chunks: 3, bytes: 3 * CHUNK },
      bytesHeld: CHUNK,
      marked: { chunks: 0 },
      reason: 'within budget',
    });
    expect((await entries(t, NODE)).map((e) => e.sha256)).toEqual(digests.filter((d) => !marked.includes(d)));
    for (const d of digests) expect(await stored(t, NODE, d), d).toBe(!marked.includes(d));
    expect((await t.cloud.root.deps.contentIndex.usage(NODE)).bytesHeld).toBe(CHUNK);
  });

  it('refuses unknown cache nodes (400 naming each) and other principals than the admin (403)', async () => {
    const unknown = await gc({ cacheNodeIds: [NODE, 'zz-nowhere'] });
    expect(unknown.status).toBe(400);
    expect((unknown.body as unknown as ErrorBody).error.issues?.map((i) => i.field)).toEqual([
      'cacheNodeIds.1',
    ]);
    const agent = await gc({ dryRun: true }, t.cloud.agentToken('dc-gz'));
    expect(agent.status).toBe(403);
  });

  it('`vmmig cache gc --dry-run` prints each node against its budget; JSON to a pipe', async () => {
    const text = await t.vmmig(['cache', 'gc', '--dry-run', '--node', NODE, '--node', 'nrt', '--no-json']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Dry run (nothing changed)');
    expect(text.stdout).toMatch(
      /cache node hkg\n {2}held {7}512\.0 KiB of a 1\.0 MiB budget \(50%\), 1 chunk\n/,
    );
    expect(text.stdout).toMatch(/cache node nrt\n {2}held {7}0 B in 0 chunks \(no budget\)\n/);
    expect(text.stdout).toContain('would mark nothing');
    // stdout is a pipe here: JSON, the API's report.
    const json = await t.vmmig(['cache', 'gc', '--dry-run', '--node', NODE]);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as CollectGarbageReport;
    expect(report.nodes.map((n) => n.cacheNodeId)).toEqual([NODE]);
    expect(report.nodes[0]?.dryRun).toBe(true);
  });
});

describe('the scheduled collector (its state machine on the local timer)', () => {
  let t: TestCloud;
  afterAll(() => t?.dispose());

  it('marks and then frees at a node over its budget with nobody asking', async () => {
    t = await startTestCloud({ agents: false, policyTickMs: 0, gcTickMs: 200 });
    const digests = await storeChunks(t, 'sin', 4);
    await squeeze(t, 'sin');
    // The event: the three chunks a pass marked deleted by a later one, objects and entries (a pass deletes them
    // one by one). Passes keep coming until then, each in its own time.
    const deadline = Date.now() + 60_000;
    let left = await entries(t, 'sin');
    while (left.length > 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      left = await entries(t, 'sin');
    }
    expect(left).toHaveLength(1);
    const gone = digests.filter((d) => !left.some((e) => e.sha256 === d));
    for (const d of gone) expect(await stored(t, 'sin', d)).toBe(false);
    expect(await stored(t, 'sin', left[0]?.sha256 as string)).toBe(true);
  });
});
