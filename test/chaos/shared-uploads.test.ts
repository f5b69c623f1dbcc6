// Two migrations of clones (one base image, a few bytes of their own) uploading at once, from two data centers to
// the same cache node: the content index's upload claims make the second wait for the first's shared chunks, so
// each is stored once and both complete. When the claimer dies mid-upload (its agent killed, the migration then
// cancelled), the other takes the claims over and uploads what is still missing, reusing what was stored.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ImageSpec, vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { createEstimate, type Estimate } from '../../protocol/api/estimate.ts';
import { cancelMigration, type Migration } from '../../protocol/api/migrations.ts';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';
import { type AgentProcess, startAgentProcess } from '../support/agent-process.ts';
import {
  agentManifest,
  chunksStored,
  countByKey,
  journalEntries,
  sha256File,
  until,
} from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
/** A clone of `base` with 1 MiB of its own near the end (a hole in the base). */
const clone = (base: ImageSpec, seed: string): ImageSpec => ({
  size: base.size,
  extents: [...base.extents, { offset: base.size - 1 * MiB, length: MiB, seed }],
});

describe('shared uploads', () => {
  let t: TestCloud;
  const agents: AgentProcess[] = [];
  const start = (dc: string, args: string[] = []) => {
    const a = startAgentProcess(t, dc, args);
    agents.push(a);
    return a;
  };
  const image = (dc: string, name: string) => join(t.cloud.dataCenterDir(dc), 'images', name);
  /** dc-gz's agent: the first migration of each case (the claimer) uploads from there. */
  let gz: AgentProcess;
  const claimer = () => gz;
  const journal = (dc: string, migrationId: string) => journalEntries(t, dc, migrationId, 'upload');
  const sameAtOsaka = async (from: string, name: string) =>
    expect(await sha256File(join(t.cloud.dataCenterDir('dc-osa'), 'images', name))).toBe(
      await sha256File(image(from, name)),
    );

  beforeAll(async () => {
    // S3 goes through the proxy (no faults): it counts what was stored.
    t = await startTestCloud({ agents: false, s3Faults: { faultRate: 0 } });
    for (const [n, base] of [
      [1, vmLikeSpec(64 * MiB, 32 * MiB, 'chaos-shared-1')],
      [2, vmLikeSpec(64 * MiB, 32 * MiB, 'chaos-shared-2')],
    ] as const) {
      await writeRawImage(image('dc-gz', `a${n}.raw`), clone(base, `a${n}`));
      await writeRawImage(image('dc-sh', `b${n}.raw`), clone(base, `b${n}`));
    }
    gz = start('dc-gz', ['--concurrency', '2']);
    start('dc-sh');
    start('dc-osa');
  });
  afterAll(async () => {
    for (const a of agents) {
      a.child.kill('SIGCONT');
      await a.kill();
    }
    await t?.dispose();
  });

  it('both complete, and every shared chunk is uploaded once', async () => {
    const proxy = t.cloud.s3Proxy;
    if (!proxy) throw new Error('no fault proxy');
    const a = await startMigration(t.admin, { imageId: 'a1.raw', from: 'dc-gz', to: ['dc-osa'] });
    // dc-gz is held (SIGSTOP) once it has stored a pack, so dc-sh's migration starts while it is mid-upload.
    await until('a chunk uploaded', async () => (await journal('dc-gz', a.id)).length >= 1, 120_000, 10);
    claimer().child.kill('SIGSTOP');
    const b = await startMigration(t.admin, { imageId: 'b1.raw', from: 'dc-sh', to: ['dc-osa'] });
    const waiting = await waitForMigration(t.admin, b.id, (m) => m.upload.chunksShared > 0, 120_000);
    expect((await getOne(t.admin, a.id)).status).toBe('UPLOADING'); // really at the same time
    claimer().child.kill('SIGCONT');

    for (const m of [a, b]) {
      const done = await waitForMigration(t.admin, m.id, undefined, 240_000);
      expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    }
    await sameAtOsaka('dc-gz', 'a1.raw');
    await sameAtOsaka('dc-sh', 'b1.raw');
    // Chunks go up in packs: what each stored pack carried is read from its table of contents.
    const stored = countByKey(await chunksStored(t, 'hkg', proxy.records));
    const history = (await getOne(t.admin, b.id)).history ?? [];
    console.info(
      `shared-uploads: ${a.id} uploaded ${(await getOne(t.admin, a.id)).upload.chunksTotal} chunks; ${b.id} ` +
        `uploaded ${waiting.upload.chunksTotal} and awaited ${waiting.upload.chunksShared}; ` +
        `${stored.size} chunks stored, none twice: ${[...stored.values()].every((n) => n === 1)}`,
    );
    expect(history.find((h) => h.event === 'cache-checked')?.message).toMatch(
      new RegExp(`being uploaded by ${a.id}: awaited, not sent twice`),
    );
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
  }, 360_000);

  it('when the claimer is killed and cancelled mid-upload, the other takes over and completes', async () => {
    // Slow enough that some of its chunks are reported (indexed) while others are still to go.
    await gz.kill();
    gz = start('dc-gz', ['--concurrency', '2', '--limit-upload', '2M']);
    const a = await startMigration(t.admin, { imageId: 'a2.raw', from: 'dc-gz', to: ['dc-osa'] });
    await waitForMigration(t.admin, a.id, (m) => m.upload.chunksTotal > 0, 120_000);
    // The chunks both images have (the base), and how many of them dc-gz has stored and reported (indexed at hkg).
    const inB = new Set(
      (await collectChunks(chunkFile(image('dc-sh', 'b2.raw')))).chunks.map((c) => c.sha256),
    );
    const chunks = [
      ...new Map(
        (await agentManifest(t, 'dc-gz', a.id)).chunks
          .filter((c) => !isZeroChunk(c.sha256, c.length) && inB.has(c.sha256))
          .map((c) => [c.sha256, c.length]),
      ),
    ].map(([sha256, length]) => ({ sha256, length }));
    const cachedAtHkg = async () =>
      (
        await t.admin.call<Estimate>(createEstimate, {
          json: { sourceDataCenterId: 'dc-gz', destinationDataCenterId: 'dc-osa', chunks },
        })
      ).body.source?.cached.chunks ?? 0;
    await until('2 shared chunks indexed', async () => (await cachedAtHkg()) >= 2, 120_000, 200);
    // Held mid-upload while the second migration starts and finds the rest claimed.
    claimer().child.kill('SIGSTOP');
    const b = await startMigration(t.admin, { imageId: 'b2.raw', from: 'dc-sh', to: ['dc-osa'] });
    const waiting = await waitForMigration(t.admin, b.id, (m) => m.upload.chunksShared > 0, 120_000);
    const shared = waiting.upload.chunksShared;
    // The claimer dies mid-upload, and the operator cancels its migration.
    await claimer().kill('SIGKILL');
    const cachedAtKill = await cachedAtHkg();
    await t.admin.call<Migration>(cancelMigration, { params: { migrationId: a.id } });
    expect((await getOne(t.admin, a.id)).status).toBe('CANCELLED');
    expect(cachedAtKill).toBeLessThan(chunks.length); // really mid-upload

    const done = await waitForMigration(t.admin, b.id, undefined, 240_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    await sameAtOsaka('dc-sh', 'b2.raw');
    const events = done.history?.map((h) => h.event) ?? [];
    console.info(
      `shared-uploads: ${a.id} killed and cancelled with ${cachedAtKill} of ${chunks.length} chunks indexed; ${b.id} ` +
        `had awaited ${shared}, took over and uploaded ${done.upload.chunksTotal}`,
    );
    expect(events).toContain('shared-chunks-orphaned');
    // What the claimer stored and reported is reused, not sent again.
    expect(done.upload.chunksTotal).toBeLessThanOrEqual(chunks.length - cachedAtKill);
    expect(done.upload.chunksTotal).toBeGreaterThan(0);
  }, 360_000);
});
