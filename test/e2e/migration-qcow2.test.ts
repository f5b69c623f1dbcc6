// A real qcow2 image, written at several offsets with qemu-io, migrates through the cache nodes and arrives
// identical; migrating it again uploads nothing; a third data center reuses what the cache nodes hold.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findQemu, qemuImg, qemuIo } from '../../local/qemu.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../support/migrations.ts';

const qemu = await findQemu();

describe.skipIf(!qemu)('qcow2 migration end to end (needs qemu-img)', () => {
  let t: TestCloud;
  const imageId = 'web-01.qcow2';
  let source: string;

  beforeAll(async () => {
    t = await startTestCloud({ agents: true });
    source = join(t.cloud.dataCenterDir('dc-gz'), 'images', imageId);
    await qemuImg(['create', '-q', '-f', 'qcow2', source, '256M']);
    // Data at several offsets, some of it repeated, the rest of the disk never written (holes).
    await qemuIo([
      '-f',
      'qcow2',
      '-c',
      'write -P 0xab 0 3M',
      '-c',
      'write -P 0x11 37M 9M',
      '-c',
      'write -P 0xcd 200M 1M',
      source,
    ]);
    // And incompressible data from a raw file, so chunks differ from each other.
    const random = join(t.dataDir, 'random.raw');
    const { writeRawImage } = await import('../../local/sample-images.ts');
    await writeRawImage(random, {
      size: 24 << 20,
      extents: [{ offset: 0, length: 24 << 20, seed: 'qcow2 e2e' }],
    });
    await qemuIo(['-f', 'qcow2', '-c', `write -s ${random} 100M 24M`, source]);
  });
  afterAll(() => t?.dispose());

  it('arrives identical (qemu-img compare), written as a sparse file, mapping rows recorded', async () => {
    const m = await startMigration(t.admin, { imageId, from: 'dc-gz', to: ['dc-osa'] });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.sourceCacheNodeId).toBe('hkg');
    expect(done.legs[0]).toMatchObject({ dataCenterId: 'dc-osa', cacheNodeId: 'nrt', status: 'COMPLETED' });
    expect(done.image?.format).toBe('qcow2');
    expect(done.upload.chunksTotal).toBeGreaterThan(0);
    expect(done.upload.bytesDone).toBe(done.upload.bytesTotal);
    const target = join(t.cloud.dataCenterDir('dc-osa'), 'images', imageId);
    expect((await qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', source, target])).trim()).toBe(
      'Images are identical.',
    );

    const rows = await t.admin.call<{
      items: { status: string; dataCenterId: string; cacheNodeId: string; format?: string }[];
    }>({ method: 'get', path: '/v1/content-map' }, { query: { migrationId: m.id } });
    expect(rows.body.items.map((r) => `${r.status}:${r.dataCenterId}:${r.cacheNodeId}`).sort()).toEqual([
      'DEST:dc-osa:nrt',
      'SRC:dc-gz:hkg',
    ]);
    const history = (await getOne(t.admin, m.id)).history?.map((h) => h.event) ?? [];
    expect(history).toEqual(
      expect.arrayContaining([
        'created',
        'resolved',
        'admitted',
        'manifest',
        'cache-checked',
        'uploaded',
        'replication-planned',
        'destination-completed',
        'completed',
      ]),
    );
  });

  it('migrating the same image again uploads zero chunks', async () => {
    const m = await startMigration(t.admin, { imageId, from: 'dc-gz', to: ['dc-osa'] });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status).toBe('COMPLETED');
    expect(done.upload.chunksTotal).toBe(0);
    expect(done.upload.bytesCached).toBeGreaterThan(0);
    expect(done.legs[0]?.bytesReplicated).toBe(done.legs[0]?.bytesToReplicate);
    expect(
      done.history?.some((h) => h.event === 'cache-checked' && /nothing to upload/.test(h.message)),
    ).toBe(true);
  });

  it('a third data center re-uses the chunks the cache nodes hold: no upload, copies from the nearest holder', async () => {
    const m = await startMigration(t.admin, { imageId, from: 'dc-gz', to: ['dc-jkt'] });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status).toBe('COMPLETED');
    expect(done.upload.chunksTotal).toBe(0);
    expect(done.legs[0]?.cacheNodeId).toBe('sin');
    const plan = done.history?.find((h) => h.event === 'replication-planned');
    expect(plan?.message).toMatch(/sin: \d+ chunks to copy/);
    const target = join(t.cloud.dataCenterDir('dc-jkt'), 'images', imageId);
    expect((await qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', source, target])).trim()).toBe(
      'Images are identical.',
    );
  });
});
