// The source end (draft §3.1 steps 1 and 5): chunk the image and send its manifest, then upload only the
// chunks no cache node holds, compressed and grouped in packs (pack-upload.ts), resuming after a crash with what is
// still missing.
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  completeUpload,
  createManifestUploadUrl,
  listUploadChunks,
  submitManifest,
  type UploadChunk,
  type WorkItem,
} from '../../protocol/api/agent.ts';
import { formatBytes } from '../../protocol/bytes.ts';
import { chunkFile, chunkingFor, collectChunks } from '../../protocol/chunker.ts';
import { buildManifest, type Manifest, parseManifest, serializeManifest } from '../../protocol/manifest.ts';
import { type AgentOptions, JobFailure, paths } from './context.ts';
import { Journal } from './journal.ts';
import { inspectImage } from './local-jobs.ts';
import { PackUploader } from './pack-upload.ts';
import { ProgressReporter } from './progress.ts';
import { putObject } from './transfer.ts';

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
  // As the image was chunked before (the server says), so what the cache nodes hold of it is reused; else the
  // default for its size.
  const chunking = work.chunking ?? chunkingFor(st.size);
  const chunker = chunkFile(image, { ...chunking, ...(signal ? { signal } : {}) });
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

/** Chunks asked for per page of the upload plan. */
const PLAN_PAGE = 500;
/** Rounds of "complete → some chunks are missing → send them again" before the job gives up. */
const MAX_ROUNDS = 6;

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
  const file = await open(image, 'r');
  // What an earlier run already sent counts as done.
  for (const c of new Map(manifest.chunks.map((c) => [c.sha256, c.length])))
    if (journal.has(c[0])) progress.add(c[1]);
  /** The chunk's bytes from the image, which must still be what was chunked. */
  const read = async (c: UploadChunk): Promise<Uint8Array> => {
    const buf = Buffer.allocUnsafe(c.length);
    const { bytesRead } = await file.read(buf, 0, c.length, c.offset);
    const digest = createHash('sha256').update(buf.subarray(0, bytesRead)).digest('hex');
    if (bytesRead !== c.length || digest !== c.sha256) {
      throw new JobFailure(
        `image ${work.imageId} changed since it was chunked (chunk at offset ${c.offset} differs)`,
      );
    }
    return buf;
  };
  const uploader = new PackUploader({
    client,
    migrationId: work.migrationId,
    read,
    concurrency: opts.concurrency,
    limiter: opts.limits?.upload,
    signal: abort.signal,
    log: opts.log,
    verified: async (pack) => {
      for (const e of pack.entries) await journal.add(e.sha256);
      progress.add(pack.rawBytes, pack.entries.length);
      progress.addWire(pack.bytes.length);
    },
  });
  try {
    for (let round = 0; ; round++) {
      let cursor: string | undefined;
      do {
        const page = await client.call<{ items: UploadChunk[]; nextCursor?: string }>(listUploadChunks, {
          params: { migrationId: work.migrationId },
          query: { limit: PLAN_PAGE, ...(cursor ? { cursor } : {}) },
        });
        await uploader.add(page.body.items.filter((c) => !journal.has(c.sha256)));
        cursor = page.body.nextCursor;
      } while (cursor);
      const sent = await uploader.finish();
      const st = await stat(image);
      if (st.mtimeMs !== mtimeMs)
        throw new JobFailure(`image ${work.imageId} was modified during the upload`);
      // The server checks every planned chunk is indexed at the source node; 202 = still checking, 409 = some
      // are not (a rejected pack, a report lost, a chunk the collector took meanwhile).
      const outcome = await awaitCompletion(opts, work.migrationId, abort.signal);
      if (outcome === 'complete') {
        opts.log(
          `${work.migrationId}: upload complete (this run sent ${sent.chunks} chunks in ${sent.packs} packs: ` +
            `${formatBytes(sent.rawBytes)} of chunks as ${formatBytes(sent.wireBytes)})`,
        );
        return;
      }
      if (outcome === 'not awaited') return;
      const { missing } = outcome;
      if (round + 1 >= MAX_ROUNDS)
        throw new JobFailure(`${missing.length} chunks still not stored after ${round + 1} rounds`);
      opts.log(`${work.migrationId}: ${missing.length} chunks not stored; sending them again`);
      journal.forget(missing);
    }
  } finally {
    await uploader.settle();
    progress.stop();
    await file.close();
    await journal.close();
  }
}

/**
 * Asks the server to complete the upload, again while it is still checking. `not awaited`: the workflow moved on,
 * or the migration ended; nothing to send, the next poll says what is wanted now.
 */
async function awaitCompletion(
  opts: AgentOptions,
  migrationId: string,
  signal: AbortSignal,
): Promise<'complete' | 'not awaited' | { missing: string[] }> {
  for (;;) {
    const res = await opts.client.call<{
      status?: string;
      remaining?: number;
      error?: { message?: string; missing?: string[] };
    }>(completeUpload, { params: { migrationId } }, [409]);
    if (res.status === 200) return 'complete';
    if (res.status === 202) {
      await sleep(1000, undefined, { signal });
      continue;
    }
    const missing = res.body.error?.missing;
    if (missing) return { missing };
    opts.log(`${migrationId}: upload no longer awaited (${res.body.error?.message ?? 'conflict'})`);
    return 'not awaited';
  }
}

export { manifestFor };
