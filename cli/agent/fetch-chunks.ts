// How a destination fetches its chunks from the edge (DESIGN §3). Chunks stored next to each other in a pack are
// fetched together, with one range GET (a run of at most MAX_RUN_BYTES), then cut apart, decoded and checked one
// by one; a chunk stored alone (before packs) is fetched whole, hashed as it streams in. What fails (a chunk that
// does not decode or hash right, a run the edge refuses or answers with other bytes) is taken chunk by chunk
// through repair: the cache node's copy is checked and copied again if it is bad, and the chunk fetched again from
// where the repair says it is. A byte reaches the image only as part of a chunk whose digest was checked.
import type { PlanChunk, StoredPart } from '../../protocol/api/agent.ts';
import { openChunk } from '../../protocol/pack.ts';
import { JobFailure } from './context.ts';
import type { RateLimiter } from './rate-limit.ts';
import { ChunkNotFound, getChunk, getRange, UrlExpired, WrongLength } from './transfer.ts';

/**
 * A run is at most this long (its chunks and the gaps between them): a few round trips' worth of bytes at WAN
 * speeds, while a buffer per transfer in flight stays small. A chunk longer than that is a run of its own.
 */
export const MAX_RUN_BYTES = 4 * 1024 * 1024;
/**
 * Chunks of a pack this close are fetched in one GET, the bytes between them (chunks this download does not need)
 * fetched and dropped: cheaper than another request's round trip.
 */
export const MAX_RUN_GAP = 64 * 1024;
/** Fetches of one chunk (a run's counts as its first) before the download gives up on it. */
export const MAX_CHUNK_ATTEMPTS = 3;
/** A chunk still refused (403) after this many fresh URLs is treated as missing: repaired, not re-signed again. */
export const MAX_FRESH_URLS = 3;

/** A plan item that is a range of a pack. */
export type PackedChunk = PlanChunk & { readonly url: string; readonly part: StoredPart };

/** One GET's worth of work: a run of chunks of one pack, or a chunk stored alone. */
export type FetchUnit =
  | {
      readonly kind: 'run';
      readonly url: string;
      /** Bytes [start, start + length) of the pack: from the first chunk's first byte to the last one's last. */
      readonly start: number;
      readonly length: number;
      readonly chunks: readonly PackedChunk[];
    }
  | { readonly kind: 'whole'; readonly chunk: PlanChunk };

/**
 * Groups plan items (non-zero, in plan order) into fetches: consecutive items of one pack (the same URL: the plan
 * signs each object once per page) whose ranges follow each other, with at most `maxGap` bytes between them,
 * join a run while it stays within `maxBytes`. An item stored alone is fetched whole and leaves the run open.
 */
export function planFetches(
  chunks: readonly PlanChunk[],
  limits: { readonly maxBytes: number; readonly maxGap: number } = {
    maxBytes: MAX_RUN_BYTES,
    maxGap: MAX_RUN_GAP,
  },
): FetchUnit[] {
  const units: FetchUnit[] = [];
  let run: { url: string; start: number; end: number; chunks: PackedChunk[] } | undefined;
  const close = () => {
    if (run) units.push(runOf(run.chunks));
    run = undefined;
  };
  for (const chunk of chunks) {
    const { part, url } = chunk;
    if (part === undefined || url === undefined) {
      units.push({ kind: 'whole', chunk });
      continue;
    }
    const packed = chunk as PackedChunk;
    const end = part.offset + part.length;
    if (
      run &&
      run.url === url &&
      part.offset >= run.end &&
      part.offset - run.end <= limits.maxGap &&
      end - run.start <= limits.maxBytes
    ) {
      run.chunks.push(packed);
      run.end = end;
      continue;
    }
    close();
    run = { url, start: part.offset, end, chunks: [packed] };
  }
  close();
  return units;
}

/** The run covering these chunks of one pack (in the order of their ranges). */
function runOf(chunks: readonly PackedChunk[]): FetchUnit & { kind: 'run' } {
  const first = chunks[0];
  const last = chunks[chunks.length - 1];
  if (!first || !last) throw new RangeError('an empty run');
  const start = first.part.offset;
  return {
    kind: 'run',
    url: first.url,
    start,
    length: last.part.offset + last.part.length - start,
    chunks,
  };
}

/**
 * Download buffers, reused from fetch to fetch (one per transfer in flight): a new buffer for every chunk costs page
 * faults and garbage collection on every chunk. Each is as long as the longest fetch announced so far (expect), so
 * it fits the fetches after it.
 */
export class BufferPool {
  private readonly spare: Buffer[] = [];
  private longest = 0;
  constructor(private readonly keep: number) {}

