// The destination end (draft §3.1 step 6): download every chunk through the edge in parallel (ranges of packs,
// fetch-chunks.ts), verify each digest and the whole image, write all-zero chunks as holes, hand the image to the
// "VM ready" hook, report. A chunk that an image delivered here earlier already holds (local-index.ts) is read from
// that file instead of fetched, once its bytes hash to the chunk's digest.
import { createHash } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mapLimit } from '../../lambdas/domain/concurrency.ts';
import {
  completeDestination,
  type DownloadPlan,
  failDestination,
  getDownloadPlan,
  type PlanChunk,
  type WorkItem,
} from '../../protocol/api/agent.ts';
import { type ChunkRepair, repairChunk } from '../../protocol/api/repair.ts';
import type { ImageFormat } from '../../protocol/image-format.ts';
import { ApiError } from '../client.ts';
import { type AgentOptions, JobFailure, paths } from './context.ts';
import { convertedPath, convertImage } from './convert.ts';
import { BufferPool, ChunkFetcher, type ChunkSource, fetchLength, planFetches } from './fetch-chunks.ts';
import { type HookEnv, runHook } from './hooks.ts';
import { Journal } from './journal.ts';
import {
  type IndexedChunk,
  type LocalSource,
  loadLocalIndex,
  localSources,
  recordLocalImage,
} from './local-index.ts';
import { allocatedBytes, checkPlace, permanentFsFailure, recordDelivery, writeSparse } from './placement.ts';
import { ProgressReporter } from './progress.ts';

interface Delivered {
  /** Digest of the image as received (before any conversion). */
  readonly sha256: string;
  readonly path: string;
  readonly format: ImageFormat;
  readonly hookDone: boolean;
  /** A file was at `path` before and was replaced. */
  readonly replaced?: boolean;
  /** Bytes taken from images already here instead of downloaded. */
  readonly bytesReused?: number;
  /** Bytes the run that wrote the image fetched through the edge (compressed). */
  readonly bytesFetched?: number;
}

/** Journal suffix of a chunk taken from an image already here (not downloaded). */
const TAKEN_LOCALLY = 'L';

/** Bytes read per step of the whole-image pass. */
const HASH_READ = 4 * 1024 * 1024;

/**
 * SHA-256 of a file as it is on disk, read through two buffers of HASH_READ that are reused from read to read (the
 * next read runs while this piece is hashed). A new buffer per read would make the pass allocate the file's size:
 * page faults for every piece, and garbage collections (external memory) every few tens of MiB.
 */
export async function sha256OfFile(path: string, signal?: AbortSignal): Promise<string> {
  signal?.throwIfAborted();
  const hash = createHash('sha256');
  const file = await open(path, 'r');
  const buffers = [Buffer.allocUnsafe(HASH_READ), Buffer.allocUnsafe(HASH_READ)] as const;
  let pending: Promise<{ bytesRead: number }> | undefined;
  try {
    let at = 0;
    let turn = 0;
    pending = file.read(buffers[0], 0, HASH_READ, at);
    for (;;) {
      const { bytesRead } = await pending;
      pending = undefined;
      signal?.throwIfAborted();
      if (bytesRead === 0) break;
      const piece = buffers[turn] as Buffer;
      at += bytesRead;
      turn ^= 1;
      pending = file.read(buffers[turn] as Buffer, 0, HASH_READ, at);
      hash.update(piece.subarray(0, bytesRead));
    }
    return hash.digest('hex');
  } finally {
    // A read still in flight (aborted, or the hash threw) must finish before its buffer and handle go.
    await pending?.catch(() => {});
    await file.close();
  }
}

