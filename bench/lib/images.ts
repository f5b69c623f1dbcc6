// VM-like images for the workloads, reproducible from seeds: a disk that is mostly holes with extents of data
// (local/sample-images.ts), clones of one base with per-VM unique writes, and in-place changes to a fraction of
// the blocks. Written as raw files, or as real qcow2 files through qemu-img / qemu-io when they are present.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, open, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { findQemu, qemuImg, qemuIo } from '../../local/qemu.ts';
import {
  type Extent,
  type ImageSpec,
  seededBytes,
  vmLikeSpec,
  writeQcow2Image,
  writeRawImage,
} from '../../local/sample-images.ts';

export type { ImageSpec };
export type Format = 'raw' | 'qcow2';

const BLOCK = 4096;

/** A deterministic number in [0, 1) from a seed and an index. */
function uniform(seed: string, i: number): number {
  return createHash('sha256').update(`${seed}#${i}`).digest().readUInt32BE(0) / 2 ** 32;
}

const alignDown = (n: number, a = BLOCK) => Math.floor(n / a) * a;

/** A VM disk of `size` bytes holding `dataBytes` of data in extents between holes. */
export const uniqueImage = (size: number, dataBytes: number, seed: string): ImageSpec =>
  vmLikeSpec(size, dataBytes, seed);

/**
 * A VM's own writes after it was cloned: `fraction` of the disk in `writes` runs at seeded positions anywhere on
 * the disk (some over the base's data, some into its holes).
 */
export function uniqueWrites(size: number, fraction: number, writes: number, seed: string) {
  const run = alignDown((size * fraction) / writes);
  return Array.from({ length: writes }, (_, i) => ({
    offset: alignDown(uniform(seed, i) * (size - run)),
    length: run,
  }));
}

/** Runs of changed blocks inside the data of `spec`: `fraction` of its data bytes, in runs of `runBytes`. */
export function changedRuns(
  spec: ImageSpec,
  fraction: number,
  runBytes: number,
  seed: string,
): { offset: number; length: number }[] {
  const data = spec.extents.reduce((n, e) => n + e.length, 0);
  const count = Math.max(1, Math.round((data * fraction) / runBytes));
  const runs: { offset: number; length: number }[] = [];
  for (let i = 0; i < count; i++) {
    // Pick an extent weighted by its length, then a position inside it.
    let pick = uniform(seed, 2 * i) * data;
    let e = spec.extents[0] as Extent;
    for (const x of spec.extents) {
      e = x;
      pick -= x.length;
      if (pick < 0) break;
    }
    const length = Math.min(runBytes, e.length);
    const offset = e.offset + alignDown(uniform(seed, 2 * i + 1) * (e.length - length));
    runs.push({ offset, length });
  }
  return runs;
}

/** The extents of `spec` with the runs rewritten with new data (what a running VM does to its disk). */
export function withChanges(
  spec: ImageSpec,
  runs: readonly { offset: number; length: number }[],
  seed: string,
) {
  return { size: spec.size, extents: [...spec.extents, ...runs.map((r) => ({ ...r, seed }))] };
}

export async function hasQemu(): Promise<boolean> {
  return (await findQemu()) !== undefined;
}

export async function qemuVersion(): Promise<string | undefined> {
  return (await findQemu())?.version;
}

/** Writes the image; returns its size on disk as the naive path would move it (the file's length). */
export async function writeImage(path: string, spec: ImageSpec, format: Format): Promise<number> {
  if (format === 'qcow2') await writeQcow2Image(path, spec);
  else await writeRawImage(path, spec);
  return (await stat(path)).size;
}

/**
 * Rewrites runs of an existing image in place: pwrite on a raw file; qemu-io on a qcow2 file, so an overwrite of
 * allocated clusters stays in place and a write into a hole allocates new clusters at the end, as a running VM does.
 */
export async function applyChanges(
  path: string,
  format: Format,
  runs: readonly { offset: number; length: number }[],
  seed: string,
): Promise<void> {
  if (format === 'raw') {
    const file = await open(path, 'r+');
    try {
      for (const r of runs) await file.write(seededBytes(seed, r.offset, r.length), 0, r.length, r.offset);
    } finally {
      await file.close();
    }
    return;
  }
  const patches: string[] = [];
  try {
    const commands: string[] = [];
    for (const [i, r] of runs.entries()) {
      const patch = `${path}.patch-${i}`;
      await writeFile(patch, seededBytes(seed, r.offset, r.length));
      patches.push(patch);
      commands.push('-c', `write -q -s ${patch} ${r.offset} ${r.length}`);
    }
    // qemu-io takes the commands in batches (argument lists stay short).
    for (let i = 0; i < commands.length; i += 200)
      await qemuIo(['-f', 'qcow2', ...commands.slice(i, i + 200), path]);
  } finally {
    await Promise.all(patches.map((p) => rm(p, { force: true })));
  }
}

/** A clone of an image file: a copy of it with its own writes applied the way a running VM makes them. */
export async function writeClone(
  basePath: string,
  path: string,
  format: Format,
  runs: readonly { offset: number; length: number }[],
  seed: string,
): Promise<number> {
  await copyFile(basePath, path);
  await applyChanges(path, format, runs, seed);
  return (await stat(path)).size;
}

/** Virtual size of an image file (qcow2 header, or the raw file's length). */
export async function virtualSize(path: string, format: Format): Promise<number> {
  if (format === 'raw') return (await stat(path)).size;
  const info = JSON.parse(await qemuImg(['info', '--output=json', path])) as { 'virtual-size': number };
  return info['virtual-size'];
}

/** Flushes dirty pages, so writing the images does not slow the measurement that follows. */
export async function syncDisks(): Promise<void> {
  await promisify(execFile)('sync');
}
