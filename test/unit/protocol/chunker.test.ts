import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChunkInfo,
  ChunkingOptionsError,
  type ChunkingParams,
  type ChunkStreamOptions,
  chunkBoundaries,
  chunkFile,
  chunkingFor,
  chunkMasks,
  chunkStream,
  collectChunks,
  cutPoint,
  GEAR_TABLE,
  MAX_CHUNK_SIZE,
  resolveChunking,
} from '../../../protocol/chunker.ts';

const SMALL = { minSize: 1024, avgSize: 4096, maxSize: 8192 } as const;
const TINY = { minSize: 64, avgSize: 256, maxSize: 1024 } as const;

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Deterministic pseudo-random bytes (fast-check shrinks seeds far better than megabyte arrays). */
function prng(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function split(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, data.length]) {
    pieces.push(data.subarray(at, p)); // empty pieces included on purpose
    at = p;
  }
  return pieces;
}

function expectMatchesReference(
  data: Uint8Array,
  params: ChunkingParams,
  chunks: readonly ChunkInfo[],
): void {
  const spans = chunkBoundaries(data, params);
  expect(chunks.map((c) => [c.offset, c.length])).toEqual(spans.map((s) => [s.offset, s.length]));
  for (const c of chunks) expect(c.sha256).toBe(sha256(data.subarray(c.offset, c.offset + c.length)));
}

describe('chunking options', () => {
  it('defaults to avg 256 KiB, min avg/4, max avg*2', () => {
    expect(resolveChunking()).toEqual({
      minSize: 64 * 1024,
      avgSize: 256 * 1024,
      maxSize: 512 * 1024,
    });
    expect(resolveChunking({ avgSize: 4 * 1024 * 1024 })).toEqual({
      minSize: 1024 * 1024,
      avgSize: 4 * 1024 * 1024,
      maxSize: MAX_CHUNK_SIZE,
    });
    expect(resolveChunking({ avgSize: 65536 })).toEqual({ minSize: 16384, avgSize: 65536, maxSize: 131072 });
  });

  it('picks larger chunks only for images too large for the default (at most 4 MiB)', () => {
    const GiB = 1024 ** 3;
    expect(chunkingFor(0).avgSize).toBe(256 * 1024);
    expect(chunkingFor(64 * GiB).avgSize).toBe(256 * 1024);
    expect(chunkingFor(64 * GiB + 1).avgSize).toBe(512 * 1024);
    expect(chunkingFor(256 * GiB).avgSize).toBe(1024 * 1024);
    expect(chunkingFor(2048 * GiB).avgSize).toBe(4 * 1024 * 1024);
    expect(chunkingFor(8192 * GiB).avgSize).toBe(4 * 1024 * 1024);
  });

  it.each([
    [{ maxSize: MAX_CHUNK_SIZE + 1 }, 'maxSize', /at most 8388608/],
    [{ avgSize: 5000 }, 'avgSize', /power of two/],
    [{ avgSize: 128 }, 'avgSize', /at least 256/],
    [{ avgSize: 4096, minSize: 4096 }, 'minSize', /less than avgSize/],
    [{ avgSize: 4096, maxSize: 4096 }, 'maxSize', /greater than avgSize/],
    [{ avgSize: 4096, minSize: 10.5 }, 'minSize', /positive integer/],
    [{ avgSize: 4096, minSize: 32 }, 'minSize', /at least 64/],
    [{ avgSize: -4 }, 'avgSize', /positive integer/],
  ])('rejects %o naming %s', (opts, option, reason) => {
    let error: unknown;
    try {
      resolveChunking(opts);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ChunkingOptionsError);
    expect((error as ChunkingOptionsError).option).toBe(option);
    expect((error as Error).message).toContain(option);
    expect((error as Error).message).toMatch(reason);
  });

  it('rejects a read size below maxSize when the chunker is created', () => {
    expect(() => chunkStream([], { ...SMALL, readSize: 100 })).toThrow(/readSize/);
  });
});

