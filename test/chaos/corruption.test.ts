// A bit flipped in a stored chunk (fauxqs keeps each object's bytes in a file; its recorded checksum, which a HEAD
// reports, stays as it was). Chunks are stored in packs (protocol/pack.ts): the bit is flipped inside the chunk's
// range of its pack. The destination agent detects it at download and asks for a repair: the API reads the chunk at
// the cache node, deletes the bad pack and copies an intact one from another cache node. With no intact copy
// anywhere the destination fails with the cause, the bad bytes never reach the image, and a retry uploads the chunk
// again.
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { retryMigration } from '../../protocol/api/migrations.ts';
import { base64Sha256 } from '../../protocol/chunk-key.ts';
import { isZeroChunk, type Manifest } from '../../protocol/manifest.ts';
import type { PackEntry } from '../../protocol/pack.ts';
import { type AgentProcess, startAgentProcess } from '../support/agent-process.ts';
import {
  agentManifest,
  bucketOf,
  directS3,
  findStoredChunk,
  packEntries,
  packHolding,
  sha256File,
} from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../support/migrations.ts';

/**
 * Flips one bit in the middle of a chunk's stored bytes in its pack file, in place (same length, same recorded
 * checksum): only that chunk of the pack is damaged.
 */
async function flipBit(path: string, entry: PackEntry): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const at = entry.offset + Math.floor(entry.stored / 2);
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, at);
    byte[0] = (byte[0] as number) ^ 0x10;
    await file.write(byte, 0, 1, at);
  } finally {
    await file.close();
  }
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** The digest in an agent's line about a chunk: `chunk <index> (offset <n>, sha256 <digest>) …`. */
const digestIn = (line: string) => /chunk \d+ \(offset \d+, sha256 ([0-9a-f]{64})\)/.exec(line)?.[1];

