import { mkdir, mkdtemp, open, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobFailure } from '../../../cli/agent/context.ts';
import {
  allocatedBytes,
  checkPlace,
  permanentFsFailure,
  recordDelivery,
  writeSparse,
} from '../../../cli/agent/placement.ts';

let dir: string;
let images: string;
let records: string;
const place = (overwrite = false, migrationId = 'mig-a') => ({ overwrite, migrationId });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmmig-place-'));
  images = join(dir, 'images');
  records = join(dir, '.vmmig', 'deliveries');
  await mkdir(images, { recursive: true });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('checkPlace', () => {
  it('lets a free place be written', async () => {
    expect(await checkPlace(images, records, join(images, 'free.img'), place())).toEqual({ replaces: false });
  });

  it('refuses a directory in the way, naming it, even with overwrite', async () => {
    await mkdir(join(images, 'dir.img'));
    const check = checkPlace(images, records, join(images, 'dir.img'), place(true));
    await expect(check).rejects.toBeInstanceOf(JobFailure);
    await expect(check).rejects.toThrow(/dir\.img: a directory is in the way \(EISDIR\)/);
  });

  it('refuses a file vmmig did not deliver unless overwrite, and leaves it as it is', async () => {
    const path = join(images, 'foreign.img');
    await writeFile(path, 'the user’s own disk');
    await expect(checkPlace(images, records, path, place())).rejects.toThrow(
      /foreign\.img exists and was not delivered by vmmig.*--overwrite/,
    );
    expect(await readFile(path, 'utf8')).toBe('the user’s own disk');
    expect(await checkPlace(images, records, path, place(true))).toEqual({ replaces: true });
  });

  it('replaces a file it delivered, until somebody changes it', async () => {
    const path = join(images, 'ours.img');
    await writeFile(path, 'delivered');
    await recordDelivery(records, path, 'mig-old');
    expect(await checkPlace(images, records, path, place())).toEqual({ replaces: true });
    await utimes(path, new Date(), new Date(Date.now() + 5000)); // a VM wrote to it
    await expect(checkPlace(images, records, path, place())).rejects.toThrow(
      /ours\.img changed since vmmig delivered it \(migration mig-old/,
    );
  });

  it('accepts the record of the same migration (a stop between recording and moving the image in)', async () => {
    const path = join(images, 'resumed.img');
    await writeFile(path, 'old');
    const aside = join(dir, 'aside');
    await writeFile(aside, 'new image');
    await recordDelivery(records, path, 'mig-b', aside);
    await expect(checkPlace(images, records, path, place(false, 'mig-c'))).rejects.toThrow(/changed since/);
    expect(await checkPlace(images, records, path, place(false, 'mig-b'))).toEqual({ replaces: true });
  });

  it('refuses a path that leads outside the image directory', async () => {
    await mkdir(join(dir, 'elsewhere'));
    await symlink(join(dir, 'elsewhere'), join(images, 'escape'));
    await expect(checkPlace(images, records, join(images, 'escape', 'x.img'), place(true))).rejects.toThrow(
      /outside this data center's image directory/,
    );
  });
});

describe('permanentFsFailure', () => {
  it('names the path and the reason of errors a retry cannot cure, and only those', () => {
    const eacces = Object.assign(new Error('x'), {
      code: 'EACCES',
      path: '/dc/images/a.img',
      syscall: 'open',
    });
    expect(permanentFsFailure(eacces)?.message).toBe(
      'cannot write /dc/images/a.img: permission denied (EACCES, open)',
    );
    const enospc = Object.assign(new Error('x'), { code: 'ENOSPC', path: '/dc/x.part', syscall: 'write' });
    expect(permanentFsFailure(enospc)?.message).toMatch(/no space left on the device/);
    expect(permanentFsFailure(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBeUndefined();
    expect(permanentFsFailure(new Error('plain'))).toBeUndefined();
  });
});

describe('writeSparse', () => {
  it('leaves aligned zero blocks unwritten (holes) and writes everything else, whatever the alignment', async () => {
    const path = join(dir, 'sparse.img');
    const file = await open(path, 'w+');
    const size = 8 << 20;
    await file.truncate(size);
    // A "chunk" at an unaligned offset: 1 MiB of data, 3 MiB of zeros, 100 bytes of data.
    const chunk = Buffer.alloc(4 * (1 << 20) + 100);
    chunk.fill(7, 0, 1 << 20);
    chunk.fill(9, 4 << 20);
    const offset = 12_345;
    const written = await writeSparse(file, chunk, offset);
    await file.close();
    const back = await readFile(path);
    expect(back.subarray(offset, offset + chunk.length).equals(chunk)).toBe(true);
    expect(back.subarray(0, offset).every((b) => b === 0)).toBe(true);
    expect(written).toBeLessThan((1 << 20) + 3 * 4096);
    const allocated = (await allocatedBytes(path)) ?? 0;
    expect(allocated).toBeLessThan((1 << 20) + 64 * 1024);
    expect((await stat(path)).size).toBe(size);
  });
});