describe('FastCDC definition', () => {
  it('uses the gear table generated from SHA-256, as documented', () => {
    const regenerated = Array.from({ length: 256 }, (_, i) =>
      createHash('sha256').update(`cdn-vm-migration fastcdc-2020 gear ${i}`).digest().readUInt32BE(0),
    );
    expect(GEAR_TABLE).toEqual(regenerated);
  });

  it('uses masks of log2(avg)±2 bits with bit 31 clear', () => {
    const popcount = (m: number) => m.toString(2).replaceAll('0', '').length;
    for (let bits = 8; bits <= 22; bits++) {
      const { maskS, maskL } = chunkMasks(2 ** bits);
      expect([popcount(maskS), popcount(maskL)]).toEqual([bits + 2, bits - 2]);
      expect(maskS >>> 31).toBe(0);
    }
  });

  it('cuts a run of zeros into maxSize chunks', () => {
    const spans = chunkBoundaries(new Uint8Array(5 * SMALL.maxSize + 100), SMALL);
    expect(spans.map((s) => s.length)).toEqual([8192, 8192, 8192, 8192, 8192, 100]);
  });

  it('keeps every chunk within [minSize, maxSize] except the last, and covers the input', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 0, max: 200_000 }), (seed, length) => {
        const data = prng(seed, length);
        const spans = chunkBoundaries(data, SMALL);
        let at = 0;
        spans.forEach((s, i) => {
          expect(s.offset).toBe(at);
          expect(s.length).toBeLessThanOrEqual(SMALL.maxSize);
          if (i < spans.length - 1) expect(s.length).toBeGreaterThan(SMALL.minSize);
          else expect(s.length).toBeGreaterThanOrEqual(1);
          at += s.length;
        });
        expect(at).toBe(length);
      }),
      { numRuns: 60 },
    );
  });

  it('averages near avgSize on random data', () => {
    const spans = chunkBoundaries(prng(7, 2_000_000), SMALL);
    const mean = 2_000_000 / spans.length;
    expect(mean).toBeGreaterThan(SMALL.avgSize * 0.9);
    expect(mean).toBeLessThan(SMALL.avgSize * 1.4);
  });

  it('changes only the chunks around a small insertion near the start', () => {
    // Statistical (a cut that loses its match can cascade a few chunks), hence the fixed seed.
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 0, max: 40_000 }),
        fc.uint8Array({ minLength: 1, maxLength: 16 }),
        (seed, at, inserted) => {
          const data = prng(seed, 256 * 1024);
          const edited = new Uint8Array(data.length + inserted.length);
          edited.set(data.subarray(0, at), 0);
          edited.set(inserted, at);
          edited.set(data.subarray(at), at + inserted.length);
          const before = chunkBoundaries(data, SMALL).map((s) => ({
            ...s,
            sha256: sha256(data.subarray(s.offset, s.offset + s.length)),
          }));
          const after = chunkBoundaries(edited, SMALL).map((s) => ({
            ...s,
            sha256: sha256(edited.subarray(s.offset, s.offset + s.length)),
          }));
          // Chunks wholly before the insertion are untouched.
          const untouched = before.filter((c) => c.offset + c.length <= at);
          expect(after.slice(0, untouched.length)).toEqual(untouched);
          // A handful of chunks change; every later chunk keeps its digest (at its shifted offset).
          const old = new Set(before.map((c) => c.sha256));
          const changed = after.filter((c) => !old.has(c.sha256));
          expect(changed.length).toBeGreaterThanOrEqual(1);
          expect(changed.length).toBeLessThanOrEqual(12);
          const lastChanged = after.indexOf(changed[changed.length - 1] as (typeof after)[number]);
          const tail = after.slice(lastChanged + 1);
          expect(tail.length).toBeGreaterThan(0);
          expect(before.slice(-tail.length).map((c) => [c.offset + inserted.length, c.sha256])).toEqual(
            tail.map((c) => [c.offset, c.sha256]),
          );
        },
      ),
      { numRuns: 60, seed: 20_261_125 },
    );
  });
});