  expect(length: number): void {
    if (length > this.longest) this.longest = length;
  }
  take(length: number): Buffer {
    const i = this.spare.findIndex((b) => b.length >= length);
    return i >= 0
      ? (this.spare.splice(i, 1)[0] as Buffer)
      : Buffer.allocUnsafe(Math.max(length, this.longest));
  }
  give(buf: Buffer): void {
    if (this.spare.length < this.keep) this.spare.push(buf);
  }
}

/** Where to fetch a chunk from: the plan's answer, or a repair's. */
export interface ChunkSource {
  readonly url: string;
  /** The chunk is this range of the object at url; absent: the whole object, raw. */
  readonly part?: StoredPart | undefined;
}

export interface FetchDeps {
  readonly signal: AbortSignal;
  /** --limit-download: wire bytes are taken from it before each GET. */
  readonly limiter?: RateLimiter | undefined;
  readonly buffers: BufferPool;
  /** Writes a verified chunk to the image and records it done. `bytes` may be a view of a reused buffer. */
  write(chunk: PlanChunk, bytes: Uint8Array): Promise<void>;
  /** Has the cache node's copy checked (copied again where it is bad): where to fetch the chunk from now. */
  repair(chunk: PlanChunk, what: string): Promise<ChunkSource>;
  /** Bytes received from the edge, as they crossed the network (stored bytes, gaps between chunks included). */
  onWire?(bytes: number): void;
  log(line: string): void;
}

/** A buffer held by one fetch job, replaced by a longer one when a fetch needs more room. */
interface Lease {
  buf: Buffer;
}

const describe = (chunk: PlanChunk) =>
  `chunk ${chunk.index} (offset ${chunk.offset}, sha256 ${chunk.sha256})`;

export class ChunkFetcher {
  /** Chunks fetched by this run (one fetched again counts again). */
  chunks = 0;
  /** Bytes received from the edge by this run. */
  wireBytes = 0;
  /** Chunk index → fresh URLs asked for it after a 403. */
  private readonly freshUrls = new Map<number, number>();

  constructor(private readonly d: FetchDeps) {}

  /**
   * Fetches, verifies and writes every chunk of a unit. Returns the chunks refused with an expired URL (for which
   * fresh URLs may still be asked: the caller asks for their page again); throws JobFailure for a chunk that stays
   * wrong after MAX_CHUNK_ATTEMPTS fetches or cannot be repaired.
   */
  async fetch(unit: FetchUnit): Promise<PlanChunk[]> {
    const lease: Lease = {
      buf: this.d.buffers.take(unit.kind === 'run' ? unit.length : fetchLength(unit.chunk)),
    };
    try {
      return unit.kind === 'run'
        ? await this.fetchRun(unit, lease, true)
        : await this.fetchAlone(unit.chunk, lease);
    } finally {
      this.d.buffers.give(lease.buf);
    }
  }

  private async fetchRun(
    run: FetchUnit & { kind: 'run' },
    lease: Lease,
    mayRetry: boolean,
  ): Promise<PlanChunk[]> {
    let bytes: Uint8Array;
    try {
      await this.d.limiter?.take(run.length, this.d.signal);
      bytes = await getRange(run.url, run.start, run.length, this.d.signal, this.room(lease, run.length));
    } catch (err) {
      if (err instanceof UrlExpired) return this.refused(run.chunks, lease);
      let problem: string;
      if (err instanceof WrongLength)
        problem = `was in a range of its pack answered with other bytes (${err.message})`;
      else if (err instanceof ChunkNotFound) problem = 'is not at the cache node';
      else throw err;
      // The first chunk is repaired (its pack checked, copied again when bad: that usually brings the others back
      // too); the rest is tried once more as a run, then chunk by chunk.
      const [first, ...rest] = run.chunks;
      const again = first ? await this.fetchAlone(first, lease, problem) : [];
      if (rest.length === 0) return again;
      if (mayRetry) return [...again, ...(await this.fetchRun(runOf(rest), lease, false))];
      for (const chunk of rest) again.push(...(await this.fetchAlone(chunk, lease)));
      return again;
    }
    this.received(run.length, run.chunks.length);
    const failed: PackedChunk[] = [];
    for (const chunk of run.chunks) {
      const at = chunk.part.offset - run.start;
      const out = await openChunk(bytes.subarray(at, at + chunk.part.length), {
        sha256: chunk.sha256,
        length: chunk.length,
        encoding: chunk.part.encoding,
      });
      if (out) await this.d.write(chunk, out);
      else failed.push(chunk);
    }
    // The run's buffer is free again: the chunks that failed are fetched alone through it.
    const again: PlanChunk[] = [];
    for (const chunk of failed) again.push(...(await this.fetchAlone(chunk, lease, unverified(chunk.part))));
    return again;
  }

