// An append-only journal of finished units (chunk digests or indexes), so a restarted agent skips them.
// A line is appended only after its unit is durable at the other end, so at most the units in flight at a
// crash are done twice.
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export class Journal {
  private constructor(
    private readonly path: string,
    private readonly done: Set<string>,
    private readonly file: import('node:fs/promises').FileHandle,
  ) {}

  static async open(path: string): Promise<Journal> {
    await mkdir(dirname(path), { recursive: true });
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // A torn last line (crash mid-write) is simply not counted.
    const lines = text.split('\n');
    if (!text.endsWith('\n')) lines.pop();
    return new Journal(path, new Set(lines.filter(Boolean)), await open(path, 'a'));
  }

  has(entry: string): boolean {
    return this.done.has(entry);
  }

  get size(): number {
    return this.done.size;
  }

  async add(entry: string): Promise<void> {
    if (this.done.has(entry)) return;
    this.done.add(entry);
    await this.file.appendFile(`${entry}\n`);
  }

  /** Forgets entries (their units turned out not to be durable after all). */
  forget(entries: Iterable<string>): void {
    for (const e of entries) this.done.delete(e);
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  async remove(): Promise<void> {
    await this.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}
