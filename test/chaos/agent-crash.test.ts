// Agents killed with kill -9 at random points: the source agent 10 times during its upload, then the destination
// agent 10 times during its download, each restarted at once. The migration completes byte-identical, and each kill
// costs at most what was in flight when it landed: the source's packs between their PUT and their verification
// (MAX_PACKS_IN_FLIGHT, and no more than its concurrency), the destination's range GETs (one per parallel stream).
// The source's progress is what the server has verified and indexed: a pack reported just before a kill is indexed
// all the same, and the next run skips its chunks without journaling them.
// Every S3 request goes through the fault proxy (injecting nothing here), which records what was really stored and
// read. A stored pack carries many chunks: which ones is read from its table of contents; a GET carries a run of
// neighbouring chunks of a pack, grouped as the agent groups them (planFetches) from the plan and its journal.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PACKS_IN_FLIGHT } from '../../cli/agent/pack-upload.ts';
import { prng } from '../../local/s3/fault-proxy.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';
import { type AgentProcess, startAgentProcess } from '../support/agent-process.ts';
import {
  agentManifest,
  chunkRequest,
  chunksStored,
  countByKey,
  downloadPlanPages,
  fetchUnits,
  isPackRequest,
  journalEntries,
  sha256File,
  unitIndices,
  until,
} from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../support/migrations.ts';

/** The destination's parallel streams. */
const CONCURRENCY = 4;
/**
 * The source's: with packs of ~8 MiB, a kill costs up to PACK_SLOTS packs of progress (those reported just before
 * it are verified after it), so fewer slots leave room for ten kills in a test-sized image.
 */
const UPLOAD_CONCURRENCY = 2;
/** Packs a source agent has between PUT and verification at most. */
const PACK_SLOTS = Math.min(MAX_PACKS_IN_FLIGHT, UPLOAD_CONCURRENCY);
const KILLS = 10;
const SEED = Number(process.env['VMMIG_CHAOS_SEED'] ?? 20_26);

interface Repeat<R> {
  readonly previous: R;
  readonly again: R;
}

/**
 * Each repeated key (a chunk stored again) is charged to the kill between it and the key's previous record: the
 * repeats per kill. A repeat no kill explains shows up as an extra entry (and fails the length check).
 */
function perKill<R extends { readonly key: string; readonly at: number }>(
  records: readonly R[],
  killTimes: readonly number[],
): Repeat<R>[][] {
  const last = new Map<string, R>();
  const charged = killTimes.map((): Repeat<R>[] => []);
  for (const r of records) {
    const previous = last.get(r.key);
    last.set(r.key, r);
    if (previous === undefined) continue;
    const k = killTimes.findIndex((at) => at >= previous.at && at <= r.at);
    if (k >= 0) charged[k]?.push({ previous, again: r });
    else {
      charged.push([{ previous, again: r }]);
      console.warn(
        `unexplained repeat of ${r.key} (at ${previous.at}, ${r.at}), kills at ${killTimes.join(', ')}`,
      );
    }
  }
  return charged;
}

/** The run a request belongs to: the last one started before it. */
const runOf = (starts: readonly number[], at: number) => starts.findLastIndex((s) => s <= at);

