// The source agent is killed (kill -9) in the middle of its upload and started again: the migration completes
// byte-identical, and the new run sends only the chunks that were not stored (plus at most the packs in flight:
// stored, not yet verified). Chunks go up in packs; what the server verified is what it indexed at the source node.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PACKS_IN_FLIGHT } from '../../cli/agent/pack-upload.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { type AgentProcess, startAgentProcess } from '../support/agent-process.ts';
import { storedPacks } from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const CONCURRENCY = 4;
/** Packs a source agent has between PUT and verification at most. */
const PACK_SLOTS = Math.min(MAX_PACKS_IN_FLIGHT, CONCURRENCY);

const lineCount = async (path: string) =>
  (await readFile(path, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('agent crash during upload', { timeout: 180_000 }, () => {
  let t: TestCloud;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    t = await startTestCloud({ agents: false });
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-gz'), 'images', 'app-01.raw'),
      vmLikeSpec(512 << 20, 240 << 20, 'crash'),
    );
    agents.push(startAgentProcess(t, 'dc-osa'));
  });
  afterAll(async () => {
    for (const a of agents) await a.kill();
    await t?.dispose();
  });

  it('completes after kill -9 and re-sends only chunks that were not stored', async () => {
    const source = startAgentProcess(t, 'dc-gz', ['--concurrency', String(CONCURRENCY)]);
    agents.push(source);
    const m = await startMigration(t.admin, { imageId: 'app-01.raw', from: 'dc-gz', to: ['dc-osa'] });
    const journal = join(t.cloud.dataCenterDir('dc-gz'), '.vmmig', 'journal', `${m.id}.upload`);
    while ((await lineCount(journal)) < 10) await new Promise((r) => setTimeout(r, 5));
    await source.kill('SIGKILL');

    const journaled = await lineCount(journal);
    // What the server had verified and indexed once the reports under way at the kill were through (the index is
    // unchanged for 300 ms), and what the bucket holds: packs stored but not verified are sent again.
    const index = t.cloud.root.deps.contentIndex;
    let indexedAtKill = -1;
    for (let last = -2; indexedAtKill !== last; ) {
      last = indexedAtKill;
      await new Promise((r) => setTimeout(r, 300));
      indexedAtKill = (await index.usage('hkg')).chunksHeld;
    }
    const packs = await storedPacks(t, 'hkg');
    const storedAtKill = new Set([...packs.values()].flat().map((e) => e.sha256)).size;
    const unverified: number[] = [];
    for (const entries of packs.values()) {
      const held = await index.locate(
        'hkg',
        entries.map((e) => e.sha256),
      );
      if (entries.some((e) => !held.has(e.sha256))) unverified.push(entries.length);
    }
    const planned = (await waitForMigration(t.admin, m.id, (x) => x.upload.chunksTotal > 0)).upload
      .chunksTotal;
    expect(storedAtKill).toBeLessThan(planned); // really killed mid-upload

    const again = startAgentProcess(t, 'dc-gz', ['--concurrency', String(CONCURRENCY)]);
    agents.push(again);
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    const line = await again.waitForLine(/upload complete \(this run sent (\d+) chunks in (\d+) packs/);
    const sentAfterRestart = Number(/this run sent (\d+) chunks/.exec(line)?.[1]);

    // Everything not verified at the kill is sent once: what was not stored at all, and the chunks of the packs
    // stored but not yet verified (in flight when the process died: at most PACK_SLOTS packs).
    const resent = sentAfterRestart - (planned - storedAtKill);
    console.info(
      `crash figures: planned ${planned}, journaled ${journaled}, indexed at kill ${indexedAtKill}, stored at kill ` +
        `${storedAtKill} in ${packs.size} packs (${unverified.length} not verified, of [${unverified.join(', ')}] chunks), ` +
        `sent after restart ${sentAfterRestart}, re-sent ${resent}`,
    );
    expect(journaled).toBeLessThanOrEqual(indexedAtKill);
    expect(unverified.length).toBeLessThanOrEqual(PACK_SLOTS);
    expect(sentAfterRestart).toBe(planned - indexedAtKill);
    expect(resent).toBeGreaterThanOrEqual(0);
    expect(resent).toBeLessThanOrEqual(unverified.reduce((a, b) => a + b, 0));

    const src = join(t.cloud.dataCenterDir('dc-gz'), 'images', 'app-01.raw');
    const dst = join(t.cloud.dataCenterDir('dc-osa'), 'images', 'app-01.raw');
    expect(await sha(dst)).toBe(await sha(src));
  });
});
