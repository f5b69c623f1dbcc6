// The source end (draft §3.1 steps 1 and 5): chunk the image and send its manifest, then upload only the
// chunks no cache node holds, in parallel, resuming after a crash with what is still missing.
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mapLimit } from '../../lambdas/domain/concurrency.ts';
import {
  completeUpload,
  createManifestUploadUrl,
  listUploadUrls,
  reportStoredChunks,
  submitManifest,
  type UploadUrl,
  type WorkItem,
} from '../../protocol/api/agent.ts';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';
import { buildManifest, type Manifest, parseManifest, serializeManifest } from '../../protocol/manifest.ts';
import type { ApiClient } from '../client.ts';
import { type AgentOptions, JobFailure, paths } from './context.ts';
import { Journal } from './journal.ts';
import { inspectImage } from './local-jobs.ts';
import { ProgressReporter } from './progress.ts';
import { putChunk, putObject, UrlExpired } from './transfer.ts';

interface CachedManifest {
  readonly size: number;
  readonly mtimeMs: number;
  readonly manifest: Manifest;
}

/** The image's manifest, chunked once per migration and kept so a restart does not chunk again. */
async function manifestFor(
  opts: AgentOptions,
  work: WorkItem,
  progress?: ProgressReporter,
  signal?: AbortSignal,
) {
  const p = paths(opts.dir);
  const image = p.image(work.imageId);
  const st = await stat(image).catch(() => undefined);
  if (!st?.isFile()) throw new JobFailure(`image ${work.imageId} is not in ${p.images}`);
  const cacheFile = p.manifest(work.migrationId);
  try {
    const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as CachedManifest;
    if (cached.size === st.size && cached.mtimeMs === st.mtimeMs) {
      const parsed = parseManifest(JSON.stringify(cached.manifest));
      if (parsed.ok) return { image, manifest: parsed.manifest, mtimeMs: st.mtimeMs };
    }
  } catch {
    // not cached yet
  }
  const format = await inspectImage(image, work.imageId);
  opts.log(`${work.migrationId}: chunking ${work.imageId} (${format}, ${st.size} bytes)`);
  const chunker = chunkFile(image, signal ? { signal } : {});
  const watched = (async function* () {
    for (;;) {
      const r = await chunker.next();
      if (r.done) return r.value;
      progress?.add(r.value.length);
      yield r.value;
    }
  })();
  const chunked = await collectChunks(watched);
  const after = await stat(image);
  if (after.size !== st.size || after.mtimeMs !== st.mtimeMs) {
    throw new JobFailure(
      `image ${work.imageId} changed while it was being chunked: stop writing to it and retry`,
    );
  }
  const manifest = buildManifest(format, chunked);
  await mkdir(dirname(cacheFile), { recursive: true });
  await writeFile(
    `${cacheFile}.tmp`,
    JSON.stringify({ size: st.size, mtimeMs: st.mtimeMs, manifest } satisfies CachedManifest),
  );
  await rename(`${cacheFile}.tmp`, cacheFile);
  return { image, manifest, mtimeMs: st.mtimeMs };
}

export async function provideManifest(
  opts: AgentOptions,
  work: WorkItem,
  abort: AbortController,
): Promise<void> {
  const { client } = opts;
  const progress = new ProgressReporter(
    client,
    work.migrationId,
    { role: 'source', dataCenterId: opts.dataCenterId },
    'chunking',
    abort,
  );
  try {
    const { manifest } = await manifestFor(opts, work, progress, abort.signal);
    const body = serializeManifest(manifest);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const size = Buffer.byteLength(body);
    const target = await client.call<{ url: string; headers: Record<string, string> }>(
      createManifestUploadUrl,
      {
        params: { migrationId: work.migrationId },
        json: { sha256, size },
      },
    );
    // Retried with backoff like a chunk: a storage hiccup must not fail the job (and chunk the image again).
    await putObject('manifest upload', target.body.url, target.body.headers, Buffer.from(body), abort.signal);
    const accepted = await client.call<{ chunks: number; uniqueChunks: number }>(submitManifest, {
      params: { migrationId: work.migrationId },
      json: { sha256, size },
    });
    opts.log(
      `${work.migrationId}: manifest accepted (${accepted.body.chunks} chunks, ${accepted.body.uniqueChunks} distinct)`,
    );
  } finally {
    progress.stop();
  }
}

