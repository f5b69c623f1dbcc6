// The destination's local index of delivered images: entries written atomically, bounded to the latest N, loaded
// only while their file exists, flagged when the file changed since delivery, unchanged files preferred.
import { appendFile, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  forgetLocalImage,
  type LocalIndexEntry,
  loadLocalIndex,
  localSources,
  recordLocalImage,
} from '../../../cli/agent/local-index.ts';

const digest = (n: number) => n.toString(16).padStart(64, '0');

describe('local index', () => {
  let dir: string;
  let indexDir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'local-index-'));
    indexDir = join(dir, 'index');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** A delivered file of `size` bytes and its entry, chunks of 10 bytes with digests base, base+1… */
  async function delivered(imageId: string, size: number, base: number): Promise<LocalIndexEntry> {
    const path = join(dir, imageId);
    await writeFile(path, Buffer.alloc(size, 7));
    const st = await stat(path);
    const chunks = Array.from({ length: size / 10 }, (_, i) => ({
      offset: i * 10,
      length: 10,
      sha256: digest(base + i),
    }));
    return { imageId, path, size: st.size, mtimeMs: st.mtimeMs, sha256: digest(999), chunks };
  }

  it('records an entry and loads it back while the file is unchanged', async () => {
    const e = await delivered('a.img', 30, 1);
    await recordLocalImage(indexDir, e);
    const loaded = await loadLocalIndex(indexDir);
    expect(loaded).toEqual([{ entry: e, unchanged: true }]);
    const map = localSources(loaded);
    expect(map.get(digest(2))).toEqual([{ path: e.path, offset: 10, length: 10, unchanged: true }]);
    expect(map.size).toBe(3);
  });

  it('no index directory: nothing to load', async () => {
    expect(await loadLocalIndex(join(dir, 'nowhere'))).toEqual([]);
  });

  it('skips entries whose file is gone, and torn or foreign files in the directory', async () => {
    const gone = await delivered('gone.img', 20, 1);
    const kept = await delivered('kept.img', 20, 100);
    await recordLocalImage(indexDir, gone);
    await recordLocalImage(indexDir, kept);
    await rm(gone.path);
    await writeFile(join(indexDir, 'torn.json'), '{"imageId":"torn","pa');
    await writeFile(join(indexDir, 'x.json.abc.tmp'), JSON.stringify(gone));
    const loaded = await loadLocalIndex(indexDir);
    expect(loaded.map((l) => l.entry.imageId)).toEqual(['kept.img']);
  });

  it('flags a file written since delivery (size or mtime), and prefers unchanged files for a shared digest', async () => {
    const grown = await delivered('grown.img', 20, 1);
    const touched = await delivered('touched.img', 20, 1); // same digests: clones of one base
    const clean = await delivered('clean.img', 20, 1);
    for (const e of [grown, touched, clean]) await recordLocalImage(indexDir, e);
    await appendFile(grown.path, 'x');
    await utimes(touched.path, new Date(), new Date(touched.mtimeMs + 5_000));
    const loaded = await loadLocalIndex(indexDir);
    const byId = Object.fromEntries(loaded.map((l) => [l.entry.imageId, l.unchanged]));
    expect(byId).toEqual({ 'grown.img': false, 'touched.img': false, 'clean.img': true });
    const sources = localSources(loaded).get(digest(1)) ?? [];
    expect(sources[0]).toMatchObject({ path: clean.path, unchanged: true });
    expect(sources.map((s) => s.unchanged)).toEqual([true, false, false]);
  });

  it('is bounded: only the latest N entries are kept, the oldest removed; re-recording an image replaces it', async () => {
    const entries: LocalIndexEntry[] = [];
    for (let i = 0; i < 6; i++) {
      entries.push(await delivered(`img-${i}`, 10, i * 10));
      await recordLocalImage(indexDir, entries[i] as LocalIndexEntry, 4);
      await new Promise((r) => setTimeout(r, 5)); // distinct entry mtimes
    }
    expect((await readdir(indexDir)).sort()).toEqual([
      'img-2.json',
      'img-3.json',
      'img-4.json',
      'img-5.json',
    ]);
    // img-2 delivered again: now the newest, so img-3 goes when the next image arrives.
    await recordLocalImage(indexDir, entries[2] as LocalIndexEntry, 4);
    await new Promise((r) => setTimeout(r, 5));
    await recordLocalImage(indexDir, await delivered('img-6', 10, 60), 4);
    expect((await readdir(indexDir)).sort()).toEqual([
      'img-2.json',
      'img-4.json',
      'img-5.json',
      'img-6.json',
    ]);
    await forgetLocalImage(indexDir, 'img-4');
    expect((await readdir(indexDir)).sort()).toEqual(['img-2.json', 'img-5.json', 'img-6.json']);
  });

  it('writes atomically: a reader never sees a partial entry, no temporary file is left, a failed write keeps the old entry', async () => {
    // Large enough (a few MiB) that a write in place would be seen half done.
    const base = await delivered('a.img', 20, 1);
    const big = (n: number): LocalIndexEntry => ({
      ...base,
      sha256: digest(n),
      chunks: Array.from({ length: 50_000 }, (_, i) => ({ offset: i * 10, length: 10, sha256: digest(i) })),
    });
    await recordLocalImage(indexDir, big(0));
    let writing = true;
    const seen: string[] = [];
    const reader = (async () => {
      while (writing) {
        const loaded = await loadLocalIndex(indexDir);
        expect(loaded).toHaveLength(1); // a torn entry would not parse and be skipped
        seen.push(loaded[0]?.entry.sha256 as string);
      }
    })();
    for (let n = 1; n <= 8; n++) await recordLocalImage(indexDir, big(n));
    writing = false;
    await reader;
    expect(seen.length).toBeGreaterThan(0);
    expect(await readdir(indexDir)).toEqual(['a.img.json']);
    // An entry that cannot be serialized fails before anything replaces the existing one.
    const circular = { ...base, chunks: [] as unknown[] } as unknown as LocalIndexEntry & {
      chunks: unknown[];
    };
    circular.chunks.push(circular);
    await expect(recordLocalImage(indexDir, circular)).rejects.toThrow();
    expect(await readdir(indexDir)).toEqual(['a.img.json']);
    expect((await loadLocalIndex(indexDir))[0]?.entry.sha256).toBe(digest(8));
  });
});
