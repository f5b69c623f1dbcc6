// What a destination may and may not do to the files in its image directory: a place it cannot write fails that
// leg at once naming the path (other destinations go on); a file vmmig did not deliver is never replaced without
// overwrite; a format change leaves the other format's file alone; zero runs stay holes; a local handover in
// migrate mode never runs the source's --on-migrated hook on the image it delivered.
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findQemu } from '../../local/qemu.ts';
import { writeRawImage } from '../../local/sample-images.ts';
import { createMigration, type Migration } from '../../protocol/api/migrations.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const qemu = await findQemu();
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('destination edges', () => {
  let t: TestCloud;
  const images = (dc: string) => join(t.cloud.dataCenterDir(dc), 'images');

  async function migrate(input: {
    imageId: string;
    from: string;
    to: string[];
    mode?: 'migrate' | 'backup';
    overwrite?: boolean;
  }): Promise<Migration> {
    const { body } = await t.admin.call<Migration>(createMigration, {
      json: {
        vmId: input.imageId.replace(/\W/g, '-'),
        hostId: 'h1',
        imageId: input.imageId,
        sourceDataCenterId: input.from,
        destinations: input.to.map((d) => {
          const [dataCenterId, format] = d.split(':');
          return { dataCenterId: dataCenterId as string, ...(format ? { format: format as 'qcow2' } : {}) };
        }),
        mode: input.mode ?? 'backup',
        ...(input.overwrite ? { overwrite: true } : {}),
      },
      headers: { 'idempotency-key': randomUUID() },
    });
    return waitForMigration(t.admin, body.id);
  }

  beforeAll(async () => {
    t = await startTestCloud({
      // A source hook that removes the source's copy: what an operator's clean-up after a migration does.
      agents: { onMigrated: 'rm -f "$VMMIG_IMAGE_PATH"' },
    });
  });
  afterAll(() => t?.dispose());

  it('a directory where the image should go fails that leg at once, naming the path; the other destination completes', async () => {
    await writeRawImage(join(images('dc-gz'), 'blocked.img'), {
      size: 16 * MiB,
      extents: [{ offset: 0, length: 3 * MiB, seed: 'blocked' }],
    });
    await mkdir(join(images('dc-osa'), 'blocked.img', 'inside'), { recursive: true });
    const m = await migrate({ imageId: 'blocked.img', from: 'dc-gz', to: ['dc-osa', 'dc-jkt'] });
    expect(m.status).toBe('FAILED');
    const osa = m.legs.find((l) => l.dataCenterId === 'dc-osa');
    const jkt = m.legs.find((l) => l.dataCenterId === 'dc-jkt');
    expect(osa?.status).toBe('FAILED');
    expect(osa?.error).toContain(join(images('dc-osa'), 'blocked.img'));
    expect(osa?.error).toMatch(/a directory is in the way \(EISDIR\)/);
    expect(jkt?.status).toBe('COMPLETED');
    expect(await sha(join(images('dc-jkt'), 'blocked.img'))).toBe(m.image?.sha256);
    // Nothing was fetched for the blocked destination: it was refused before a byte moved.
    expect(osa?.bytesDownloaded).toBe(0);
  });

  it('a file vmmig did not deliver is left alone and fails the leg; with overwrite it is replaced and says so', async () => {
    await writeRawImage(join(images('dc-gz'), 'db-01.img'), {
      size: 16 * MiB,
      extents: [{ offset: MiB, length: 2 * MiB, seed: 'db' }],
    });
    const foreign = join(images('dc-osa'), 'db-01.img');
    await writeFile(foreign, 'the operator’s own database disk');
    const refused = await migrate({ imageId: 'db-01.img', from: 'dc-gz', to: ['dc-osa'] });
    expect(refused.status).toBe('FAILED');
    expect(refused.legs[0]?.error).toContain(`${foreign} exists and was not delivered by vmmig`);
    expect(refused.legs[0]?.error).toContain('--overwrite');
    expect(await readFile(foreign, 'utf8')).toBe('the operator’s own database disk');

    const replaced = await migrate({ imageId: 'db-01.img', from: 'dc-gz', to: ['dc-osa'], overwrite: true });
    expect(replaced.status, JSON.stringify(replaced.error)).toBe('COMPLETED');
    expect(replaced.overwrite).toBe(true);
    expect(replaced.legs[0]).toMatchObject({ replaced: true, deliveredPath: foreign });
    expect(await sha(foreign)).toBe(replaced.image?.sha256);
    expect(replaced.history?.some((h) => /replaced the file that was there/.test(h.message))).toBe(true);

    // What vmmig delivered, unchanged since, is replaced by the next migration without overwrite.
    const again = await migrate({ imageId: 'db-01.img', from: 'dc-gz', to: ['dc-osa'] });
    expect(again.status, JSON.stringify(again.error)).toBe('COMPLETED');
    expect(again.legs[0]?.replaced).toBe(true);
    // Changed since (a VM wrote to it): left alone again.
    await writeFile(foreign, Buffer.alloc(16 * MiB, 1));
    const changed = await migrate({ imageId: 'db-01.img', from: 'dc-gz', to: ['dc-osa'] });
    expect(changed.status).toBe('FAILED');
    expect(changed.legs[0]?.error).toMatch(/changed since vmmig delivered it/);
    expect((await readFile(foreign)).every((b) => b === 1)).toBe(true);
  });

  it.skipIf(!qemu)(
    'a format change delivers the other format beside a file of the first, which stays',
    async () => {
      await writeRawImage(join(images('dc-gz'), 'web-01.img'), {
        size: 16 * MiB,
        extents: [{ offset: 0, length: 2 * MiB, seed: 'web' }],
      });
      const theirs = join(images('dc-osa'), 'web-01.img');
      await writeFile(theirs, 'a raw disk the operator keeps');
      const m = await migrate({ imageId: 'web-01.img', from: 'dc-gz', to: ['dc-osa:qcow2'] });
      expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
      expect(m.legs[0]).toMatchObject({
        deliveredFormat: 'qcow2',
        deliveredPath: join(images('dc-osa'), 'web-01.qcow2'),
      });
      expect(m.legs[0]?.replaced).toBeUndefined();
      expect(await readFile(theirs, 'utf8')).toBe('a raw disk the operator keeps');
    },
  );

  it('zero runs inside chunks arrive as holes: the delivered image takes about its data, and the leg says how much', async () => {
    // 64 MiB with 64 KiB of data every 2 MiB: every chunk holds some data, and mostly zeros.
    const extents = Array.from({ length: 32 }, (_, i) => ({
      offset: i * 2 * MiB + 4096 * 3,
      length: 64 * 1024,
      seed: `sparse-${i}`,
    }));
    await writeRawImage(join(images('dc-gz'), 'thin.img'), { size: 64 * MiB, extents });
    const m = await migrate({ imageId: 'thin.img', from: 'dc-gz', to: ['dc-osa'] });
    expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    const delivered = join(images('dc-osa'), 'thin.img');
    expect(await sha(delivered)).toBe(m.image?.sha256);
    const allocated = (await stat(delivered)).blocks * 512;
    expect(m.legs[0]?.allocatedBytes).toBe(allocated);
    expect(allocated).toBeLessThan(4 * MiB); // 2 MiB of data; written as whole chunks it was ~64 MiB
  });

  it('a local handover in migrate mode does not run the source hook on the image it delivered', async () => {
    const path = join(images('dc-jkt'), 'desk-7.img');
    await writeRawImage(path, { size: 8 * MiB, extents: [{ offset: 0, length: MiB, seed: 'desk' }] });
    const before = await sha(path);
    const m = await migrate({ imageId: 'desk-7.img', from: 'dc-jkt', to: ['dc-jkt'], mode: 'migrate' });
    expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    expect(m.legs[0]).toMatchObject({ local: true, deliveredPath: path });
    expect(await sha(path)).toBe(before); // the hook (rm) did not run on it
    expect(m.history?.find((h) => h.event === 'source-released')?.message).toMatch(
      /did not run its on-migrated hook: the image was handed over in place/,
    );
  });

  it('a remote migration in migrate mode still runs the source hook', async () => {
    const path = join(images('dc-gz'), 'app-9.img');
    await writeRawImage(path, { size: 8 * MiB, extents: [{ offset: 0, length: MiB, seed: 'app' }] });
    const m = await migrate({ imageId: 'app-9.img', from: 'dc-gz', to: ['dc-osa'], mode: 'migrate' });
    expect(m.status, JSON.stringify(m.error)).toBe('COMPLETED');
    expect(m.sourceReleased).toBe(true);
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    expect((await stat(join(images('dc-osa'), 'app-9.img'))).isFile()).toBe(true);
  });
});
