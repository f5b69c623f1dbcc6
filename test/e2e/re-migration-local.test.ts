// Re-migration to a data center that already holds the image: the destination agent takes the chunks it has on
// disk (its local index of delivered images) and fetches only the others from the edge; chunks of a delivered
// image that was written to since (a VM running on it) fail verification and are fetched instead. The edge serves
// ranges of packs: neighbours in a pack come in one GET, so the GETs counted are the fetch units of exactly the
// chunks fetched (fetchUnitsFromIndex), and the bytes those units' ranges.

import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyRecord } from '../../local/s3/fault-proxy.ts';
import { seededBytes, vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { isZeroChunk, type Manifest } from '../../protocol/manifest.ts';
import {
  agentManifest,
  chunkRequest,
  fetchUnitsFromIndex,
  sha256File,
  unitBytes,
  unitIndices,
} from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const SIZE = 256 << 20;
const IMAGE = 'remig-01.raw';
const MiB = 1 << 20;

const nonZero = (m: Manifest) => m.chunks.filter((c) => !isZeroChunk(c.sha256, c.length));

/** Overwrites `regions` of a file in place with seeded bytes (the size stays). */
async function scribble(path: string, regions: readonly { offset: number; length: number }[], seed: string) {
  const file = await open(path, 'r+');
  try {
    for (const r of regions) await file.write(seededBytes(seed, r.offset, r.length), 0, r.length, r.offset);
  } finally {
    await file.close();
  }
}

describe('re-migration takes the chunks the destination already holds', { timeout: 240_000 }, () => {
  let t: TestCloud;
  const spec = vmLikeSpec(SIZE, 120 * MiB, 'remig', 12);
  const src = () => join(t.cloud.dataCenterDir('dc-gz'), 'images', IMAGE);
  const dst = () => join(t.cloud.dataCenterDir('dc-osa'), 'images', IMAGE);
  const edgeGet = chunkRequest('GET', 'nrt'); // dc-osa downloads through its nearest cache node, nrt

  /**
   * Runs one migration gz → osa; returns its manifest, the edge GETs its destination agent made (from the moment
   * it took the download: before, the workflow reads the tables of contents of the packs it copied to nrt) and the
   * agent's summary line.
   */
  async function migrate(overwrite = false) {
    const proxy = t.cloud.s3Proxy;
    if (!proxy) throw new Error('no fault proxy');
    const before = proxy.records.length;
    const m = await startMigration(t.admin, { imageId: IMAGE, from: 'dc-gz', to: ['dc-osa'], overwrite });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    const leg = done.legs.find((l) => l.dataCenterId === 'dc-osa');
    expect(leg?.status).toBe('COMPLETED');
    const log = (await readFile(join(t.dataDir, 'test.log'), 'utf8')).split('\n');
    const started = log.find((l) => l.includes(`${m.id}: download ${IMAGE} (destination)`)) ?? '';
    const from = Date.parse(started.slice(0, 24));
    expect(from, started).not.toBeNaN();
    const gets = proxy.records.slice(before).filter((r: ProxyRecord) => edgeGet(r) && r.at >= from);
    const line = log.find((l) => l.includes(`${m.id}: download complete`)) ?? '';
    const summary =
      /\((\d+) chunks fetched by this run in (\d+) bytes, (\d+) taken from local images(?:, (\d+) local copies failed verification)?\)/.exec(
        line,
      );
    expect(summary, line).not.toBeNull();
    return {
      migration: done,
      manifest: await agentManifest(t, 'dc-gz', m.id),
      gets: gets.length,
      fetched: Number(summary?.[1]),
      wireBytes: Number(summary?.[2]),
      taken: Number(summary?.[3]),
      mismatched: Number(summary?.[4] ?? 0),
    };
  }

  /** The GETs and bytes a download of these chunks (manifest indices) makes through nrt, as the agent groups them. */
  async function fetches(manifest: Manifest, indices: Iterable<number>) {
    const units = await fetchUnitsFromIndex(t, 'nrt', manifest, indices);
    return {
      gets: units.length,
      chunks: units.flatMap(unitIndices).length,
      bytes: units.reduce((n, u) => n + unitBytes(u), 0),
    };
  }

  beforeAll(async () => {
    // A proxy that never fails, only to count the edge's reads from the cache node.
    t = await startTestCloud({ agents: true, s3Faults: { faultRate: 0 } });
    await writeRawImage(src(), spec);
  });
  afterAll(() => t?.dispose());

  it('after ~1 % of the image changed, only the changed chunks come from the edge; the result is identical', async () => {
    const first = await migrate();
    const planned1 = nonZero(first.manifest).length;
    // Nothing to take yet: every non-zero chunk fetched, neighbours in a pack together.
    const all1 = await fetches(
      first.manifest,
      first.manifest.chunks.map((_, i) => i),
    );
    expect(all1.chunks).toBe(planned1);
    expect(first.fetched).toBe(planned1);
    expect(first.gets).toBe(all1.gets);
    expect(first.gets).toBeLessThan(planned1);
    expect(first.wireBytes).toBe(all1.bytes);
    expect(first.taken).toBe(0);
    expect(await sha256File(dst())).toBe(await sha256File(src()));

    // ~1 % of the image (2.5 MiB of 256) rewritten in three places inside the data extents.
    const regions = [0, 5, 10].map((i) => {
      const e = spec.extents[i] as { offset: number; length: number };
      return {
        offset: e.offset + Math.floor(e.length / 3 / 4096) * 4096,
        length: i === 5 ? MiB : 0.75 * MiB,
      };
    });
    await scribble(src(), regions, 'changed');

    const second = await migrate();
    const oldDigests = new Set(first.manifest.chunks.map((c) => c.sha256));
    const changed = nonZero(second.manifest).filter((c) => !oldDigests.has(c.sha256));
    const planned2 = nonZero(second.manifest).length;
    const changedFetches = await fetches(
      second.manifest,
      second.manifest.chunks.flatMap((c, i) => (oldDigests.has(c.sha256) ? [] : [i])),
    );
    console.info(
      `re-migration: ${planned2} non-zero chunks (all fetched from the edge before this feature), ` +
        `${changed.length} changed; edge GETs ${second.gets} (${second.wireBytes} bytes), taken locally ${second.taken}`,
    );
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.length).toBeLessThan(planned2 / 5);
    expect(changedFetches.chunks).toBe(changed.length);
    expect(second.gets).toBe(changedFetches.gets);
    expect(second.wireBytes).toBe(changedFetches.bytes);
    expect(second.fetched).toBe(changed.length);
    expect(second.taken).toBe(planned2 - changed.length);
    expect(second.mismatched).toBe(0);
    // The leg tells what came over the network from what the destination already held.
    const leg = second.migration.legs.find((l) => l.dataCenterId === 'dc-osa');
    expect(leg?.status).toBe('COMPLETED');
    const changedBytes = changed.reduce((n, c) => n + c.length, 0);
    const nonZeroBytes = nonZero(second.manifest).reduce((n, c) => n + c.length, 0);
    expect(leg?.bytesDownloaded).toBe(changedBytes);
    expect(leg?.wireBytesDownloaded).toBe(second.wireBytes);
    expect(leg?.bytesReusedAtDestination).toBe(nonZeroBytes - changedBytes);
    expect(leg?.replaced).toBe(true); // the image delivered before, unchanged since
    expect(await sha256File(dst())).toBe(await sha256File(src()));
  }, 180_000);

  it('a delivered image written to since (a VM running on it): its changed chunks fail verification and are fetched', async () => {
    const before = await sha256File(src());
    // A "VM" writes into the delivered image at the destination: same size, new mtime.
    const regions = [2, 7].map((i) => {
      const e = spec.extents[i] as { offset: number; length: number };
      return { offset: e.offset + Math.floor(e.length / 2 / 4096) * 4096, length: 256 * 1024 };
    });
    await scribble(dst(), regions, 'vm-writes');
    const written = await sha256File(dst());
    expect(written).not.toBe(before);

    // Changed since it was delivered: never replaced without overwrite.
    const refused = await waitForMigration(
      t.admin,
      (await startMigration(t.admin, { imageId: IMAGE, from: 'dc-gz', to: ['dc-osa'] })).id,
    );
    expect(refused.status).toBe('FAILED');
    expect(refused.legs[0]?.error).toMatch(/changed since vmmig delivered it.*--overwrite/);
    expect(await sha256File(dst())).toBe(written);

    const again = await migrate(true);
    expect(again.migration.legs[0]?.replaced).toBe(true);
    const chunks = nonZero(again.manifest);
    const hit = chunks.filter((c) =>
      regions.some((r) => c.offset < r.offset + r.length && r.offset < c.offset + c.length),
    );
    const hitSet = new Set(hit);
    const hitFetches = await fetches(
      again.manifest,
      again.manifest.chunks.flatMap((c, i) => (hitSet.has(c) ? [i] : [])),
    );
    console.info(
      `re-migration over a modified image: ${chunks.length} non-zero chunks, ${hit.length} overwritten at the ` +
        `destination; edge GETs ${again.gets} (${again.wireBytes} bytes), taken locally ${again.taken}, failed local ` +
        `verification ${again.mismatched}`,
    );
    expect(hit.length).toBeGreaterThan(0);
    expect(again.mismatched).toBe(hit.length);
    expect(hitFetches.chunks).toBe(hit.length);
    expect(again.gets).toBe(hitFetches.gets);
    expect(again.wireBytes).toBe(hitFetches.bytes);
    expect(again.fetched).toBe(hit.length);
    expect(again.taken).toBe(chunks.length - hit.length);
    expect(await sha256File(dst())).toBe(before);
  }, 180_000);
});
