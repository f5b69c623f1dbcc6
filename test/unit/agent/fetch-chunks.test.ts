// A destination's fetches of packed chunks, against a small HTTP server that serves objects with single byte ranges
// (as the edge does): neighbouring chunks of a pack coalesced into one range GET, each chunk decoded and checked
// before it is written, and whatever fails (a corrupt entry, a pack not found, an expired URL) taken chunk by chunk
// through repair, with no bad byte ever handed to the image.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JobFailure } from '../../../cli/agent/context.ts';
import {
  BufferPool,
  ChunkFetcher,
  type ChunkSource,
  type FetchUnit,
  MAX_CHUNK_ATTEMPTS,
  MAX_FRESH_URLS,
  MAX_RUN_BYTES,
  MAX_RUN_GAP,
  planFetches,
} from '../../../cli/agent/fetch-chunks.ts';
import type { PlanChunk } from '../../../protocol/api/agent.ts';
import { encodeChunk, PackBuilder, type PackEntry } from '../../../protocol/pack.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Six chunks of an image: compressible ones (zstd in the pack) and random ones (stored raw). */
const RAW = [0, 1, 2, 3, 4, 5].map((i) =>
  i % 2 === 0 ? Buffer.from(`chunk ${i} `.repeat(20_000 + i * 1000)) : randomBytes(150_000 + i * 1000),
);

interface Stored {
  readonly pack: Buffer;
  readonly entries: readonly PackEntry[];
}

async function buildPack(chunks: readonly Buffer[]): Promise<Stored> {
  const b = new PackBuilder();
  for (const raw of chunks) {
    const { stored, encoding } = await encodeChunk(raw);
    b.add(sha(raw), raw.length, stored, encoding);
  }
  const built = b.finish();
  return { pack: built.bytes, entries: built.entries };
}

