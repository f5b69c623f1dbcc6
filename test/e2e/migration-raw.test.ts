// A raw image (no qemu needed): sparse delivery, the VM-ready hook, idempotent creation, cancel, and who may
// see a migration.

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../cli/client.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import {
  cancelMigration,
  createMigration,
  getMigration,
  type Migration,
} from '../../protocol/api/migrations.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { startMigration, waitForMigration } from '../support/migrations.ts';

const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
const SIZE = 256 << 20;

describe('raw image migration', () => {
  let t: TestCloud;

  beforeAll(async () => {
    t = await startTestCloud({
      agents: { onReady: 'env | grep ^VMMIG_ | sort > "$VMMIG_IMAGE_PATH.ready"' },
    });
    await writeRawImage(
      join(t.cloud.dataCenterDir('dc-sh'), 'images', 'desk-7.img'),
      vmLikeSpec(SIZE, 20 << 20, 'raw e2e', 5),
    );
  });
  afterAll(() => t?.dispose());

  it('delivers a sparse, identical image and runs the VM-ready hook with the image path, VM id and format', async () => {
    const m = await startMigration(t.admin, {
      imageId: 'desk-7.img',
      from: 'dc-sh',
      to: ['dc-jkt'],
      vmId: 'kvm-07',
    });
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.image).toMatchObject({ format: 'raw', size: SIZE });
    expect(done.image?.zeroBytes).toBeGreaterThan(SIZE / 2);
    const src = join(t.cloud.dataCenterDir('dc-sh'), 'images', 'desk-7.img');
    const dst = join(t.cloud.dataCenterDir('dc-jkt'), 'images', 'desk-7.img');
    expect(await sha(dst)).toBe(await sha(src));
    const st = await stat(dst);
    expect(st.size).toBe(SIZE);
    expect(st.blocks * 512).toBeLessThan(SIZE / 4); // holes where the image is zeros
    const env = await readFile(`${dst}.ready`, 'utf8');
    expect(env).toContain(`VMMIG_IMAGE_PATH=${dst}`);
    expect(env).toContain('VMMIG_VM_ID=kvm-07');
    expect(env).toContain('VMMIG_IMAGE_FORMAT=raw');
    expect(env).toContain(`VMMIG_MIGRATION_ID=${m.id}`);
    // Bytes that travelled: only non-zero chunks.
    expect(done.upload.bytesTotal).toBe(SIZE - (done.image?.zeroBytes ?? 0));
  });

  it('the same Idempotency-Key and body give the same migration; another body under that key is a 409', async () => {
    const body = {
      vmId: 'vm-idem',
      hostId: 'h1',
      imageId: 'desk-7.img',
      sourceDataCenterId: 'dc-sh',
      destinations: [{ dataCenterId: 'dc-gz' }],
    };
    const headers = { 'idempotency-key': 'key-123' };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => t.admin.call<Migration>(createMigration, { json: body, headers })),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    const other = t.admin.call(createMigration, { json: { ...body, vmId: 'vm-other' }, headers });
    await expect(other).rejects.toMatchObject({ status: 409 });
    await waitForMigration(t.admin, results[0]?.body.id as string);
  });

  it('cancel stops the workflow, releases cache node slots, and is idempotent; a cancelled migration cannot be cancelled into anything else', async () => {
    const m = await startMigration(t.admin, { imageId: 'desk-7.img', from: 'dc-sh', to: ['dc-osa'] });
    const first = await t.admin.call<Migration>(cancelMigration, { params: { migrationId: m.id } });
    expect(first.body.status).toBe('CANCELLED');
    const second = await t.admin.call<Migration>(cancelMigration, { params: { migrationId: m.id } });
    expect(second.body.status).toBe('CANCELLED');
    await new Promise((r) => setTimeout(r, 1500)); // let any in-flight step finish: it must not revive it
    const after = (await t.admin.call<Migration>(getMigration, { params: { migrationId: m.id } })).body;
    expect(after.status).toBe('CANCELLED');
    const nodes = await t.admin.call<{ items: { reservations: string[] }[] }>({
      method: 'get',
      path: '/v1/cache-nodes',
    });
    expect(nodes.body.items.flatMap((n) => n.reservations)).not.toContain(m.id);
  });

  it('an agent sees only migrations of its own data center; creating is admin-only; bad input names the field', async () => {
    const list = await t.admin.call<{ items: Migration[] }>(
      { method: 'get', path: '/v1/migrations' },
      { query: { limit: 1 } },
    );
    const id = list.body.items[0]?.id as string;
    await expect(t.agent('dc-jkt').call(getMigration, { params: { migrationId: id } })).rejects.toMatchObject(
      { status: 404 },
    );
    await expect(t.agent('dc-sh').call(getMigration, { params: { migrationId: id } })).resolves.toMatchObject(
      { status: 200 },
    );
    const create = t.agent('dc-sh').call(createMigration, {
      json: {
        vmId: 'v',
        hostId: 'h',
        imageId: 'x.img',
        sourceDataCenterId: 'dc-sh',
        destinations: [{ dataCenterId: 'dc-gz' }],
      },
    });
    await expect(create).rejects.toMatchObject({ status: 403 });
    const bad = await t.admin
      .call(createMigration, {
        json: {
          vmId: 'v',
          hostId: 'h',
          imageId: '../etc/passwd',
          sourceDataCenterId: 'dc-sh',
          destinations: [],
        },
      })
      .catch((e: ApiError) => e);
    expect(bad).toBeInstanceOf(ApiError);
    expect((bad as ApiError).status).toBe(400);
    expect((bad as ApiError).body?.error.issues?.map((i) => i.field).sort()).toEqual([
      'destinations',
      'imageId',
    ]);
    const unknown = t.admin.call(createMigration, {
      json: {
        vmId: 'v',
        hostId: 'h',
        imageId: 'x.img',
        sourceDataCenterId: 'dc-nowhere',
        destinations: [{ dataCenterId: 'dc-gz' }],
      },
    });
    await expect(unknown).rejects.toMatchObject({ status: 404 });
  });
});