export async function deliver(opts: AgentOptions, work: WorkItem, abort: AbortController): Promise<void> {
  const { client } = opts;
  const p = paths(opts.dir);
  const marker = p.delivered(work.migrationId);
  const params = { migrationId: work.migrationId, dataCenterId: opts.dataCenterId };
  const first = await client.call<DownloadPlan>(getDownloadPlan, { params, query: { limit: 500 } });
  const image = first.body.image;
  const target = first.body.targetFormat;
  // The image in the format asked for; a file of the other format there is never touched.
  const destination =
    target === image.format ? p.image(work.imageId) : convertedPath(p.image(work.imageId), target);
  const place = { overwrite: work.overwrite === true, migrationId: work.migrationId };
  const fail = async (reason: string) => {
    await client.call(failDestination, { params, json: { reason } });
    opts.log(`${work.migrationId}: destination failed: ${reason}`);
  };
  try {
    // Already written (and converted) by an earlier run that stopped before reporting? Then only the rest is left.
    // The marker is written before the rename: it counts only once the partial file is gone.
    let delivered = await readMarker(marker);
    if (
      !(
        delivered &&
        delivered.sha256 === image.sha256 &&
        !(await exists(p.incoming(work.migrationId))) &&
        (await exists(delivered.path))
      )
    ) {
      // Refused before a byte moves when the place is taken; checked again before the image is moved there.
      await checkPlace(p.images, p.deliveries, destination, place);
      const { bytesReused, bytesFetched, chunks } = await download(opts, work, first.body, abort);
      delivered = await putInPlace(opts, work, first.body, destination, place, { bytesReused, bytesFetched });
      // A converted image is not what the manifest describes: not indexed (an older entry for the image id
      // still describes the file of the manifest's format, which was left alone).
      if (delivered.format === image.format)
        await indexDelivered(opts, work, delivered.path, image.sha256, chunks);
    }
    if (!delivered.hookDone && opts.onReady) {
      await runHook('on-ready', opts.onReady, hookEnv(opts, work, delivered.path, delivered.format));
      delivered = { ...delivered, hookDone: true };
      await writeFile(marker, JSON.stringify(delivered));
    }
    const allocated = await allocatedBytes(delivered.path);
    await client.call(completeDestination, {
      params,
      json: {
        sha256: image.sha256,
        path: delivered.path,
        format: delivered.format,
        bytesReused: delivered.bytesReused ?? 0,
        ...(allocated !== undefined ? { allocatedBytes: allocated } : {}),
        ...(delivered.replaced ? { replaced: true } : {}),
        ...(delivered.bytesFetched !== undefined ? { bytesFetched: delivered.bytesFetched } : {}),
      },
    });
    opts.log(
      `${work.migrationId}: ${work.imageId} delivered to ${delivered.path} (${delivered.format}` +
        `${allocated !== undefined ? `, ${allocated} bytes allocated` : ''})${delivered.replaced ? ', replacing the file that was there' : ''}`,
    );
  } catch (err) {
    const permanent = permanentFsFailure(err);
    if (permanent) return fail(permanent.message);
    if (err instanceof JobFailure || (err instanceof Error && /hook/.test(err.message)))
      return fail(err.message);
    throw err;
  }
}

/**
 * Moves the verified part file (converted first, into a file aside, when another format was asked for) to
 * `destination`, once the place is checked again; records it as delivered here. The part file goes away last: a
 * stop before that does it all again (the journal makes the download itself a no-op).
 */
async function putInPlace(
  opts: AgentOptions,
  work: WorkItem,
  plan: DownloadPlan,
  destination: string,
  place: { overwrite: boolean; migrationId: string },
  moved: { bytesReused: number; bytesFetched: number },
): Promise<Delivered> {
  const p = paths(opts.dir);
  const part = p.incoming(work.migrationId);
  const { image, targetFormat } = plan;
  const { replaces } = await checkPlace(p.images, p.deliveries, destination, place);
  let ready = part;
  if (targetFormat !== image.format) {
    opts.log(`${work.migrationId}: converting ${image.format} to ${targetFormat}`);
    ready = `${part}.${targetFormat}`;
    await convertImage(part, image.format, targetFormat, ready);
  }
  const delivered: Delivered = {
    sha256: image.sha256,
    path: destination,
    format: targetFormat,
    hookDone: false,
    ...(replaces ? { replaced: true } : {}),
    ...moved,
  };
  // Marker first, then the record, then the rename: a stop in between finds the part file and does it again.
  await mkdir(dirname(p.delivered(work.migrationId)), { recursive: true });
  await writeFile(p.delivered(work.migrationId), JSON.stringify(delivered));
  await recordDelivery(p.deliveries, destination, work.migrationId, ready);
  await rename(ready, destination);
  if (ready !== part) await rm(part, { force: true });
  await rm(p.journal(work.migrationId, 'download'), { force: true });
  return delivered;
}

