// The whole-image digest the destination checks before handing an image over: the file as it is on disk, holes
// read as zeros, through buffers reused from read to read.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256OfFile } from '../../../cli/agent/destination.ts';

const MiB = 1024 * 1024;
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('sha256OfFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sha256-of-file-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('hashes files shorter than, equal to and several times the read size, and an empty one', async () => {
    for (const size of [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 13 * MiB + 7]) {
      const bytes = randomBytes(size);
      const path = join(dir, `f-${size}`);
      await writeFile(path, bytes);
      expect(await sha256OfFile(path), `size ${size}`).toBe(sha(bytes));
    }
  });

  it('reads holes as the zeros they are, and sees bytes that differ from what was meant', async () => {
    const path = join(dir, 'sparse');
    const image = Buffer.alloc(11 * MiB);
    const data = randomBytes(MiB + 3);
    data.copy(image, 5 * MiB + 11);
    const file = await open(path, 'w+');
    await file.truncate(image.length);
    await file.write(data, 0, data.length, 5 * MiB + 11);
    await file.close();
    expect(await sha256OfFile(path)).toBe(sha(image));
    const flipped = await open(path, 'r+');
    await flipped.write(Buffer.from([1]), 0, 1, 9 * MiB); // in a hole
    await flipped.close();
    expect(await sha256OfFile(path)).not.toBe(sha(image));
  });

  it('stops when the signal aborts, with its reason', async () => {
    const path = join(dir, 'big');
    await writeFile(path, Buffer.alloc(16 * MiB));
    const before = new AbortController();
    before.abort(new Error('migration CANCELLED'));
    await expect(sha256OfFile(path, before.signal)).rejects.toThrow('migration CANCELLED');
    const during = new AbortController();
    const hashing = sha256OfFile(path, during.signal);
    during.abort(new Error('stop'));
    await expect(hashing).rejects.toThrow('stop');
  });

  it('rejects a file that is not there', async () => {
    await expect(sha256OfFile(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
