// Where and how an image is delivered: a desktop near its user (draft §4.3), a local handover (draft §3.1
// step 2), cross-hypervisor formats (draft Table 1), and re-migration of a changed image with a pre-flight
// estimate.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmmigArgs } from '../../local/agents.ts';
import { findQemu, qemuImg } from '../../local/qemu.ts';
import { seededBytes, writeRawImage } from '../../local/sample-images.ts';
import { getWork } from '../../protocol/api/agent.ts';
import { createEstimate, type Estimate } from '../../protocol/api/estimate.ts';
import { createMigration } from '../../protocol/api/migrations.ts';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';
import { tocBytes } from '../../protocol/pack.ts';
import { packEntries } from '../support/chaos.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const run = promisify(execFile);
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
const qemu = await findQemu();

// Migrations of tens of MiB in 256 KiB chunks: per-chunk work on DynamoDB Local takes its time on a busy machine.
describe('delivery use cases', { timeout: 240_000 }, () => {
  let t: TestCloud;

  beforeAll(async () => {
    t = await startTestCloud({
      agents: { onReady: 'echo "$VMMIG_IMAGE_FORMAT $VMMIG_IMAGE_PATH" > "$VMMIG_IMAGE_PATH.ready"' },
    });
  });
  afterAll(() => t?.dispose());

  it('a desktop goes to the data center nearest its user, through the edge', async () => {
    await writeRawImage(join(t.cloud.dataCenterDir('dc-gz'), 'images', 'desk-42.img'), {
      size: 32 * MiB,
      extents: [{ offset: 0, length: 10 * MiB, seed: 'desktop' }],
    });
    // A user in Kobe: Osaka is the nearest data center.
    const { body: m } = await t.admin.call<{
      id: string;
      placement?: { dataCenterId: string; distanceKm: number };
    }>(createMigration, {
      json: {
        vmId: 'desk-42',
        hostId: 'h',
        imageId: 'desk-42.img',
        sourceDataCenterId: 'dc-gz',
        near: { lat: 34.69, lon: 135.19 },
      },
    });
    expect(m.placement).toMatchObject({ dataCenterId: 'dc-osa' });
    expect(m.placement?.distanceKm).toBeLessThan(50);
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.legs[0]).toMatchObject({ dataCenterId: 'dc-osa', cacheNodeId: 'nrt', local: false });
    expect(done.legs[0]?.bytesDownloaded).toBeGreaterThan(0); // fetched from the edge with signed URLs
    expect(
      done.history?.some((h) => /nearest data center to \(34.69, 135.19\): dc-osa/.test(h.message)),
    ).toBe(true);
  });

  it('a local migration involves no cache node: a handover, recorded as local in the mapping tables', async () => {
    await writeRawImage(join(t.cloud.dataCenterDir('dc-jkt'), 'images', 'batch-7.img'), {
      size: 16 * MiB,
      extents: [{ offset: MiB, length: 4 * MiB, seed: 'local' }],
    });
    const m = await startMigration(t.admin, {
      imageId: 'batch-7.img',
      from: 'dc-jkt',
      to: ['dc-jkt'],
      vmId: 'batch-7',
    });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.sourceCacheNodeId).toBeUndefined();
    expect(done.legs[0]).toMatchObject({ local: true, status: 'COMPLETED' });
    expect(done.legs[0]?.cacheNodeId).toBeUndefined();
    expect(done.upload.bytesDone).toBe(0);
    const rows = await t.admin.call<{ items: { local: boolean; sourceCacheNodeId?: string }[] }>(
      { method: 'get', path: '/v1/location-map' },
      { query: { migrationId: m.id } },
    );
    expect(rows.body.items).toEqual([expect.objectContaining({ local: true })]);
    expect(rows.body.items[0]?.sourceCacheNodeId).toBeUndefined();
    expect(
      await readFile(join(t.cloud.dataCenterDir('dc-jkt'), 'images', 'batch-7.img.ready'), 'utf8'),
    ).toMatch(/^raw /);
  });

  it.skipIf(!qemu)(
    'cross-hypervisor: a Xen VHD arrives at a KVM host as qcow2, both formats recorded',
    async () => {
      const raw = join(t.dataDir, 'xen-10.raw');
      const source = join(t.cloud.dataCenterDir('dc-gz'), 'images', 'xen-10.vhd');
      await writeRawImage(raw, {
        size: 64 * MiB,
        extents: [{ offset: 4 * MiB, length: 16 * MiB, seed: 'xen' }],
      });
      await qemuImg([
        'convert',
        '-f',
        'raw',
        '-O',
        'vpc',
        '-o',
        'subformat=dynamic,force_size=on',
        raw,
        source,
      ]);
      const m = await startMigration(t.admin, {
        imageId: 'xen-10.vhd',
        from: 'dc-gz',
        to: ['dc-osa:qcow2'],
        vmId: 'xen-10',
      });
      const done = await waitForMigration(t.admin, m.id);
      expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
      expect(done.image?.format).toBe('vpc');
      const target = join(t.cloud.dataCenterDir('dc-osa'), 'images', 'xen-10.qcow2');
      expect(done.legs[0]).toMatchObject({
        format: 'qcow2',
        deliveredFormat: 'qcow2',
        deliveredPath: target,
      });
      expect((await qemuImg(['compare', '-f', 'vpc', '-F', 'qcow2', source, target])).trim()).toBe(
        'Images are identical.',
      );
      expect(await readFile(`${target}.ready`, 'utf8')).toBe(`qcow2 ${target}\n`);
      const rows = await t.admin.call<{ items: { status: string; format?: string }[] }>(
        { method: 'get', path: '/v1/content-map' },
        { query: { migrationId: m.id } },
      );
      expect(Object.fromEntries(rows.body.items.map((r) => [r.status, r.format]))).toEqual({
        SRC: 'vpc',
        DEST: 'qcow2',
      });
    },
  );

  it('a conversion to a data center whose agent has no qemu-img fails at once, naming why', async () => {
    // A new data center whose agent reports itself without qemu-img.
    await t.admin.call(
      { method: 'put', path: '/v1/data-centers/{id}' },
      {
        params: { id: 'dc-bare' },
        json: { name: 'Bare DC', address: '10.9.0.1', location: { lat: 13.75, lon: 100.5 } },
      },
    );
    await t.agent('dc-bare').call(getWork, { query: { agentVersion: 'test' } });
    const refused = t.admin.call(createMigration, {
      json: {
        vmId: 'v',
        hostId: 'h',
        imageId: 'x.img',
        sourceDataCenterId: 'dc-gz',
        destinations: [{ dataCenterId: 'dc-bare', format: 'qcow2' }],
      },
    });
    await expect(refused).rejects.toMatchObject({
      status: 409,
      message: expect.stringMatching(/no qemu-img/),
    });
  });

  it('a changed image moves only its changed chunks, as the estimate said before any upload', async () => {
    const image = join(t.cloud.dataCenterDir('dc-sh'), 'images', 'db-7.img');
    await writeRawImage(image, {
      size: 256 * MiB,
      extents: [{ offset: 0, length: 160 * MiB, seed: 'db v1' }],
    });
    const first = await waitForMigration(
      t.admin,
      (await startMigration(t.admin, { imageId: 'db-7.img', from: 'dc-sh', to: ['dc-osa'] })).id,
    );
    expect(first.status).toBe('COMPLETED');
    const before = new Set((await collectChunks(chunkFile(image))).chunks.map((c) => c.sha256));
    // A few hours of writes: 1 % of the data blocks change.
    const file = await open(image, 'r+');
    for (let i = 0; i < 4; i++)
      await file.write(seededBytes('db v2', i, 400 * 1024), 0, 400 * 1024, (10 + i * 37) * MiB);
    await file.close();

    const image2 = await collectChunks(chunkFile(image));
    const payload = [
      ...new Map(
        image2.chunks.filter((c) => !isZeroChunk(c.sha256, c.length)).map((c) => [c.sha256, c]),
      ).values(),
    ];
    const { body: est } = await t.admin.call<Estimate>(createEstimate, {
      json: {
        sourceDataCenterId: 'dc-sh',
        destinationDataCenterId: 'dc-osa',
        chunks: payload.map(({ sha256, length }) => ({ sha256, length })),
      },
    });
    expect(est.toUpload.bytes).toBeGreaterThan(0);
    expect(est.toUpload.bytes).toBeLessThan(0.15 * est.bytes);
    expect(est.destination).toMatchObject({ cacheNodeId: 'nrt' });

    // The CLI gives the same figures from the image file alone.
    const cli = await run(
      process.execPath,
      vmmigArgs('estimate', '--image', image, '--to', 'dc-osa', '--from', 'dc-sh', '--json'),
      {
        env: {
          ...process.env,
          VMMIG_ENDPOINT: t.cloud.endpoints.api,
          VMMIG_TOKEN: t.cloud.tokens.adminToken,
        },
      },
    );
    expect(JSON.parse(cli.stdout).estimate.toUpload).toEqual(est.toUpload);

    const second = await waitForMigration(
      t.admin,
      (await startMigration(t.admin, { imageId: 'db-7.img', from: 'dc-sh', to: ['dc-osa'] })).id,
    );
    expect(second.status).toBe('COMPLETED');
    expect(second.upload.bytesTotal).toBe(est.toUpload.bytes);
    // dc-sh uploads to hkg, dc-osa is served by nrt: the uploaded chunks are copied too, as estimated. A copy moves
    // a whole pack: the packs the second upload made hold exactly the chunks the estimate said to copy, and what
    // was copied is those packs' bytes (the chunks as stored, and each pack's table of contents).
    expect(est.toCopy.bytes).toBeGreaterThanOrEqual(est.toUpload.bytes);
    const changed = new Map(payload.filter((c) => !before.has(c.sha256)).map((c) => [c.sha256, c.length]));
    expect([...changed.values()].reduce((n, l) => n + l, 0)).toBe(est.toCopy.bytes);
    const atNrt = await t.cloud.root.deps.contentIndex.locate('nrt', [...changed.keys()]);
    expect(atNrt.size).toBe(changed.size);
    let packBytes = 0;
    const inPacks = new Set<string>();
    for (const pack of new Set([...atNrt.values()].map((e) => e.pack ?? ''))) {
      const entries = (await packEntries(t, 'nrt', pack)) ?? [];
      for (const e of entries) inPacks.add(e.sha256);
      packBytes += entries.reduce((n, e) => n + e.stored, 0) + tocBytes(entries.length);
    }
    expect(inPacks).toEqual(new Set(changed.keys()));
    expect(second.replication.bytesCopied).toBe(packBytes);
    expect(second.upload.bytesTotal / (second.image?.size ?? 1)).toBeLessThan(0.1);
    expect(await sha(join(t.cloud.dataCenterDir('dc-osa'), 'images', 'db-7.img'))).toBe(await sha(image));
    expect((await stat(image)).size).toBe(256 * MiB);
  });
});
