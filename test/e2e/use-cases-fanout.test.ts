// Batch migration (draft §4.1) and multi-node backup (draft §4.2) end to end on the local cloud.
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRawImage } from '../../local/sample-images.ts';
import { type Batch, createBatch, getBatch } from '../../protocol/api/batches.ts';
import { retryMigration } from '../../protocol/api/migrations.ts';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('batch migration and multi-node backup', () => {
  let t: TestCloud;
  let flags: string;

  beforeAll(async () => {
    // The agents' hooks read this directory; they inherit the environment when the cloud starts them.
    flags = await mkdtemp(join(tmpdir(), 'vmmig-flags-'));
    process.env['FLAGS'] = flags;
    t = await startTestCloud({
      agents: {
        // dc-jkt's VM-ready hook fails while the flag file exists; every hook records what it saw.
        onReady: 'test "$VMMIG_DATA_CENTER_ID" != dc-jkt || test ! -e "$FLAGS/fail-jkt"',
        onMigrated: 'echo "$VMMIG_MIGRATION_ID $VMMIG_VM_ID $VMMIG_IMAGE_PATH" >> "$FLAGS/migrated.log"',
      },
    });
  });
  afterAll(async () => {
    await t?.dispose();
    await rm(flags, { recursive: true, force: true });
  });

  it('moves many VMs in one request; clones of one base upload their shared chunks once', async () => {
    const images = join(t.cloud.dataCenterDir('dc-sh'), 'images');
    // Three clones of a 64 MiB base, each with 4 MiB of its own writes in a different place.
    for (const [i, vm] of ['web-1', 'web-2', 'web-3'].entries()) {
      await writeRawImage(join(images, `${vm}.img`), {
        size: 128 * MiB,
        extents: [
          { offset: 0, length: 64 * MiB, seed: 'base image' },
          { offset: (80 + i * 12) * MiB, length: 4 * MiB, seed: `own writes of ${vm}` },
        ],
      });
    }
    const { status, body } = await t.admin.call<Batch>(createBatch, {
      json: {
        sourceDataCenterId: 'dc-sh',
        destinations: [{ dataCenterId: 'dc-osa' }],
        mode: 'backup',
        vms: ['web-1', 'web-2', 'web-3'].map((vm) => ({ vmId: vm, hostId: 'h1', imageId: `${vm}.img` })),
      },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(status).toBe(202);
    expect(body.total).toBe(3);
    let batch = body;
    const deadline = Date.now() + 180_000;
    while (batch.status === 'RUNNING' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      batch = (await t.admin.call<Batch>(getBatch, { params: { batchId: body.id } })).body;
    }
    expect(batch.status, JSON.stringify(batch)).toBe('COMPLETED');
    expect(batch.counts).toEqual({ COMPLETED: 3 });
    expect(batch.slowest?.migrationId).toMatch(/^mig-/);
    const members = await Promise.all(batch.migrations.map((m) => waitForMigration(t.admin, m.id)));
    // Every distinct non-zero chunk of the three images was uploaded by exactly one of the three migrations.
    const distinct = new Set<string>();
    for (const vm of ['web-1', 'web-2', 'web-3']) {
      for (const c of (await collectChunks(chunkFile(join(images, `${vm}.img`)))).chunks) {
        if (!isZeroChunk(c.sha256, c.length)) distinct.add(c.sha256);
      }
    }
    expect(members.reduce((n, m) => n + m.upload.chunksTotal, 0)).toBe(distinct.size);
    // The base's chunks reached the other two as already cached or as awaited (being uploaded by a sibling).
    for (const m of members) expect(m.upload.chunksTotal).toBeLessThan(distinct.size);
    expect(batch.bytes.uploaded).toBeLessThan(2 * (64 + 3 * 4) * MiB);
    for (const vm of ['web-1', 'web-2', 'web-3']) {
      expect(await sha(join(t.cloud.dataCenterDir('dc-osa'), 'images', `${vm}.img`))).toBe(
        await sha(join(images, `${vm}.img`)),
      );
    }
  });

  it('backs one image up to two destinations with one upload; a failed destination is retried alone', async () => {
    const image = join(t.cloud.dataCenterDir('dc-gz'), 'images', 'db-backup.img');
    await writeRawImage(image, {
      size: 96 * MiB,
      extents: [{ offset: 8 * MiB, length: 40 * MiB, seed: 'backup' }],
    });
    await writeFile(join(flags, 'fail-jkt'), '');
    const m = await startMigration(t.admin, {
      imageId: 'db-backup.img',
      from: 'dc-gz',
      to: ['dc-osa', 'dc-jkt'],
    });
    const first = await waitForMigration(t.admin, m.id);
    expect(first.status).toBe('FAILED');
    const legs = Object.fromEntries(first.legs.map((l) => [l.dataCenterId, l]));
    expect(legs['dc-osa']?.status).toBe('COMPLETED');
    expect(legs['dc-jkt']?.status).toBe('FAILED');
    expect(legs['dc-jkt']?.error).toMatch(/on-ready hook exited/);
    // One upload for two destinations: the bytes uploaded are the image's non-zero bytes, once.
    expect(first.upload.bytesDone).toBe(first.image ? first.image.size - first.image.zeroBytes : -1);
    expect(legs['dc-osa']?.cacheNodeId).toBe('nrt');
    expect(legs['dc-jkt']?.cacheNodeId).toBe('sin');

    await rm(join(flags, 'fail-jkt'));
    await t.admin.call(retryMigration, { params: { migrationId: m.id }, json: { destinations: ['dc-jkt'] } });
    const second = await waitForMigration(t.admin, m.id);
    expect(second.status, JSON.stringify(second.error)).toBe('COMPLETED');
    expect(second.attempt).toBe(2);
    expect(second.upload.chunksTotal).toBe(0); // no new upload
    expect(second.legs.find((l) => l.dataCenterId === 'dc-osa')?.completedAt).toBe(
      legs['dc-osa']?.completedAt,
    );
    expect(await sha(join(t.cloud.dataCenterDir('dc-jkt'), 'images', 'db-backup.img'))).toBe(
      await sha(image),
    );
  });

  it('mode migrate: once every destination has the VM, the source agent runs its on-migrated hook', async () => {
    const image = join(t.cloud.dataCenterDir('dc-osa'), 'images', 'app-9.img');
    await writeRawImage(image, {
      size: 32 * MiB,
      extents: [{ offset: 0, length: 12 * MiB, seed: 'migrate mode' }],
    });
    const m = await startMigration(t.admin, {
      imageId: 'app-9.img',
      from: 'dc-osa',
      to: ['dc-sh'],
      vmId: 'app-9',
    });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.mode).toBe('migrate');
    expect(done.sourceReleased).toBe(true);
    const events = done.history?.map((h) => h.event) ?? [];
    expect(events.indexOf('source-released')).toBeGreaterThan(events.indexOf('destination-completed'));
    expect(await readFile(join(flags, 'migrated.log'), 'utf8')).toContain(`${m.id} app-9 ${image}`);
  });
});