describe('agents killed with kill -9', () => {
  let t: TestCloud;
  const agents: AgentProcess[] = [];
  const random = prng(SEED);
  const image = 'crash-01.raw';
  let migrationId = '';
  let planned = 0;

  /**
   * Kill k lands at a random point of the k-th of KILLS+2 equal stretches of the transfer (counted in chunks done:
   * indexed at the source node, journaled at the destination), and not before `floor`, so kills spread over the
   * transfer, leave more than what is in flight for the last run, and hit chunks in every state: in flight, stored
   * but not yet verified, verified but not yet journaled, journaled.
   */
  const killAt = async (agent: AgentProcess, kill: number, done: () => Promise<number>, floor = 1) => {
    const target = Math.max(floor, Math.floor(((kill + random()) * planned) / (KILLS + 2)));
    try {
      await until(`${target} chunks done`, async () => (await done()) >= target, 180_000, 20);
    } catch (err) {
      throw new Error(
        `kill ${kill}: ${(err as Error).message}; the agent said:\n${agent.lines.slice(-30).join('\n')}`,
      );
    }
    await agent.kill('SIGKILL');
  };
  const journalLines = (dc: string, kind: 'upload' | 'download') => journalEntries(t, dc, migrationId, kind);

  /** Chunks indexed at the source node (the cloud is this test's alone). */
  const indexed = async () => (await t.cloud.root.deps.contentIndex.usage('hkg')).chunksHeld;
  /** The index once reports that reached the server before a kill are through (unchanged for 300 ms). */
  const settledIndex = async () => {
    for (let last = -1; ; ) {
      const now = await indexed();
      if (now === last) return now;
      last = now;
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  const start = (dc: string, concurrency = CONCURRENCY) => {
    const a = startAgentProcess(t, dc, ['--concurrency', String(concurrency)]);
    agents.push(a);
    return a;
  };

  beforeAll(async () => {
    t = await startTestCloud({ agents: false, s3Faults: { faultRate: 0 } });
    // About 750 chunks of data (256 KiB on average) between holes: two dozen packs of ~8 MiB.
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-gz'), 'images', image),
      vmLikeSpec(384 << 20, 192 << 20, 'chaos-crash'),
    );
  });
  afterAll(async () => {
    for (const a of agents) await a.kill();
    await t?.dispose();
  });

  it(`source agent: ${KILLS} kills during the upload, each re-sends at most the ${PACK_SLOTS} packs in flight`, async () => {
    const proxy = t.cloud.s3Proxy;
    if (!proxy) throw new Error('no fault proxy');
    const put = chunkRequest('PUT', 'hkg');
    const m = await startMigration(t.admin, { imageId: image, from: 'dc-gz', to: ['dc-osa'] });
    migrationId = m.id;
    const runStarts: number[] = [];
    const killTimes: number[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const before = await settledIndex();
      runStarts.push(Date.now());
      const agent = start('dc-gz', UPLOAD_CONCURRENCY);
      // The first run chunks the image and sends the manifest; the plan says how many chunks go up.
      planned ||= (await waitForMigration(t.admin, m.id, (x) => x.upload.chunksTotal > 0)).upload.chunksTotal;
      // Not before this run has had a pack verified: every run makes progress.
      await killAt(agent, kill, indexed, before + 1);
      killTimes.push(Date.now());
      // Really mid-upload: the workflow still waits for it, and chunks are left to send.
      expect(await settledIndex()).toBeLessThan(planned);
      expect((await getOne(t.admin, m.id)).status).toBe('UPLOADING');
    }
    const lastStart = Date.now();
    runStarts.push(lastStart);
    const last = start('dc-gz', UPLOAD_CONCURRENCY);
    await waitForMigration(t.admin, m.id, (x) => x.status !== 'UPLOADING' || x.upload.chunksDone === planned);
    const line = await last.waitForLine(
      /upload complete \(this run sent (\d+) chunks in (\d+) packs/,
      180_000,
    );
    const [, sentChunks, sentPacks] = (/this run sent (\d+) chunks in (\d+) packs/.exec(line) ?? []).map(
      Number,
    );

    const puts = proxy.records.filter(put);
    // Everything goes up in packs: no chunk is stored alone any more.
    expect(puts.filter((r) => !isPackRequest(r))).toEqual([]);
    const stored = await chunksStored(t, 'hkg', puts);
    const storedKeys = countByKey(stored);
    const repeats = perKill(stored, killTimes);
    // What each kill cost: PUTs it cut off, and packs stored before it whose chunks went up again after it (stored,
    // not yet verified and journaled). Together they are the packs in flight when it landed.
    const cutOff = killTimes.map(
      (_, k) => puts.filter((r) => r.status !== 200 && runOf(runStarts, r.at) === k).length,
    );
    const packsAgain = repeats.map((pairs) => new Set(pairs.map((p) => p.previous.pack)).size);
    const chunksAgain = repeats.map((pairs) => pairs.length);
    console.info(
      `agent-crash upload: planned ${planned} chunks, ${puts.length} pack PUTs (${puts.filter((r) => r.status === 200).length} ` +
        `stored) over ${KILLS} kills; per kill: PUTs cut off [${cutOff.join(', ')}], packs sent again ` +
        `[${packsAgain.join(', ')}] (chunks [${chunksAgain.join(', ')}]); last run sent ${sentChunks} chunks in ${sentPacks} packs`,
    );
    expect(storedKeys.size).toBe(planned);
    expect(repeats).toHaveLength(KILLS);
    for (let k = 0; k < KILLS; k++)
      expect((cutOff[k] ?? 0) + (packsAgain[k] ?? 0), `kill ${k}`).toBeLessThanOrEqual(PACK_SLOTS);
    // The agent's own count for its run agrees with what storage saw.
    const lastRun = stored.filter((c) => c.at >= lastStart);
    expect(sentPacks).toBe(new Set(lastRun.map((c) => c.pack)).size);
    expect(sentChunks).toBe(lastRun.length);
  }, 300_000);

  it(`destination agent: ${KILLS} kills during the download, each re-fetches at most the ${CONCURRENCY} ranges in flight`, async () => {
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
    const pages = await downloadPlanPages(t, migrationId, 'dc-osa');
    const dataChunks = pages.flat().filter((c) => !c.zero).length;
    /** The chunks of data the destination's journal lists as written. */
    const written = async () =>
      new Set((await journalLines('dc-osa', 'download')).filter((i) => !zero.has(i)).map(Number));
    const runStarts: number[] = [];
    const killTimes: number[] = [];
    /** What the journal held when each run started. */
    const doneAtStart: Set<number>[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      doneAtStart.push(await written());
      runStarts.push(Date.now());
      const agent = start('dc-osa');
      await killAt(agent, kill, async () => (await written()).size);
      killTimes.push(Date.now());
      const now = await getOne(t.admin, migrationId);
      expect(now.legs.find((l) => l.dataCenterId === 'dc-osa')?.status).toBe('DOWNLOADING');
      expect((await written()).size).toBeLessThan(dataChunks);
    }
    doneAtStart.push(await written());
    const lastStart = Date.now();
    runStarts.push(lastStart);
    const last = start('dc-osa');
    const done = await waitForMigration(t.admin, migrationId, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    const line = await last.waitForLine(/download complete \((\d+) chunks fetched by this run/);
    const fetchedByLastRun = Number(/\((\d+) chunks/.exec(line)?.[1]);

    // Each GET is one fetch unit (a run of neighbours in a pack). A run's units are what its journal left at its
    // start, grouped as the agent groups them; a unit is complete once all its chunks are journaled. GETs beyond the
    // complete units are those the kill cut short (or whose chunks it kept from the journal): fetched again.
    const gets = proxy.records.filter(get);
    expect(gets.filter((r) => !isPackRequest(r))).toEqual([]);
    const refetched: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const units = fetchUnits(pages, doneAtStart[k] ?? new Set());
      const journaled = doneAtStart[k + 1] ?? new Set<number>();
      const complete = units.filter((u) => unitIndices(u).every((i) => journaled.has(i))).length;
      refetched.push(gets.filter((r) => runOf(runStarts, r.at) === k).length - complete);
    }
    const lastUnits = fetchUnits(pages, doneAtStart[KILLS] ?? new Set());
    const lastGets = gets.filter((r) => r.at >= lastStart);
    console.info(
      `agent-crash download: ${dataChunks} chunks of data, ${fetchUnits(pages, new Set()).length} GETs without kills, ` +
        `${gets.length} GETs over ${KILLS} kills; re-fetched per kill [${refetched.join(', ')}]; last run fetched ` +
        `${fetchedByLastRun} chunks in ${lastGets.length} GETs`,
    );
    for (const [k, n] of refetched.entries()) {
      expect(n, `kill ${k}`).toBeGreaterThanOrEqual(0);
      expect(n, `kill ${k}`).toBeLessThanOrEqual(CONCURRENCY);
    }
    // The last run fetched exactly what was left, one GET per unit, and its own count agrees.
    expect(lastGets.length).toBe(lastUnits.length);
    expect(fetchedByLastRun).toBe(lastUnits.flatMap(unitIndices).length);

    const src = join(t.cloud.dataCenterDir('dc-gz'), 'images', image);
    const dst = join(t.cloud.dataCenterDir('dc-osa'), 'images', image);
    expect(await sha256File(dst)).toBe(await sha256File(src));
  }, 300_000);
});