describe('chunkStream', () => {
  it('finds the reference boundaries however the input is split and whatever the read size', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        fc.integer({ min: 0, max: 60_000 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.integer({ min: TINY.maxSize, max: 9000 }),
        async (seed, length, cuts, readSize) => {
          const data = prng(seed, length);
          const result = await collectChunks(
            chunkStream(split(data, cuts), { ...TINY, readSize, threads: false }),
          );
          expectMatchesReference(data, resolveChunking(TINY), result.chunks);
          expect(result.size).toBe(length);
          expect(result.sha256).toBe(sha256(data));
        },
      ),
      { numRuns: 80 },
    );
  });

  it('gives back the input when the chunks are put together', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 20_000 }), async (data) => {
        const { chunks } = await collectChunks(chunkStream([data], { ...TINY, readSize: TINY.maxSize }));
        const joined = Buffer.concat(chunks.map((c) => data.subarray(c.offset, c.offset + c.length)));
        expect(joined.equals(data)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('hashes on worker threads with the same results', async () => {
    const data = prng(42, 1_500_000);
    const params = resolveChunking(SMALL);
    for (const readSize of [SMALL.maxSize, 20_000, 300_000]) {
      const opts: ChunkStreamOptions = { ...SMALL, readSize, threads: true };
      const result = await collectChunks(chunkStream(split(data, [1, 70_000, 70_001, 900_000]), opts));
      expectMatchesReference(data, params, result.chunks);
      expect(result.sha256).toBe(sha256(data));
      expect(result.chunking).toEqual(params);
    }
  });

  it('chunks an empty input into nothing', async () => {
    const result = await collectChunks(chunkStream([], SMALL));
    expect(result).toEqual({
      size: 0,
      sha256: sha256(new Uint8Array(0)),
      chunking: resolveChunking(SMALL),
      chunks: [],
    });
  });

  it('reads a Node Readable', async () => {
    const data = randomBytes(100_000);
    const result = await collectChunks(
      chunkStream(Readable.from([data.subarray(0, 5), data.subarray(5)]), SMALL),
    );
    expectMatchesReference(data, resolveChunking(SMALL), result.chunks);
  });

  it('refuses a source that yields strings', async () => {
    await expect(collectChunks(chunkStream(['text'] as unknown as Uint8Array[], SMALL))).rejects.toThrow(
      /expected Uint8Array/,
    );
  });

  it('stops when its signal is aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('operator cancelled'));
    await expect(
      collectChunks(chunkStream([new Uint8Array(10)], { ...SMALL, signal: controller.signal })),
    ).rejects.toThrow(/operator cancelled/);
  });

  it('stops waiting for a stalled source when its signal is aborted', async () => {
    const controller = new AbortController();
    async function* stalled() {
      yield new Uint8Array(100);
      await new Promise(() => {});
    }
    const chunker = collectChunks(chunkStream(stalled(), { ...SMALL, signal: controller.signal }));
    setImmediate(() => controller.abort(new Error('operator cancelled')));
    await expect(chunker).rejects.toThrow(/operator cancelled/);
  });

  it('takes a single buffer as its source', async () => {
    const data = prng(9, 50_000);
    const result = await collectChunks(chunkStream(data, SMALL));
    expectMatchesReference(data, resolveChunking(SMALL), result.chunks);
  });

  it('cleans up when the consumer stops early', async () => {
    let closed = false;
    async function* source() {
      try {
        for (let i = 0; i < 100; i++) yield prng(i, 50_000);
      } finally {
        closed = true;
      }
    }
    const chunker = chunkStream(source(), { ...SMALL, readSize: 50_000 });
    let seen = 0;
    for await (const _ of chunker) {
      if (++seen === 3) break;
    }
    expect(seen).toBe(3);
    expect(closed).toBe(true);
    expect(await chunker.next()).toEqual({ done: true, value: undefined });
  });
});

describe('chunkFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chunker-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('matches the reference on a file with data and zero runs, threaded or not', async () => {
    const data = new Uint8Array(2_000_000);
    data.set(prng(1, 300_000), 0);
    data.set(prng(2, 500_000), 1_200_000);
    const path = join(dir, 'disk.raw');
    await writeFile(path, data);
    const params = resolveChunking(SMALL);
    const results = [];
    for (const opts of [
      { threads: false },
      { threads: true, readSize: 100_000 },
      { threads: true, readSize: 8192 },
      { threads: true },
    ]) {
      const result = await collectChunks(chunkFile(path, { ...SMALL, ...opts }));
      expectMatchesReference(data, params, result.chunks);
      expect(result.size).toBe(data.length);
      expect(result.sha256).toBe(sha256(data));
      results.push(result);
    }
    expect(new Set(results.map((r) => JSON.stringify(r))).size).toBe(1);
    const zeroDigest = sha256(new Uint8Array(SMALL.maxSize));
    expect(results[0]?.chunks.filter((c) => c.sha256 === zeroDigest).length).toBeGreaterThan(90);
  });

  it('fails with the path when the file does not exist', async () => {
    await expect(collectChunks(chunkFile(join(dir, 'missing.raw')))).rejects.toThrow(/missing\.raw/);
  });
});

describe('cutPoint', () => {
  it('takes the whole input when it is no longer than minSize', () => {
    const params = resolveChunking(SMALL);
    expect(cutPoint(prng(3, 1024), params)).toBe(1024);
    expect(cutPoint(prng(3, 5000), params, 4000)).toBe(1000);
  });
});
