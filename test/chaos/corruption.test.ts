// A bit flipped in a stored chunk (fauxqs keeps each object's bytes in a file; its recorded checksum, which a HEAD
// reports, stays as it was). The destination agent detects it at download and asks for a repair: the API reads the
// chunk at the cache node, deletes the bad copy and copies an intact one from another cache node. With no intact
// copy anywhere the destination fails with the cause, the bad bytes never reach the image, and a retry uploads the
// chunk again.
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { retryMigration } from '../../protocol/api/migrations.ts';
import { base64Sha256, chunkKey } from '../../protocol/chunk-key.ts';
import { isZeroChunk, type Manifest } from '../../protocol/manifest.ts';
import { type AgentProcess, startAgentProcess } from '../support/agent-process.ts';
import { agentManifest, bucketOf, chunkFile, directS3, sha256File } from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../support/migrations.ts';

/** Flips one bit in the middle of a stored chunk, in place (same length, same recorded checksum). */
async function flipBit(path: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const { size } = await file.stat();
    const at = Math.floor(size / 2);
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

describe('a corrupted chunk in a cache node', () => {
  let t: TestCloud;
  const agents: AgentProcess[] = [];
  const start = (dc: string) => {
    const a = startAgentProcess(t, dc);
    agents.push(a);
    return a;
  };

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
    const path = chunkFile(t, 'nrt', chunk.sha256);
    await flipBit(path);
    // What a HEAD sees is the checksum recorded at upload: the flipped bit is invisible to it.
    const head = await directS3(t).send(
      new HeadObjectCommand({
        Bucket: bucketOf('nrt'),
        Key: chunkKey(chunk.sha256),
        ChecksumMode: 'ENABLED',
      }),
    );
    expect(head.ChecksumSHA256).toBe(base64Sha256(chunk.sha256));
    expect(await sha256File(path)).not.toBe(chunk.sha256);

    const destination = start('dc-osa');
    const done = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(await sha256File(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-01.raw'))).toBe(
      await sha256File(join(t.cloud.dataCenterDir('dc-gz'), 'images', 'flip-01.raw')),
    );
    await destination.waitForLine(new RegExp(`chunk ${victim} .* failed verification .*asking for a repair`));
    console.info(
      `corruption: ${await destination.waitForLine(new RegExp(`chunk ${victim} .* copied again from cache node hkg`))}`,
    );
    expect(done.history?.map((h) => h.event)).toContain('chunk-repaired');
    // The cache node holds an intact copy again.
    expect(await sha256File(path)).toBe(chunk.sha256);
    await destination.kill();
  });

  it("deleted behind the system's back: the edge's 403 to a valid URL is a missing chunk, copied again", async () => {
    const { id, manifest, victim } = await readyToDownload('flip-03.raw');
    const chunk = manifest.chunks[victim] as Manifest['chunks'][number];
    await directS3(t).send(new DeleteObjectCommand({ Bucket: bucketOf('nrt'), Key: chunkKey(chunk.sha256) }));
    const destination = start('dc-osa');
    const done = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(await sha256File(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-03.raw'))).toBe(
      await sha256File(join(t.cloud.dataCenterDir('dc-gz'), 'images', 'flip-03.raw')),
    );
    // As on AWS, the edge cannot tell the agent "missing" (its origin access does not list the bucket): a 403 to a
    // URL that has not expired is read as such, not re-signed without end.
    await destination.waitForLine(
      new RegExp(`chunk ${victim} .* is not at the cache node; asking for a repair`),
    );
    await destination.waitForLine(new RegExp(`chunk ${victim} .* copied again from cache node hkg`));
    expect(await exists(chunkFile(t, 'nrt', chunk.sha256))).toBe(true);
    await destination.kill();
  });

  it('with no intact copy anywhere, fails the destination with the cause; a retry uploads the chunk again', async () => {
    const { id, manifest, victim } = await readyToDownload('flip-02.raw');
    const chunk = manifest.chunks[victim] as Manifest['chunks'][number];
    for (const node of ['hkg', 'nrt']) await flipBit(chunkFile(t, node, chunk.sha256));

    const destination = start('dc-osa');
    const failed = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(failed.status).toBe('FAILED');
    console.info(`corruption: ${id} failed with: ${failed.error?.message}`);
    expect(failed.error?.message).toContain(chunk.sha256);
    expect(failed.error?.message).toMatch(/no cache node holds an intact copy/);
    // The bad copies are gone from both cache nodes (and from the content index: see the retry below).
    for (const node of ['hkg', 'nrt']) expect(await exists(chunkFile(t, node, chunk.sha256))).toBe(false);
    // The corrupted bytes never reached the image: its place in the partial file is still a hole.
    const part = join(t.cloud.dataCenterDir('dc-osa'), '.vmmig', 'incoming', `${id}.part`);
    const written = (await readFile(part)).subarray(chunk.offset, chunk.offset + chunk.length);
    expect(written.every((b) => b === 0)).toBe(true);
    expect(await exists(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-02.raw'))).toBe(false);

    // Retry: the chunk is held nowhere now, so the source uploads it again; the download resumes and completes.
    await t.admin.call(retryMigration, { params: { migrationId: id } });
    const done = await waitForMigration(t.admin, id, undefined, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.upload.chunksTotal).toBe(1);
    expect(await sha256File(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'flip-02.raw'))).toBe(
      await sha256File(join(t.cloud.dataCenterDir('dc-gz'), 'images', 'flip-02.raw')),
    );
    expect((await getOne(t.admin, id)).history?.map((h) => h.event)).toContain('chunk-unrepairable');
    await destination.kill();
  });
});
