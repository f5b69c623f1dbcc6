// The destination's index of images it has delivered (one small JSON file per image id in `.vmmig/index/`): where
// each non-zero chunk of a delivered image sits on disk. A later download (a re-migration of a changed image, a
// clone of the same base) reads the chunks it needs from there instead of fetching them from the edge.
//
// The index is only a hint: a VM running on a delivered image changes it, the file may be replaced or removed. A
// chunk read from a local file is used only once its bytes hash to the digest the plan asks for (destination.ts).
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Images kept in the index; the oldest entries beyond it are removed. */
export const LOCAL_INDEX_LIMIT = 16;

export interface IndexedChunk {
  readonly offset: number;
  readonly length: number;
  readonly sha256: string;
}

export interface LocalIndexEntry {
  readonly imageId: string;
  /** The delivered file, as the manifest describes it (never a converted one). */
  readonly path: string;
  /** The file's size and mtime right after delivery: if either differs, the file was written since. */
  readonly size: number;
  readonly mtimeMs: number;
  /** Digest of the whole image as delivered. */
  readonly sha256: string;
  /** The non-zero chunks of the image. */
  readonly chunks: readonly IndexedChunk[];
}

/** Where a chunk with a given digest may be read locally. */
export interface LocalSource {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  /** False when the file changed since it was delivered: its chunks are likelier to fail verification. */
  readonly unchanged: boolean;
}

/** Candidate places per digest, unchanged files first; at most this many per digest. */
const SOURCES_PER_DIGEST = 3;

const isEntryFile = (name: string) => name.endsWith('.json');

/**
 * Records (or replaces) the entry of an image, written atomically (a temporary file, then a rename), then removes the
 * oldest entries beyond `limit` (oldest by the time their entry was written).
 */
export async function recordLocalImage(
  indexDir: string,
  entry: LocalIndexEntry,
  limit = LOCAL_INDEX_LIMIT,
): Promise<void> {
  await mkdir(indexDir, { recursive: true });
  const final = join(indexDir, `${entry.imageId}.json`);
  const tmp = `${final}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, final);
  } finally {
    await rm(tmp, { force: true });
  }
  await prune(indexDir, limit, final);
}

/** Removes an image's entry (its file was replaced by something the manifest does not describe). */
export async function forgetLocalImage(indexDir: string, imageId: string): Promise<void> {
  await rm(join(indexDir, `${imageId}.json`), { force: true });
}

async function prune(indexDir: string, limit: number, keep: string): Promise<void> {
  const names = (await readdir(indexDir).catch(() => [] as string[])).filter(isEntryFile);
  if (names.length <= limit) return;
  const dated = await Promise.all(
    names.map(async (name) => {
      const path = join(indexDir, name);
      const st = await stat(path).catch(() => undefined);
      return { path, at: path === keep ? Number.POSITIVE_INFINITY : (st?.mtimeMs ?? 0) };
    }),
  );
  dated.sort((a, b) => b.at - a.at || a.path.localeCompare(b.path));
  await Promise.all(dated.slice(limit).map((d) => rm(d.path, { force: true })));
}

/** Every readable entry whose file still exists, with whether that file is unchanged since delivery. */
export async function loadLocalIndex(
  indexDir: string,
): Promise<{ entry: LocalIndexEntry; unchanged: boolean }[]> {
  const names = (await readdir(indexDir).catch(() => [] as string[])).filter(isEntryFile);
  const loaded = await Promise.all(
    names.map(async (name) => {
      let entry: LocalIndexEntry;
      try {
        entry = JSON.parse(await readFile(join(indexDir, name), 'utf8')) as LocalIndexEntry;
        if (typeof entry.path !== 'string' || !Array.isArray(entry.chunks)) return undefined;
      } catch {
        return undefined; // unreadable or torn: ignored (it is only a hint)
      }
      const st = await stat(entry.path).catch(() => undefined);
      if (!st?.isFile()) return undefined;
      return { entry, unchanged: st.size === entry.size && st.mtimeMs === entry.mtimeMs };
    }),
  );
  return loaded.filter((x) => x !== undefined);
}

/** sha256 → places to read it from (unchanged files first). */
export function localSources(
  entries: readonly { entry: LocalIndexEntry; unchanged: boolean }[],
): Map<string, LocalSource[]> {
  const map = new Map<string, LocalSource[]>();
  const ordered = [...entries].sort((a, b) => Number(b.unchanged) - Number(a.unchanged));
  for (const { entry, unchanged } of ordered) {
    for (const c of entry.chunks) {
      const list = map.get(c.sha256);
      const source = { path: entry.path, offset: c.offset, length: c.length, unchanged };
      if (!list) map.set(c.sha256, [source]);
      else if (list.length < SOURCES_PER_DIGEST) list.push(source);
    }
  }
  return map;
}