describe('a corrupted chunk in a cache node', () => {
  let t: TestCloud;
  const agents: AgentProcess[] = [];
  const start = (dc: string) => {
    const a = startAgentProcess(t, dc);
    agents.push(a);
    return a;
  };
  const indexedAt = async (node: string, sha256: string) =>
    (await t.cloud.root.deps.contentIndex.locate(node, [sha256])).get(sha256);

  beforeAll(async () => {
    t = await startTestCloud({ agents: false });
    for (const image of ['flip-01.raw', 'flip-02.raw', 'flip-03.raw']) {
      await writeRawImage(
        join(t.cloud.dataCenterDir('dc-gz'), 'images', image),
        vmLikeSpec(64 << 20, 32 << 20, `chaos-corruption-${image}`),
      );
    }
    start('dc-gz');
  });
  afterAll(async () => {
    for (const a of agents) await a.kill();
    await t?.dispose();
  });

  /** Runs a migration to dc-osa up to its download (no destination agent yet) and picks a chunk of data in it. */
  async function readyToDownload(image: string): Promise<{ id: string; manifest: Manifest; victim: number }> {
    const m = await startMigration(t.admin, { imageId: image, from: 'dc-gz', to: ['dc-osa'] });
    await waitForMigration(t.admin, m.id, (x) => x.status === 'DOWNLOADING', 180_000);
    const manifest = await agentManifest(t, 'dc-gz', m.id);
    const data = manifest.chunks.flatMap((c, i) => (isZeroChunk(c.sha256, c.length) ? [] : [i]));
    return { id: m.id, manifest, victim: data[Math.floor(data.length / 2)] as number };
  }

  it('is detected at download and copied again from another cache node', async () => {
    const { id, manifest, victim } = await readyToDownload('flip-01.raw');
    const chunk = manifest.chunks[victim] as Manifest['chunks'][number];
    // The chunk is in one pack at nrt, where the content index places it.
    const stored = await packHolding(t, 'nrt', chunk.sha256);
    expect(await indexedAt('nrt', chunk.sha256)).toMatchObject({
      pack: stored.pack,
      offset: stored.entry.offset,
      stored: stored.entry.stored,
    });
    await flipBit(stored.file, stored.entry);
    // What a HEAD sees is the checksum recorded at upload: the flipped bit is invisible to it.
    const head = await directS3(t).send(
      new HeadObjectCommand({ Bucket: bucketOf('nrt'), Key: stored.key, ChecksumMode: 'ENABLED' }),
    );
    expect(head.ChecksumSHA256).toBe(base64Sha256(stored.pack));
    expect(await sha256File(stored.file)).not.toBe(stored.pack);

    const destination = start('dc-osa');
    const done = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(await sha256File(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-01.raw'))).toBe(
      await sha256File(join(t.cloud.dataCenterDir('dc-gz'), 'images', 'flip-01.raw')),
    );
    // The damaged chunk, and only it, was found out: its neighbours in the pack decoded and verified.
    await destination.waitForLine(new RegExp(`chunk ${victim} .* failed verification .*asking for a repair`));
    const repairs = destination.lines.filter((l) => /asking for a repair/.test(l));
    expect(repairs.map(digestIn)).toEqual([chunk.sha256]);
    console.info(
      `corruption: ${await destination.waitForLine(new RegExp(`chunk ${victim} .* copied again from cache node hkg`))}`,
    );
    expect(done.history?.map((h) => h.event)).toContain('chunk-repaired');
    // The cache node holds an intact copy of the pack again: its bytes hash to its name.
    const again = await packHolding(t, 'nrt', chunk.sha256);
    expect(again.pack).toBe(stored.pack);
    expect(await sha256File(again.file)).toBe(again.pack);
    await destination.kill();
  });

  it("deleted behind the system's back: the edge's 403 to a valid URL is a missing chunk, copied again", async () => {
    const { id, manifest, victim } = await readyToDownload('flip-03.raw');
    const chunk = manifest.chunks[victim] as Manifest['chunks'][number];
    // The whole pack holding the chunk goes (an object is what an operator or a lifecycle rule deletes).
    const stored = await packHolding(t, 'nrt', chunk.sha256);
    const inPack = new Set(((await packEntries(t, 'nrt', stored.pack)) ?? []).map((e) => e.sha256));
    expect(inPack.has(chunk.sha256)).toBe(true);
    await directS3(t).send(new DeleteObjectCommand({ Bucket: bucketOf('nrt'), Key: stored.key }));
    expect(await exists(stored.file)).toBe(false);
    const destination = start('dc-osa');
    const done = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(await sha256File(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-03.raw'))).toBe(
      await sha256File(join(t.cloud.dataCenterDir('dc-gz'), 'images', 'flip-03.raw')),
    );
    // As on AWS, the edge cannot tell the agent "missing" (its origin access does not list the bucket): a 403 to a
    // URL that has not expired is read as such, not re-signed without end. The agent fetches neighbours in a pack
    // with one range GET, so the chunk it names is the first of a refused range of that pack (not necessarily the
    // victim); the repair copies the whole pack back, which brings the victim back with it.
    const missing = await destination.waitForLine(/is not at the cache node; asking for a repair/);
    const copied = await destination.waitForLine(/copied again from cache node hkg/);
    console.info(`deleted: ${missing}\ndeleted: ${copied}`);
    expect(inPack.has(digestIn(missing) ?? '')).toBe(true);
    expect(inPack.has(digestIn(copied) ?? '')).toBe(true);
    // Every repair the agent asked for was of a chunk of the deleted pack; nothing else was touched.
    const repairs = destination.lines.filter((l) => /asking for a repair/.test(l)).map(digestIn);
    for (const d of repairs) expect(inPack.has(d ?? '')).toBe(true);
    expect(done.history?.map((h) => h.event)).toContain('chunk-repaired');
    // The same pack is back at nrt, intact.
    const back = await packHolding(t, 'nrt', chunk.sha256);
    expect(back.pack).toBe(stored.pack);
    expect(await sha256File(back.file)).toBe(back.pack);
    await destination.kill();
  });

  it('with no intact copy anywhere, fails the destination with the cause; a retry uploads the chunk again', async () => {
    const { id, manifest, victim } = await readyToDownload('flip-02.raw');
    const chunk = manifest.chunks[victim] as Manifest['chunks'][number];
    // Copies between cache nodes move whole packs: both nodes hold the chunk in the same pack.
    const bad = {
      hkg: await packHolding(t, 'hkg', chunk.sha256),
      nrt: await packHolding(t, 'nrt', chunk.sha256),
    };
    expect(bad.nrt.pack).toBe(bad.hkg.pack);
    const packChunks = ((await packEntries(t, 'hkg', bad.hkg.pack)) ?? []).length;
    expect(packChunks).toBeGreaterThan(1);
    for (const node of ['hkg', 'nrt'] as const) await flipBit(bad[node].file, bad[node].entry);

    const destination = start('dc-osa');
    const failed = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(failed.status).toBe('FAILED');
    console.info(`corruption: ${id} failed with: ${failed.error?.message}`);
    expect(failed.error?.message).toContain(chunk.sha256);
    expect(failed.error?.message).toMatch(/no cache node holds an intact copy/);
    // The bad packs are gone from both cache nodes, and the index no longer places the chunk at either.
    for (const node of ['hkg', 'nrt'] as const) {
      expect(await exists(bad[node].file)).toBe(false);
      expect(await findStoredChunk(t, node, chunk.sha256)).toEqual([]);
      expect(await indexedAt(node, chunk.sha256)).toBeUndefined();
    }
    // The corrupted bytes never reached the image: its place in the partial file is still a hole.
    const part = join(t.cloud.dataCenterDir('dc-osa'), '.vmmig', 'incoming', `${id}.part`);
    const written = (await readFile(part)).subarray(chunk.offset, chunk.offset + chunk.length);
    expect(written.every((b) => b === 0)).toBe(true);
    expect(await exists(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-02.raw'))).toBe(false);

    // Retry: the chunk is held nowhere now, so the source uploads it again; the download resumes and completes.
    await t.admin.call(retryMigration, { params: { migrationId: id } });
    const done = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    // The bad pack was deleted whole at both nodes, so its other chunks (intact, still indexed there until someone
    // looks) are lost with it and go up again too: the victim at least, at most every chunk of that pack.
    console.info(
      `corruption: the retry uploaded ${done.upload.chunksTotal} chunks (the pack held ${packChunks})`,
    );
    expect(done.upload.chunksTotal).toBeGreaterThanOrEqual(1);
    expect(done.upload.chunksTotal).toBeLessThanOrEqual(packChunks);
    expect(await sha256File(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-02.raw'))).toBe(
      await sha256File(join(t.cloud.dataCenterDir('dc-gz'), 'images', 'flip-02.raw')),
    );
    expect((await getOne(t.admin, id)).history?.map((h) => h.event)).toContain('chunk-unrepairable');
    // The chunk is stored intact at the source node again (in a pack built anew: the same one, when every chunk of
    // the old pack went up again in the same order).
    const reuploaded = await packHolding(t, 'hkg', chunk.sha256);
    expect(await sha256File(reuploaded.file)).toBe(reuploaded.pack);
    await destination.kill();
  });
});