  /** Chunks whose URL was refused: asked for again with fresh URLs, or (too many refusals) repaired. */
  private async refused(chunks: readonly PlanChunk[], lease: Lease): Promise<PlanChunk[]> {
    const again: PlanChunk[] = [];
    for (const chunk of chunks) {
      const resigned = this.freshUrls.get(chunk.index) ?? 0;
      if (resigned < MAX_FRESH_URLS) {
        this.freshUrls.set(chunk.index, resigned + 1);
        again.push(chunk);
      } else {
        again.push(...(await this.fetchAlone(chunk, lease, `is refused (403) with ${resigned} fresh URLs`)));
      }
    }
    return again;
  }

  /**
   * One chunk on its own: fetched, verified, written; repaired and fetched again while it fails. `problem`: what
   * went wrong with a fetch of it already made (it counts as the first; the repair comes first).
   */
  private async fetchAlone(chunk: PlanChunk, lease: Lease, problem?: string): Promise<PlanChunk[]> {
    let source: ChunkSource = { url: chunk.url as string, part: chunk.part };
    for (let attempt = 1; ; attempt++) {
      if (problem === undefined) {
        try {
          const out = await this.fetchOne(chunk, source, lease);
          if (typeof out !== 'string') {
            await this.d.write(chunk, out);
            return [];
          }
          problem = out;
        } catch (err) {
          const resigned = this.freshUrls.get(chunk.index) ?? 0;
          if (err instanceof UrlExpired && resigned < MAX_FRESH_URLS) {
            this.freshUrls.set(chunk.index, resigned + 1);
            return [chunk];
          }
          if (err instanceof UrlExpired) problem = `is refused (403) with ${resigned} fresh URLs`;
          else if (err instanceof WrongLength) problem = `failed verification (${err.message})`;
          else if (err instanceof ChunkNotFound) problem = 'is not at the cache node';
          else throw err;
        }
      }
      // A corrupted chunk never reaches the image: the cache node's copy is checked (and copied again from another
      // node if it is bad) before the next fetch; give up with the cause.
      const what = describe(chunk);
      if (attempt >= MAX_CHUNK_ATTEMPTS)
        throw new JobFailure(`${what} ${problem}; still wrong after ${attempt} fetches`);
      this.d.log(`${what} ${problem}; asking for a repair`);
      source = await this.d.repair(chunk, what);
      problem = undefined;
    }
  }

  /** The chunk's bytes if they verify, else what was wrong with them. */
  private async fetchOne(chunk: PlanChunk, source: ChunkSource, lease: Lease): Promise<Uint8Array | string> {
    const { signal, limiter } = this.d;
    const { part } = source;
    if (part) {
      await limiter?.take(part.length, signal);
      const stored = await getRange(
        source.url,
        part.offset,
        part.length,
        signal,
        this.room(lease, part.length),
      );
      this.received(part.length, 1);
      const out = await openChunk(stored, {
        sha256: chunk.sha256,
        length: chunk.length,
        encoding: part.encoding,
      });
      return out ?? unverified(part);
    }
    await limiter?.take(chunk.length, signal);
    // Hashed as it streamed in: no second pass over the bytes.
    const { bytes, sha256 } = await getChunk(
      source.url,
      chunk.length,
      signal,
      this.room(lease, chunk.length),
    );
    this.received(chunk.length, 1);
    return sha256 === chunk.sha256
      ? bytes
      : `failed verification (${bytes.length} bytes hashing to ${sha256})`;
  }

  private received(bytes: number, chunks: number): void {
    this.wireBytes += bytes;
    this.chunks += chunks;
    this.d.onWire?.(bytes);
  }

  /** The lease's buffer, swapped for a longer one when it cannot hold `length` bytes. */
  private room(lease: Lease, length: number): Buffer {
    if (lease.buf.length < length) {
      this.d.buffers.give(lease.buf);
      lease.buf = this.d.buffers.take(length);
    }
    return lease.buf;
  }
}

/** Bytes one fetch of a plan item moves. */
export const fetchLength = (chunk: PlanChunk) => chunk.part?.length ?? chunk.length;

const unverified = (part: StoredPart) =>
  `failed verification (its ${part.length} stored bytes, ${part.encoding}, ${part.encoding === 'zstd' ? 'do not decode to' : 'are not'} the chunk)`;
