// Child process of P7, started as the agent is (node --import tsx): `p7-pack-child <image>...` chunks each image
// with the agent's chunker (protocol/chunker.ts chunkFile, defaults) and zstd-encodes its chunks the way the
// source agent's packer does (protocol/pack.ts encodeChunk, 8 at once), images in order as one fleet. The first
// image has every chunk encoded (the throughput measurement: wall and process CPU time, worker threads and the
// libuv threadpool included); the later ones only the chunks no earlier image had. Prints one JSON line: per image,
// what an ideal upload would be (new chunks, stored bytes), without packs, index or protocol overhead.
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { chunkFile } from '../../protocol/chunker.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';

type Encode = (raw: Uint8Array) => Promise<{ stored: Uint8Array; encoding: string }>;

/** Encoded at once, as the agent does with its default concurrency. */
const WINDOW = 8;

/** protocol/pack.ts's encodeChunk when it is there; else zstd level 3 through node:zlib (what it does). */
async function encoder(): Promise<{ encode: Encode; source: string }> {
  const url = new URL('../../protocol/pack.ts', import.meta.url).href;
  try {
    const mod = (await import(url)) as { encodeChunk?: Encode };
    if (typeof mod.encodeChunk === 'function')
      return { encode: mod.encodeChunk, source: 'protocol/pack.ts encodeChunk' };
  } catch {
    // not there yet
  }
  const compress = promisify(zlib.zstdCompress);
  return {
    source: 'node:zlib zstd level 3 (protocol/pack.ts not found)',
    async encode(raw) {
      const out = await compress(raw, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } });
      return out.length < raw.length ? { stored: out, encoding: 'zstd' } : { stored: raw, encoding: 'raw' };
    },
  };
}

export interface FleetImageResult {
  readonly image: string;
  readonly bytes: number;
  readonly chunks: number;
  readonly zeroChunks: number;
  /** Chunks no earlier image (nor an earlier chunk of this one) had: what an ideal upload sends. */
  readonly newChunks: number;
  readonly newRawBytes: number;
  /** Encoded (zstd or raw) bytes of the new chunks. */
  readonly newStoredBytes: number;
  /** Bytes encoded (every chunk of the first image; the new ones of the others) and their encoded size. */
  readonly encodedRawBytes: number;
  readonly encodedStoredBytes: number;
  readonly ms: number;
  readonly cpuMs: number;
}

const images = process.argv.slice(2);
if (images.length === 0) throw new Error('usage: p7-pack-child <image>...');
const { encode, source } = await encoder();
const seen = new Set<string>();
const results: FleetImageResult[] = [];
for (const [n, image] of images.entries()) {
  const file = await open(image, 'r');
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  let chunks = 0;
  let zeroChunks = 0;
  let newChunks = 0;
  let newRawBytes = 0;
  let newStoredBytes = 0;
  let encodedRawBytes = 0;
  let encodedStoredBytes = 0;
  const window: Promise<{ fresh: boolean; raw: number; stored: number }>[] = [];
  const take = async () => {
    const r = await (window.shift() as (typeof window)[number]);
    encodedRawBytes += r.raw;
    encodedStoredBytes += r.stored;
    if (r.fresh) {
      newRawBytes += r.raw;
      newStoredBytes += r.stored;
    }
  };
  const chunker = chunkFile(image);
  let size = 0;
  try {
    for (;;) {
      const next = await chunker.next();
      if (next.done === true) {
        size = next.value.size;
        break;
      }
      const c = next.value;
      chunks++;
      if (isZeroChunk(c.sha256, c.length)) {
        zeroChunks++;
        continue;
      }
      const fresh = !seen.has(c.sha256);
      seen.add(c.sha256);
      if (fresh) newChunks++;
      if (!fresh && n > 0) continue;
      window.push(
        (async () => {
          const raw = Buffer.allocUnsafe(c.length);
          const { bytesRead } = await file.read(raw, 0, c.length, c.offset);
          if (bytesRead !== c.length) throw new Error(`${image}: short read at ${c.offset}`);
          const { stored } = await encode(raw);
          return { fresh, raw: c.length, stored: stored.length };
        })(),
      );
      if (window.length >= WINDOW) await take();
    }
    while (window.length > 0) await take();
  } finally {
    await file.close();
  }
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  results.push({
    image,
    bytes: size,
    chunks,
    zeroChunks,
    newChunks,
    newRawBytes,
    newStoredBytes,
    encodedRawBytes,
    encodedStoredBytes,
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
  });
}
process.stdout.write(`${JSON.stringify({ encoder: source, images: results })}\n`);
