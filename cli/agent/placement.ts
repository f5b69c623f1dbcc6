// Where a delivered image goes, and what may be there before it. A destination writes the image aside (its part
// file), verifies it, and only then moves it into place. A file already at that place is replaced only when this
// agent delivered it and nobody changed it since (its delivery record still matches the file), or when the
// migration says overwrite; anything else at the place (a directory, a file vmmig did not write, a path that
// leads outside the data center's image directory) fails the leg naming the path, and nothing is touched.
//
// Errors of the local file system that another attempt cannot cure (a directory in the way, no permission, no
// space, a read-only file system) are failures of the leg with the path and the reason, never retried.
import { createHash } from 'node:crypto';
import { mkdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { JobFailure } from './context.ts';

/** What this agent wrote at a path: the file's identity right after it was moved into place. */
export interface DeliveryRecord {
  readonly path: string;
  readonly migrationId: string;
  readonly at: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
}

export interface PlaceCheck {
  /** A file is at the path now (it is replaced when the image is moved there). */
  readonly replaces: boolean;
}

const recordFile = (recordsDir: string, path: string) =>
  join(recordsDir, `${createHash('sha256').update(resolve(path)).digest('hex').slice(0, 32)}.json`);

export async function readDeliveryRecord(
  recordsDir: string,
  path: string,
): Promise<DeliveryRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(recordFile(recordsDir, path), 'utf8')) as DeliveryRecord;
    return record.path === resolve(path) ? record : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Records the file `file` (about to be moved to `path`: a rename keeps its inode, size and mtime) as what this
 * agent delivered at `path`.
 */
export async function recordDelivery(
  recordsDir: string,
  path: string,
  migrationId: string,
  moving: string = path,
): Promise<void> {
  const st = await stat(moving);
  const record: DeliveryRecord = {
    path: resolve(path),
    migrationId,
    at: new Date().toISOString(),
    size: st.size,
    mtimeMs: st.mtimeMs,
    ino: st.ino,
  };
  await mkdir(recordsDir, { recursive: true });
  const file = recordFile(recordsDir, path);
  await writeFile(`${file}.tmp`, JSON.stringify(record));
  await rename(`${file}.tmp`, file);
}

/**
 * Checks that the image may be put at `path`: inside `imagesDir` (also after symbolic links), not a directory, and
 * either free, or holding a file this agent delivered and nobody changed since, or `overwrite`. Throws JobFailure
 * naming the path and what to do otherwise.
 */
export async function checkPlace(
  imagesDir: string,
  recordsDir: string,
  path: string,
  options: { readonly overwrite: boolean; readonly migrationId: string },
): Promise<PlaceCheck> {
  await mkdir(imagesDir, { recursive: true }).catch((err: unknown) => {
    throw permanentFsFailure(err) ?? err;
  });
  const root = await realpath(imagesDir);
  const parent = await realpath(dirname(path)).catch(() => undefined);
  if (parent === undefined || escapes(root, parent)) {
    throw new JobFailure(
      `cannot write ${path}: it is outside this data center's image directory ${imagesDir}` +
        `${parent ? ` (it leads to ${parent})` : ''}; nothing was written`,
    );
  }
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw permanentFsFailure(err) ?? err;
  });
  if (!st) return { replaces: false };
  if (st.isDirectory())
    throw new JobFailure(
      `cannot write ${path}: a directory is in the way (EISDIR); move it away, then retry the migration`,
    );
  if (!st.isFile())
    throw new JobFailure(`cannot write ${path}: something other than a regular file is there; move it away`);
  const inside = relative(root, await realpath(path));
  if (inside.startsWith('..'))
    throw new JobFailure(
      `cannot write ${path}: it is a link to a file outside ${imagesDir}; remove the link`,
    );
  if (options.overwrite) return { replaces: true };
  const record = await readDeliveryRecord(recordsDir, path);
  if (record && record.size === st.size && record.mtimeMs === st.mtimeMs && record.ino === st.ino)
    return { replaces: true };
  // Recorded by this migration before a stop between recording and moving the image in: it was checked then.
  if (record?.migrationId === options.migrationId) return { replaces: true };
  throw new JobFailure(
    record
      ? `${path} changed since vmmig delivered it (migration ${record.migrationId}, ${record.at}): a VM may be using ` +
          'it. It was left as it is; to replace it, migrate again with --overwrite (API: "overwrite": true)'
      : `${path} exists and was not delivered by vmmig. It was left as it is; to replace it, migrate again with ` +
          '--overwrite (API: "overwrite": true), or move it away and retry',
  );
}

function escapes(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel.startsWith('..') || resolve(root, rel) !== path;
}

const REASONS: Record<string, string> = {
  EISDIR: 'a directory is in the way',
  ENOTDIR: 'a file is in the way of a directory on the path',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EFBIG: 'the file would be too large for the file system',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links',
};

/**
 * A JobFailure naming the path and the reason, when `err` is a local file-system error that retrying cannot cure;
 * undefined for anything else (transient errors keep their retries).
 */
export function permanentFsFailure(err: unknown): JobFailure | undefined {
  const e = err as (NodeJS.ErrnoException & { dest?: string }) | undefined;
  const reason = e?.code ? REASONS[e.code] : undefined;
  if (!reason || !e) return undefined;
  const where = e.dest ? `${e.path} → ${e.dest}` : (e.path ?? 'the image');
  return new JobFailure(`cannot write ${where}: ${reason} (${e.code}, ${e.syscall ?? 'file system'})`);
}

const BLOCK = 4096;
const ZEROS = Buffer.alloc(BLOCK);

/**
 * Writes `bytes` at `offset` leaving every all-zero 4 KiB block (aligned to the file) unwritten: in a file that
 * was created sparse those stay holes, so an image's zero runs take no disk space. Returns the bytes written.
 */
export async function writeSparse(
  file: { write(b: Buffer, o: number, l: number, p: number): Promise<unknown> },
  data: Uint8Array,
  offset: number,
): Promise<number> {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let written = 0;
  let runStart = -1;
  const flush = async (end: number) => {
    if (runStart < 0) return;
    await file.write(bytes, runStart, end - runStart, offset + runStart);
    written += end - runStart;
    runStart = -1;
  };
  // The first block boundary at or after `offset`, relative to the buffer.
  let at = 0;
  let next = Math.min(bytes.length, (BLOCK - (offset % BLOCK)) % BLOCK || BLOCK);
  while (at < bytes.length) {
    const whole = next - at === BLOCK;
    const zero = whole && bytes.compare(ZEROS, 0, BLOCK, at, next) === 0;
    if (zero) await flush(at);
    else if (runStart < 0) runStart = at;
    at = next;
    next = Math.min(bytes.length, at + BLOCK);
  }
  await flush(bytes.length);
  return written;
}

/** Disk space a file takes (its allocated blocks), or undefined where the platform does not say. */
export async function allocatedBytes(path: string): Promise<number | undefined> {
  const st = await stat(path).catch(() => undefined);
  return st && Number.isFinite(st.blocks) ? st.blocks * 512 : undefined;
}
