// VM-like disk images for the demo, tests and benchmarks: mostly zeros (holes) with extents of data that are
// pseudo-random but reproducible from a seed, so clones of one base share exactly the bytes they should.
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { qemuImg } from './qemu.ts';

export interface Extent {
  readonly offset: number;
  readonly length: number;
  /** Same seed and offset → same bytes. */
  readonly seed: string;
}

export interface ImageSpec {
  readonly size: number;
  readonly extents: readonly Extent[];
}

/** Pseudo-random bytes at an absolute position of a seeded stream (AES-128-CTR over zeros: fast, seekable). */
export function seededBytes(seed: string, position: number, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const block = Math.floor(position / 16);
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(block), 8);
  const skip = position - block * 16;
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  const out = cipher.update(Buffer.alloc(skip + length));
  return out.subarray(skip);
}

const PIECE = 8 * 1024 * 1024;

/** Writes a sparse raw image: the extents hold seeded data, the rest stays holes. */
export async function writeRawImage(path: string, spec: ImageSpec): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const file = await open(path, 'w');
  try {
    await file.truncate(spec.size);
    for (const e of spec.extents) {
      for (let done = 0; done < e.length; done += PIECE) {
        const n = Math.min(PIECE, e.length - done);
        await file.write(seededBytes(e.seed, e.offset + done, n), 0, n, e.offset + done);
      }
    }
  } finally {
    await file.close();
  }
}

/** A typical VM disk: `dataBytes` of data spread over extents between holes, reproducible from the seed. */
export function vmLikeSpec(size: number, dataBytes: number, seed: string, extentCount = 12): ImageSpec {
  const slot = Math.floor(size / extentCount);
  const per = Math.min(slot, Math.floor(dataBytes / extentCount / 4096) * 4096);
  const extents: Extent[] = [];
  for (let i = 0; i < extentCount && per > 0; i++) {
    // Skew each extent inside its slot so extents do not line up with chunk boundaries.
    const jitter = Math.floor(((slot - per) * ((i * 7919) % 13)) / 13 / 4096) * 4096;
    extents.push({ offset: i * slot + jitter, length: per, seed });
  }
  return { size, extents };
}

/** A qcow2 image with the content of `spec`, made by qemu-img from a temporary raw image. */
export async function writeQcow2Image(path: string, spec: ImageSpec): Promise<void> {
  const raw = `${path}.raw.tmp`;
  try {
    await writeRawImage(raw, spec);
    await qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', raw, path]);
  } finally {
    await rm(raw, { force: true });
  }
}