/** At most this long between a chunk being stored and its report (so a takeover or restart sees it indexed). */
const REPORT_INTERVAL_MS = 2000;

/** Reports stored chunks in batches, so the server verifies and indexes them while the upload goes on. */
class StoredReporter {
  private pending: string[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly client: ApiClient,
    private readonly migrationId: string,
  ) {}
  add(sha256: string): void {
    this.pending.push(sha256);
    if (this.pending.length >= 100) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), REPORT_INTERVAL_MS);
  }
  stop(): void {
    clearTimeout(this.timer);
  }
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending.splice(0, 1000);
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      await this.client
        .call(reportStoredChunks, { params: { migrationId: this.migrationId }, json: { sha256: batch } })
        .catch(() => {}); // the completion check verifies everything anyway
    });
    return this.flushing;
  }
}

export async function uploadMissing(
  opts: AgentOptions,
  work: WorkItem,
  abort: AbortController,
): Promise<void> {
  const { client } = opts;
  const { image, manifest, mtimeMs } = await manifestFor(opts, work, undefined, abort.signal);
  const journal = await Journal.open(paths(opts.dir).journal(work.migrationId, 'upload'));
  const progress = new ProgressReporter(
    client,
    work.migrationId,
    { role: 'source', dataCenterId: opts.dataCenterId },
    'uploading',
    abort,
  );
  const stored = new StoredReporter(client, work.migrationId);
  const file = await open(image, 'r');
  // What an earlier run already sent counts as done.
  for (const c of new Map(manifest.chunks.map((c) => [c.sha256, c.length])))
    if (journal.has(c[0])) progress.add(c[1]);
  let sent = 0;
  try {
    for (let round = 0; ; round++) {
      let cursor: string | undefined;
      do {
        const page = await client.call<{ items: UploadUrl[]; nextCursor?: string }>(listUploadUrls, {
          params: { migrationId: work.migrationId },
          query: { limit: 200, ...(cursor ? { cursor } : {}) },
        });
        const todo = page.body.items.filter((u) => !journal.has(u.sha256));
        await mapLimit(todo, opts.concurrency, async (u) => {
          const buf = Buffer.allocUnsafe(u.length);
          const { bytesRead } = await file.read(buf, 0, u.length, u.offset);
          const digest = createHash('sha256').update(buf.subarray(0, bytesRead)).digest('hex');
          if (bytesRead !== u.length || digest !== u.sha256) {
            throw new JobFailure(
              `image ${work.imageId} changed since it was chunked (chunk at offset ${u.offset} differs)`,
            );
          }
          await opts.limits?.upload?.take(u.length, abort.signal);
          try {
            await putChunk(u.url, u.headers, buf, abort.signal);
          } catch (err) {
            if (err instanceof UrlExpired) return; // picked up again with a fresh URL in the next round
            throw err;
          }
          await journal.add(u.sha256);
          stored.add(u.sha256);
          progress.add(u.length);
          sent++;
        });
        cursor = page.body.nextCursor;
      } while (cursor);
      await stored.flush();
      const st = await stat(image);
      if (st.mtimeMs !== mtimeMs)
        throw new JobFailure(`image ${work.imageId} was modified during the upload`);
      // The server checks every planned chunk is stored intact; 202 = still checking, 409 = some are not.
      for (;;) {
        const res = await client.call<{
          status?: string;
          remaining?: number;
          error?: { message?: string; missing?: string[] };
        }>(completeUpload, { params: { migrationId: work.migrationId } }, [409]);
        if (res.status === 200) {
          opts.log(`${work.migrationId}: upload complete (${sent} chunks sent by this run)`);
          return;
        }
        if (res.status === 202) {
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        const missing = res.body.error?.missing;
        if (!missing) {
          // A 409 without a list: the workflow is not waiting for this upload any more (it moved on, or the
          // migration ended). Nothing to send; the next poll says what is wanted now.
          opts.log(
            `${work.migrationId}: upload no longer awaited (${res.body.error?.message ?? 'conflict'})`,
          );
          return;
        }
        if (round >= 5)
          throw new JobFailure(`${missing.length} chunks still not stored after ${round + 1} rounds`);
        opts.log(`${work.migrationId}: ${missing.length} chunks not stored; sending them again`);
        journal.forget(missing);
        break;
      }
    }
  } finally {
    stored.stop();
    progress.stop();
    await file.close();
    await journal.close();
  }
}

export { manifestFor };
