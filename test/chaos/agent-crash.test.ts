// Agents killed with kill -9 at random points: the source agent 10 times during its upload, then the destination
// agent 10 times during its download, each restarted at once. The migration completes byte-identical, and each kill
// costs at most one chunk per parallel stream sent (or fetched) again. Every S3 request goes through the fault
// proxy (injecting nothing here), which counts what was really stored and read.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyRecord, prng } from '../../local/s3/fault-proxy.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';
import { type AgentProcess, startAgentProcess } from '../support/agent-process.ts';
import {
  agentManifest,
  chunkRequest,
  countByKey,
  journalEntries,
  sha256File,
  until,
} from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../support/migrations.ts';

const CONCURRENCY = 4;
const KILLS = 10;
const SEED = Number(process.env['VMMIG_CHAOS_SEED'] ?? 20_26);

/** Each repeated request of a key is charged to the kill between it and the key's previous request. */
function perKill(records: readonly ProxyRecord[], killTimes: readonly number[]): number[] {
  const previous = new Map<string, number>();
  const counts = killTimes.map(() => 0);
  for (const r of records) {
    const before = previous.get(r.key);
    previous.set(r.key, r.at);
    if (before === undefined) continue;
    const k = killTimes.findIndex((at) => at >= before && at <= r.at);
    if (k >= 0) counts[k] = (counts[k] ?? 0) + 1;
    else {
      counts.push(1); // a duplicate no kill explains: shows up as an extra entry and fails the test
      console.warn(
        `unexplained repeat of ${r.key}: ${JSON.stringify(records.filter((x) => x.key === r.key))}, kills at ${killTimes.join(', ')}`,
      );
    }
  }
  return counts;
}