/** Serves objects by path, honouring a single `bytes=first-last` range (206), counting requests. */
class ObjectServer {
  readonly objects = new Map<string, Buffer>();
  readonly requests: { url: string; range: string | undefined }[] = [];
  /** Answers for the next requests, before the objects are consulted. */
  readonly script: ((req: IncomingMessage, res: ServerResponse) => void)[] = [];
  /** Answers a request itself when it returns true (after the script). */
  intercept: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  url = '';
  private readonly server = createServer((req, res) => {
    this.requests.push({ url: req.url ?? '', range: req.headers.range });
    const scripted = this.script.shift();
    if (scripted) return scripted(req, res);
    if (this.intercept?.(req, res)) return;
    const body = this.objects.get(new URL(req.url ?? '/', 'http://x').pathname);
    if (!body) {
      res.writeHead(404, { 'content-length': 9 });
      return res.end('NoSuchKey');
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) {
      res.writeHead(200, { 'content-length': body.length });
      return res.end(body);
    }
    const first = Number(m[1]);
    const last = Math.min(Number(m[2]), body.length - 1);
    res.writeHead(206, {
      'content-range': `bytes ${first}-${last}/${body.length}`,
      'content-length': last - first + 1,
    });
    res.end(body.subarray(first, last + 1));
  });
  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Plan items for the chunks of a pack at `url`, in image order (chunk i at image offset i MiB). */
function planOf(url: string, entries: readonly PackEntry[], first = 0): PlanChunk[] {
  return entries.map((e, i) => ({
    index: first + i,
    offset: (first + i) * (1 << 20),
    length: e.length,
    sha256: e.sha256,
    zero: false,
    url,
    part: { offset: e.offset, length: e.stored, encoding: e.encoding },
  }));
}

const item = (index: number, url: string, offset: number, length: number): PlanChunk => ({
  index,
  offset: index * 1000,
  length: length * 2,
  sha256: '0'.repeat(64),
  zero: false,
  url,
  part: { offset, length, encoding: 'zstd' },
});

describe('planFetches', () => {
  it('coalesces consecutive chunks of one pack that follow each other into one run', () => {
    const units = planFetches([item(0, 'A', 0, 100), item(1, 'A', 100, 50), item(2, 'A', 150, 10)]);
    expect(units).toHaveLength(1);
    expect(units[0]).toMatchObject({ kind: 'run', url: 'A', start: 0, length: 160 });
  });

  it('bridges a small gap (chunks this image does not need) but not a larger one', () => {
    const small = planFetches([item(0, 'A', 0, 100), item(1, 'A', 100 + MAX_RUN_GAP, 10)]);
    expect(small).toMatchObject([{ kind: 'run', start: 0, length: 100 + MAX_RUN_GAP + 10 }]);
    const large = planFetches([item(0, 'A', 0, 100), item(1, 'A', 101 + MAX_RUN_GAP, 10)]);
    expect(large.map((u) => u.kind === 'run' && [u.start, u.length])).toEqual([
      [0, 100],
      [101 + MAX_RUN_GAP, 10],
    ]);
  });

  it('starts a new run for another pack, a range further back (a chunk seen twice), or past MAX_RUN_BYTES', () => {
    const units = planFetches([
      item(0, 'A', 0, 100),
      item(1, 'B', 100, 100),
      item(2, 'B', 0, 100),
      item(3, 'B', 100, MAX_RUN_BYTES - 100),
      item(4, 'B', MAX_RUN_BYTES, 1),
    ]);
    expect(units.map((u) => (u.kind === 'run' ? u.chunks.map((c) => c.index) : []))).toEqual([
      [0],
      [1],
      [2, 3],
      [4],
    ]);
    // A chunk longer than a run's limit is a run of its own.
    expect(planFetches([item(0, 'A', 0, MAX_RUN_BYTES + 5)])).toMatchObject([
      { kind: 'run', length: MAX_RUN_BYTES + 5 },
    ]);
  });

  it('fetches a chunk stored alone (no part) whole, leaving the run around it open', () => {
    const alone: PlanChunk = { ...item(1, 'L', 0, 1), part: undefined };
    const { part: _, ...legacy } = alone;
    const units = planFetches([item(0, 'A', 0, 100), legacy, item(2, 'A', 100, 100)]);
    expect(units.map((u) => u.kind)).toEqual(['whole', 'run']);
    expect(units[1]).toMatchObject({ start: 0, length: 200 });
  });
});

describe('ChunkFetcher', () => {
  let s: ObjectServer;
  let stored: Stored;
  /** Chunk index → bytes handed to write (each checked against the chunk's digest). */
  let written: Map<number, Buffer>;
  let badWrites: number[];
  let repairs: { index: number; what: string }[];
  let repairAnswer: (chunk: PlanChunk) => ChunkSource;
  let log: string[];
  let wire: number;

  const fetcher = () =>
    new ChunkFetcher({
      signal: new AbortController().signal,
      buffers: new BufferPool(4),
      write: async (chunk, bytes) => {
        if (sha(bytes) !== chunk.sha256) badWrites.push(chunk.index);
        written.set(chunk.index, Buffer.from(bytes));
      },
      repair: async (chunk, what) => {
        repairs.push({ index: chunk.index, what });
        return repairAnswer(chunk);
      },
      onWire: (bytes) => {
        wire += bytes;
      },
      log: (line) => log.push(line),
    });
  const fetchAll = async (f: ChunkFetcher, units: FetchUnit[]) => {
    const again: PlanChunk[] = [];
    for (const u of units) again.push(...(await f.fetch(u)));
    return again;
  };
  const expectAllWritten = (plan: readonly PlanChunk[]) => {
    expect(badWrites).toEqual([]);
    expect([...written.keys()].sort((a, b) => a - b)).toEqual(plan.map((c) => c.index));
    for (const c of plan) expect(written.get(c.index)?.equals(RAW[c.index] as Buffer)).toBe(true);
  };

  beforeAll(async () => {
    s = await new ObjectServer().listen();
    stored = await buildPack(RAW);
    // Both encodings are exercised.
    expect(new Set(stored.entries.map((e) => e.encoding))).toEqual(new Set(['raw', 'zstd']));
  });
  afterAll(() => s.close());
  beforeEach(() => {
    s.objects.clear();
    s.objects.set('/pack', stored.pack);
    s.objects.set('/good', stored.pack);
    s.requests.length = 0;
    s.script.length = 0;
    s.intercept = undefined;
    written = new Map();
    badWrites = [];
    repairs = [];
    log = [];
    wire = 0;
    repairAnswer = (chunk) => ({ url: `${s.url}/good`, part: chunk.part });
  });

  it('fetches neighbouring chunks of a pack with one range GET, decodes and checks each, writes them', async () => {
    const plan = planOf(`${s.url}/pack`, stored.entries);
    const units = planFetches(plan);
    expect(units).toHaveLength(1);
    const f = fetcher();
    expect(await fetchAll(f, units)).toEqual([]);
    expectAllWritten(plan);
    const storedBytes = stored.entries.reduce((n, e) => n + e.stored, 0);
    expect(s.requests).toEqual([{ url: '/pack', range: `bytes=0-${storedBytes - 1}` }]);
    // What crossed the wire is the stored (compressed) bytes, less than the chunks' own.
    expect(f.wireBytes).toBe(storedBytes);
    expect(wire).toBe(storedBytes);
    expect(storedBytes).toBeLessThan(RAW.reduce((n, r) => n + r.length, 0));
    expect(f.chunks).toBe(RAW.length);
    expect(repairs).toEqual([]);
  });

  it('fetches only the chunks this image needs, bridging small gaps between them', async () => {
    const plan = planOf(`${s.url}/pack`, stored.entries).filter((c) => c.index !== 1 && c.index !== 4);
    const units = planFetches(plan, { maxBytes: MAX_RUN_BYTES, maxGap: 200_000 });
    expect(units).toHaveLength(1);
    await fetchAll(fetcher(), units);
    expectAllWritten(plan);
    expect(s.requests).toHaveLength(1);
  });

  it('never writes a chunk whose stored bytes are corrupt: the others are written, it is repaired and fetched again', async () => {
    const bad = Buffer.from(stored.pack);
    for (const victim of [2, 3]) {
      const e = stored.entries[victim] as PackEntry;
      const at = e.offset + (e.stored >> 1);
      bad[at] = (bad[at] as number) ^ 0x10;
    }
    s.objects.set('/pack', bad);
    const plan = planOf(`${s.url}/pack`, stored.entries);
    await fetchAll(fetcher(), planFetches(plan));
    expectAllWritten(plan);
    expect(repairs.map((r) => r.index)).toEqual([2, 3]);
    expect(repairs[0]?.what).toContain('sha256');
    expect(log.some((l) => /chunk 2 .* failed verification .*asking for a repair/.test(l))).toBe(true);
    // One run, then each repaired chunk alone from where the repair said (its range only).
    const e2 = stored.entries[2] as PackEntry;
    expect(s.requests.slice(1)).toEqual([
      { url: '/good', range: `bytes=${e2.offset}-${e2.offset + e2.stored - 1}` },
      expect.objectContaining({ url: '/good' }),
    ]);
  });

  it('gives up on a chunk still wrong after MAX_CHUNK_ATTEMPTS fetches, having written none of its bytes', async () => {
    const bad = Buffer.from(stored.pack);
    const e = stored.entries[0] as PackEntry;
    bad[e.offset + 10] = (bad[e.offset + 10] as number) ^ 1;
    s.objects.set('/pack', bad);
    s.objects.set('/good', bad);
    const plan = planOf(`${s.url}/pack`, stored.entries);
    const err = await fetchAll(fetcher(), planFetches(plan)).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(JobFailure);
    expect((err as Error).message).toMatch(`still wrong after ${MAX_CHUNK_ATTEMPTS} fetches`);
    expect(repairs).toHaveLength(MAX_CHUNK_ATTEMPTS - 1);
    expect(written.has(0)).toBe(false);
    expect(badWrites).toEqual([]);
  });

  it('a pack not found: the first chunk is repaired, the rest fetched again as one run', async () => {
    s.objects.delete('/pack');
    const plan = planOf(`${s.url}/pack`, stored.entries);
    // The repair copies the pack back to the cache node.
    repairAnswer = (chunk) => {
      s.objects.set('/pack', stored.pack);
      return { url: `${s.url}/pack`, part: chunk.part };
    };
    await fetchAll(fetcher(), planFetches(plan));
    expectAllWritten(plan);
    expect(repairs.map((r) => r.index)).toEqual([0]);
    expect(log[0]).toMatch(/chunk 0 .* is not at the cache node/);
    const e0 = stored.entries[0] as PackEntry;
    const e1 = stored.entries[1] as PackEntry;
    const end = stored.entries.reduce((n, e) => n + e.stored, 0) - 1;
    expect(s.requests.map((r) => r.range)).toEqual([
      `bytes=0-${end}`,
      `bytes=0-${e0.stored - 1}`,
      `bytes=${e1.offset}-${end}`,
    ]);
  });

  it('a run answered with other bytes twice: its chunks are then fetched one by one', async () => {
    const plan = planOf(`${s.url}/pack`, stored.entries).slice(0, 3);
    // Every range of more than one chunk is answered with something else (a server ignoring ranges).
    const single = Math.max(...plan.map((c) => c.part?.length ?? 0));
    s.intercept = (req, res) => {
      const [first, last] = (req.headers.range ?? '').replace('bytes=', '').split('-').map(Number);
      if ((last as number) - (first as number) < single) return false;
      res.writeHead(200, { 'content-length': 10 });
      res.end('0123456789');
      return true;
    };
    await fetchAll(fetcher(), planFetches(plan));
    expectAllWritten(plan);
    // The first chunk of each failed run is repaired (fetched from where the repair says); the rest of the second
    // failed run is fetched alone.
    expect(repairs.map((r) => r.index)).toEqual([0, 1]);
    expect(s.requests.map((r) => r.url)).toEqual(['/pack', '/good', '/pack', '/good', '/pack']);
    expect(s.requests.slice(2).map((r) => r.range)).toEqual([
      `bytes=${plan[1]?.part?.offset}-${(plan[2]?.part?.offset ?? 0) + (plan[2]?.part?.length ?? 0) - 1}`,
      expect.any(String),
      `bytes=${plan[2]?.part?.offset}-${(plan[2]?.part?.offset ?? 0) + (plan[2]?.part?.length ?? 0) - 1}`,
    ]);
  });

  it('an expired URL hands the chunks back for fresh URLs; after MAX_FRESH_URLS they are repaired', async () => {
    const plan = planOf(`${s.url}/pack`, stored.entries).slice(0, 2);
    const expired = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(403, { 'content-length': 7 });
      res.end('expired');
    };
    const f = fetcher();
    for (let i = 0; i < MAX_FRESH_URLS; i++) {
      s.script.push(expired);
      expect((await fetchAll(f, planFetches(plan))).map((c) => c.index)).toEqual([0, 1]);
    }
    expect(written.size).toBe(0);
    s.script.push(expired);
    expect(await fetchAll(f, planFetches(plan))).toEqual([]);
    expect(repairs.map((r) => r.index)).toEqual([0, 1]);
    expectAllWritten(plan);
  });

  it('fetches a chunk stored alone (before packs) whole, and takes a packed location from its repair', async () => {
    const raw = RAW[1] as Buffer;
    s.objects.set('/alone', raw);
    const plan: PlanChunk[] = [
      { index: 1, offset: 0, length: raw.length, sha256: sha(raw), zero: false, url: `${s.url}/alone` },
    ];
    await fetchAll(fetcher(), planFetches(plan));
    expect(s.requests).toEqual([{ url: '/alone', range: undefined }]);
    expect(written.get(1)?.equals(raw)).toBe(true);

    // Lost there; the repair finds it in a pack elsewhere.
    s.objects.delete('/alone');
    s.requests.length = 0;
    written.clear();
    const e1 = stored.entries[1] as PackEntry;
    repairAnswer = () => ({
      url: `${s.url}/good`,
      part: { offset: e1.offset, length: e1.stored, encoding: e1.encoding },
    });
    await fetchAll(fetcher(), planFetches(plan));
    expect(written.get(1)?.equals(raw)).toBe(true);
    expect(s.requests.map((r) => [r.url, r.range])).toEqual([
      ['/alone', undefined],
      ['/good', `bytes=${e1.offset}-${e1.offset + e1.stored - 1}`],
    ]);
    expect(badWrites).toEqual([]);
  });
});