export function hookEnv(opts: AgentOptions, work: WorkItem, path: string, format: string): HookEnv {
  return {
    VMMIG_IMAGE_PATH: path,
    VMMIG_IMAGE_ID: work.imageId,
    VMMIG_IMAGE_FORMAT: format,
    VMMIG_VM_ID: work.vmId,
    VMMIG_HOST_ID: work.hostId,
    VMMIG_MIGRATION_ID: work.migrationId,
    VMMIG_DATA_CENTER_ID: opts.dataCenterId,
  };
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

const readMarker = (path: string) =>
  readFile(path, 'utf8').then(
    (t) => JSON.parse(t) as Delivered,
    () => undefined,
  );

async function download(
  opts: AgentOptions,
  work: WorkItem,
  firstPage: DownloadPlan,
  abort: AbortController,
): Promise<{ bytesReused: number; bytesFetched: number; chunks: IndexedChunk[] }> {
  const { client } = opts;
  const p = paths(opts.dir);
  const params = { migrationId: work.migrationId, dataCenterId: opts.dataCenterId };
  const image = firstPage.image;
  const part = p.incoming(work.migrationId);
  await mkdir(dirname(part), { recursive: true });
  const journalPath = p.journal(work.migrationId, 'download');
  let log = await Journal.open(journalPath);
  const fresh = !(await stat(part).catch(() => undefined));
  if (fresh && log.size > 0) {
    // The journal describes a partial file that is gone: start over.
    await log.remove();
    log = await Journal.open(journalPath);
  }
  const file = await open(part, fresh ? 'w+' : 'r+');
  const progress = new ProgressReporter(
    client,
    work.migrationId,
    { role: 'destination', dataCenterId: opts.dataCenterId },
    'downloading',
    abort,
    image.size,
  );
  /** Chunks this run read from images delivered here earlier, and those whose local bytes failed verification. */
  let taken = 0;
  let mismatched = 0;
  /** Bytes of the image taken from images here, by this run and earlier ones (the journal says which). */
  let reused = 0;
  /** The image's non-zero chunks by index, for its own index entry once it is delivered. */
  const planned = new Map<number, IndexedChunk>();
  const local = localSources(await loadLocalIndex(p.localIndex).catch(() => []));
  const handles = new Map<string, Promise<FileHandle | undefined>>();
  const localFile = (path: string) => {
    let h = handles.get(path);
    if (!h) {
      h = open(path, 'r').catch(() => undefined);
      handles.set(path, h);
    }
    return h;
  };
  const closeLocalFiles = async () => {
    const all = [...handles.values()];
    handles.clear();
    await Promise.all(all.map(async (h) => (await h)?.close().catch(() => {})));
  };
  const buffers = new BufferPool(opts.concurrency);
  /**
   * Reads the chunk from an image delivered here earlier and writes it to the part file if, and only if, those
   * bytes hash to the chunk's digest. False when no local copy verified (then it is fetched).
   */
  const takeLocal = async (chunk: PlanChunk): Promise<boolean> => {
    const sources: LocalSource[] = (local.get(chunk.sha256) ?? []).filter((s) => s.length === chunk.length);
    if (sources.length === 0) return false;
    const buf = buffers.take(chunk.length);
    try {
      for (const source of sources) {
        const fh = await localFile(source.path);
        if (!fh) continue;
        abort.signal.throwIfAborted();
        const { bytesRead } = await fh
          .read(buf, 0, chunk.length, source.offset)
          .catch(() => ({ bytesRead: -1 }));
        const bytes = buf.subarray(0, chunk.length);
        if (bytesRead !== chunk.length || createHash('sha256').update(bytes).digest('hex') !== chunk.sha256) {
          mismatched++;
          continue;
        }
        await writeSparse(file, bytes, chunk.offset);
        taken++;
        return true;
      }
      return false;
    } finally {
      buffers.give(buf);
    }
  };
  const repair = async (chunk: PlanChunk, what: string): Promise<ChunkSource> => {
    try {
      const { body } = await client.call<ChunkRepair>(repairChunk, {
        params,
        json: { sha256: chunk.sha256 },
        signal: abort.signal,
      });
      opts.log(
        `${work.migrationId}: ${what} ${body.status === 'repaired' ? `copied again from cache node ${body.repairedFrom}` : 'is intact at the cache node: damaged on the way'}; fetching it again`,
      );
      return { url: body.url, part: body.part };
    } catch (err) {
      if (err instanceof ApiError && err.status === 409)
        throw new JobFailure(`chunk ${chunk.index} cannot be repaired: ${err.message}`);
      throw err;
    }
  };
  const fetcher = new ChunkFetcher({
    signal: abort.signal,
    // Local reads are no network traffic: only fetches wait for --limit-download.
    limiter: opts.limits?.download,
    buffers,
    write: async (chunk, bytes) => {
      // Zero runs inside the chunk stay holes, as whole zero chunks do.
      await writeSparse(file, bytes, chunk.offset);
      progress.add(chunk.length);
      await log.add(String(chunk.index));
    },
    repair,
    onWire: (bytes) => progress.addWire(bytes),
    log: (line) => opts.log(`${work.migrationId}: ${line}`),
  });
  try {
    // A sparse file of the final size: chunks that are all zeros are never written, they stay holes.
    await file.truncate(image.size);
    let page: DownloadPlan | undefined = firstPage;
    while (page) {
      const items: PlanChunk[] = page.items;
      for (const chunk of items) {
        if (chunk.zero) continue;
        planned.set(chunk.index, { offset: chunk.offset, length: chunk.length, sha256: chunk.sha256 });
      }
      // What needs no network first: chunks done by an earlier run (the journal), holes, and chunks an image here
      // holds. The rest is fetched, in plan order so that neighbours in a pack share a GET.
      const remote = new Set<number>();
      await mapLimit(items, opts.concurrency, async (chunk) => {
        if (log.has(String(chunk.index))) {
          progress.add(chunk.zero ? 0 : chunk.length);
          return;
        }
        if (log.has(`${chunk.index}${TAKEN_LOCALLY}`)) {
          progress.add(chunk.length);
          reused += chunk.length;
          return;
        }
        if (chunk.zero) {
          await log.add(String(chunk.index));
          return;
        }
        if (await takeLocal(chunk)) {
          progress.add(chunk.length);
          reused += chunk.length;
          await log.add(`${chunk.index}${TAKEN_LOCALLY}`);
          return;
        }
        remote.add(chunk.index);
      });
      const units = planFetches(items.filter((chunk) => remote.has(chunk.index)));
      for (const unit of units) buffers.expect(unit.kind === 'run' ? unit.length : fetchLength(unit.chunk));
      const retryWithFreshUrls: PlanChunk[] = [];
      await mapLimit(units, opts.concurrency, async (unit) => {
        retryWithFreshUrls.push(...(await fetcher.fetch(unit)));
      });
      if (retryWithFreshUrls.length > 0) {
        // Ask for the page again from the first chunk refused: its URLs are re-signed; verified chunks are skipped
        // via the journal.
        const from = Math.min(...retryWithFreshUrls.map((chunk) => chunk.index));
        const again = await client.call<DownloadPlan>(getDownloadPlan, {
          params,
          query: { limit: 500, cursor: String(from) },
        });
        page = again.body;
        continue;
      }
      page = page.nextCursor
        ? (
            await client.call<DownloadPlan>(getDownloadPlan, {
              params,
              query: { limit: 500, cursor: page.nextCursor },
            })
          ).body
        : undefined;
    }
    await closeLocalFiles();
    await file.sync();
    progress.phase = 'verifying';
    const digest = await sha256OfFile(part, abort.signal);
    if (digest !== image.sha256) {
      await log.remove();
      await rm(part, { force: true });
      throw new JobFailure(`the image written hashes to ${digest}, not ${image.sha256}; it was discarded`);
    }
    // The part file and its journal stay until the image is in place (putInPlace).
    opts.log(
      `${work.migrationId}: download complete (${fetcher.chunks} chunks fetched by this run in ` +
        `${fetcher.wireBytes} bytes, ${taken} taken from local images` +
        `${mismatched > 0 ? `, ${mismatched} local copies failed verification` : ''})`,
    );
    return { bytesReused: reused, bytesFetched: fetcher.wireBytes, chunks: [...planned.values()] };
  } finally {
    await closeLocalFiles();
    progress.stop();
    await file.close().catch(() => {});
    await log.close().catch(() => {});
  }
}

/**
 * Records the delivered image in the local index, so later downloads here can take its chunks. Only a file with the
 * manifest's bytes is indexed (never a converted one). The index is a hint: failing to write it does not fail the
 * delivery.
 */
async function indexDelivered(
  opts: AgentOptions,
  work: WorkItem,
  path: string,
  sha256: string,
  chunks: IndexedChunk[],
): Promise<void> {
  const dir = paths(opts.dir).localIndex;
  try {
    const st = await stat(path);
    chunks.sort((a, b) => a.offset - b.offset);
    await recordLocalImage(dir, {
      imageId: work.imageId,
      path,
      size: st.size,
      mtimeMs: st.mtimeMs,
      sha256,
      chunks,
    });
  } catch (err) {
    opts.log(`${work.migrationId}: could not index ${path} for later downloads: ${(err as Error).message}`);
  }
}