describe('agents killed with kill -9', () => {
  let t: TestCloud;
  const agents: AgentProcess[] = [];
  const random = prng(SEED);
  const image = 'crash-01.raw';
  let migrationId = '';
  let planned = 0;

  /**
   * Kill k lands at a random point of the k-th of KILLS+2 equal stretches of the transfer (counted in chunks the
   * agent has journaled), so kills spread over the transfer, leave more than the chunks in flight for the last
   * run, and hit chunks in every state: in flight, stored but not yet journaled, journaled.
   */
  const killAt = async (agent: AgentProcess, kill: number, journaled: () => Promise<number>) => {
    const target = Math.max(1, Math.floor(((kill + random()) * planned) / (KILLS + 2)));
    await until(`${target} chunks journaled`, async () => (await journaled()) >= target, 180_000, 20);
    await agent.kill('SIGKILL');
  };
  const journalLines = (dc: string, kind: 'upload' | 'download') => journalEntries(t, dc, migrationId, kind);

  const start = (dc: string) => {
    const a = startAgentProcess(t, dc, ['--concurrency', String(CONCURRENCY)]);
    agents.push(a);
    return a;
  };

  beforeAll(async () => {
    t = await startTestCloud({ agents: false, s3Faults: { faultRate: 0 } });
    // About 30 chunks of data (4 MiB on average) between holes.
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-gz'), 'images', image),
      vmLikeSpec(192 << 20, 96 << 20, 'chaos-crash'),
    );
  });
  afterAll(async () => {
    for (const a of agents) await a.kill();
    await t?.dispose();
  });

  it(`source agent: ${KILLS} kills during the upload, each re-sends at most ${CONCURRENCY} chunks`, async () => {
    const proxy = t.cloud.s3Proxy;
    if (!proxy) throw new Error('no fault proxy');
    const put = chunkRequest('PUT', 'hkg');
    const m = await startMigration(t.admin, { imageId: image, from: 'dc-gz', to: ['dc-osa'] });
    migrationId = m.id;
    const killTimes: number[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const agent = start('dc-gz');
      // The first run chunks the image and sends the manifest; the plan says how many chunks go up.
      planned ||= (await waitForMigration(t.admin, m.id, (x) => x.upload.chunksTotal > 0)).upload.chunksTotal;
      await killAt(agent, kill, async () => (await journalLines('dc-gz', 'upload')).length);
      killTimes.push(Date.now());
      const now = await getOne(t.admin, m.id);
      // Really mid-upload: the workflow still waits for it, and chunks are left to send.
      expect(now.status).toBe('UPLOADING');
      expect((await journalLines('dc-gz', 'upload')).length).toBeLessThan(planned);
    }
    const last = start('dc-gz');
    const lastStart = Date.now();
    await waitForMigration(t.admin, m.id, (x) => x.status !== 'UPLOADING' || x.upload.chunksDone === planned);
    const line = await last.waitForLine(/upload complete \((\d+) chunks sent by this run\)/, 180_000);
    const sentByLastRun = Number(/\((\d+) chunks/.exec(line)?.[1]);

    const puts = proxy.records.filter(put);
    const stored = puts.filter((r) => r.status === 200);
    const storedKeys = countByKey(stored);
    const storedTwice = [...storedKeys.values()].filter((n) => n > 1).length;
    const resentPerKill = perKill(puts, killTimes);
    const storedAgainPerKill = perKill(stored, killTimes);
    console.info(
      `agent-crash upload: planned ${planned} chunks, ${puts.length} PUTs (${stored.length} stored) over ${KILLS} kills; ` +
        `re-sent per kill [${resentPerKill.join(', ')}], stored twice per kill [${storedAgainPerKill.join(', ')}]; ` +
        `last run sent ${sentByLastRun}`,
    );
    expect(storedKeys.size).toBe(planned);
    expect(resentPerKill).toHaveLength(KILLS);
    for (const n of resentPerKill) expect(n).toBeLessThanOrEqual(CONCURRENCY);
    expect(storedTwice).toBeLessThanOrEqual(KILLS * CONCURRENCY);
    // The agent's own count for its run agrees with what storage saw.
    expect(sentByLastRun).toBe(stored.filter((r) => r.at >= lastStart).length);
  }, 300_000);

  it(`destination agent: ${KILLS} kills during the download, each re-fetches at most ${CONCURRENCY} chunks`, async () => {
    const proxy = t.cloud.s3Proxy;
    if (!proxy) throw new Error('no fault proxy');
    const get = chunkRequest('GET', 'nrt');
    // Nothing downloads before the first destination agent starts.
    await waitForMigration(t.admin, migrationId, (x) => x.status === 'DOWNLOADING');
    const zero = new Set(
      (await agentManifest(t, 'dc-gz', migrationId)).chunks.flatMap((c, i) =>
        isZeroChunk(c.sha256, c.length) ? [String(i)] : [],
      ),
    );
    const killTimes: number[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const agent = start('dc-osa');
      await killAt(
        agent,
        kill,
        async () => (await journalLines('dc-osa', 'download')).filter((i) => !zero.has(i)).length,
      );
      killTimes.push(Date.now());
      const now = await getOne(t.admin, migrationId);
      expect(now.legs.find((l) => l.dataCenterId === 'dc-osa')?.status).toBe('DOWNLOADING');
      const journaled = (await journalLines('dc-osa', 'download')).filter((i) => !zero.has(i));
      expect(journaled.length).toBeLessThan(planned);
    }
    const last = start('dc-osa');
    const lastStart = Date.now();
    const done = await waitForMigration(t.admin, migrationId, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    const line = await last.waitForLine(/download complete \((\d+) chunks fetched by this run/);
    const fetchedByLastRun = Number(/\((\d+) chunks/.exec(line)?.[1]);

    const gets = proxy.records.filter(get);
    const delivered = gets.filter((r) => r.completed);
    const refetchedPerKill = perKill(gets, killTimes);
    const deliveredTwice = [...countByKey(delivered).values()].filter((n) => n > 1).length;
    console.info(
      `agent-crash download: ${planned} chunks, ${gets.length} GETs (${delivered.length} delivered) over ${KILLS} kills; ` +
        `re-fetched per kill [${refetchedPerKill.join(', ')}], delivered twice ${deliveredTwice}; last run fetched ${fetchedByLastRun}`,
    );
    expect(countByKey(delivered).size).toBe(planned);
    expect(refetchedPerKill).toHaveLength(KILLS);
    for (const n of refetchedPerKill) expect(n).toBeLessThanOrEqual(CONCURRENCY);
    expect(fetchedByLastRun).toBe(delivered.filter((r) => r.at >= lastStart).length);

    const src = join(t.cloud.dataCenterDir('dc-gz'), 'images', image);
    const dst = join(t.cloud.dataCenterDir('dc-osa'), 'images', image);
    expect(await sha256File(dst)).toBe(await sha256File(src));
  }, 300_000);
});
