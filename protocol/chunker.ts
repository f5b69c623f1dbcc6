// Content-defined chunking (FastCDC, 2020 paper, normalized chunking level 2) with a SHA-256 per chunk and over
// the whole image; streams with bounded memory and hashes on worker threads so a large image goes at disk speed.
import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

export const CHUNKING_ALGORITHM = 'fastcdc-2020';
/** Every chunk is one PUT on every S3-compatible store we use. */
export const MAX_CHUNK_SIZE = 8 * 1024 * 1024;
/**
 * 256 KiB: small enough that a small write costs a small upload (bench P4: 1 % of an image rewritten in 1 MiB runs
 * moves 0.017 of the naive bytes at 256 KiB, 0.030 at 512 KiB, 0.036 at 1 MiB); chunks travel compressed in packs of
 * several MiB (protocol/pack.ts). The price is per-chunk work (index entries, claims: DynamoDB requests), 4× that of
 * 1 MiB. On a fleet of Debian root disks (bench P7) 256 KiB and 1 MiB moved about the same bytes, 64 KiB and 4 MiB more.
 */
export const DEFAULT_AVG_SIZE = 256 * 1024;
/** Images up to this many chunks at the default average keep it; larger ones get larger chunks (chunkingFor). */
export const DEFAULT_MAX_CHUNKS = 262_144;
/** The largest average chunkingFor picks: a 2 TiB image in about 500,000 chunks. */
export const LARGEST_DEFAULT_AVG_SIZE = 4 * 1024 * 1024;
/** Lower bounds below which the masks would be too short to be content-defined. */
export const MIN_MIN_SIZE = 64;
export const MIN_AVG_SIZE = 256;
export const MIN_MAX_SIZE = 1024;

export interface ChunkingParams {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
}

export interface ChunkerOptions {
  readonly minSize?: number | undefined;
  readonly avgSize?: number | undefined;
  readonly maxSize?: number | undefined;
}

export class ChunkingOptionsError extends RangeError {
  override readonly name = 'ChunkingOptionsError';
  constructor(
    readonly option: string,
    reason: string,
  ) {
    super(`chunking option ${option}: ${reason}`);
  }
}

function checkSize(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new ChunkingOptionsError(option, `must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** Fills in the defaults (avg 256 KiB, min avg/4, max avg*2) and checks the combination. */
export function resolveChunking(opts: ChunkerOptions = {}): ChunkingParams {
  const avgSize = checkSize('avgSize', opts.avgSize ?? DEFAULT_AVG_SIZE);
  // The masks have log2(avgSize) ± 2 bits, so the average must be a power of two.
  if ((avgSize & (avgSize - 1)) !== 0 || avgSize > 2 ** 30) {
    throw new ChunkingOptionsError('avgSize', `must be a power of two, got ${avgSize}`);
  }
  if (avgSize < MIN_AVG_SIZE) {
    throw new ChunkingOptionsError('avgSize', `must be at least ${MIN_AVG_SIZE}, got ${avgSize}`);
  }
  const minSize = checkSize('minSize', opts.minSize ?? avgSize / 4);
  const maxSize = checkSize('maxSize', opts.maxSize ?? Math.min(avgSize * 2, MAX_CHUNK_SIZE));
  if (maxSize > MAX_CHUNK_SIZE) {
    throw new ChunkingOptionsError(
      'maxSize',
      `must be at most ${MAX_CHUNK_SIZE} (8 MiB, one PUT per chunk), got ${maxSize}`,
    );
  }
  if (minSize < MIN_MIN_SIZE) {
    throw new ChunkingOptionsError('minSize', `must be at least ${MIN_MIN_SIZE}, got ${minSize}`);
  }
  if (minSize >= avgSize) {
    throw new ChunkingOptionsError('minSize', `must be less than avgSize (${avgSize}), got ${minSize}`);
  }
  if (maxSize <= avgSize) {
    throw new ChunkingOptionsError('maxSize', `must be greater than avgSize (${avgSize}), got ${maxSize}`);
  }
  if (maxSize < MIN_MAX_SIZE) {
    throw new ChunkingOptionsError('maxSize', `must be at least ${MIN_MAX_SIZE}, got ${maxSize}`);
  }
  return { minSize, avgSize, maxSize };
}

/**
 * The default chunking for an image of `size` bytes: the default average up to 64 GiB, then the power of two that
 * keeps the image within DEFAULT_MAX_CHUNKS chunks, at most 4 MiB. Chunks of images in different size classes do
 * not match, so an image keeps the chunking it was first stored with (the server passes it to the agent).
 */
export function chunkingFor(size: number): ChunkingParams {
  let avgSize = DEFAULT_AVG_SIZE;
  while (avgSize < LARGEST_DEFAULT_AVG_SIZE && size / avgSize > DEFAULT_MAX_CHUNKS) avgSize *= 2;
  return resolveChunking({ avgSize });
}

/**
 * The gear table: entry i is the first four bytes (big-endian) of SHA-256("cdn-vm-migration fastcdc-2020 gear <i>").
 * Fixed here so boundaries never change under us; a unit test regenerates it. With it, runs of any single byte
 * value (zeros above all) give maxSize chunks at every supported average.
 */
export const GEAR_TABLE: readonly number[] = Object.freeze([
  0x540ee268, 0x98858a69, 0x1e27551b, 0x68b86846, 0xe4ca926c, 0xec26632f, 0x59f8079f, 0xe3bd4cc5, 0xebde731b,
  0x146470f9, 0xa580facf, 0x77e4db36, 0xb2c6aa02, 0xb797f999, 0x95f4b63f, 0x0c889d15, 0x35721131, 0xf6364786,
  0xbc551777, 0x8d8bc423, 0x4a2433f0, 0xb1083ddd, 0x80d8855c, 0x5278a910, 0x4c1ea551, 0x4f1e7bfb, 0x676390d0,
  0xbb530d3a, 0xbc5167ed, 0x04d6ff5d, 0xa0043155, 0xdf67e573, 0x44ad4061, 0xac079dfb, 0xc7db9cd4, 0x65479060,
  0xcdb6d582, 0x6147c2c0, 0xcc5ddafd, 0x4ce5cf97, 0xcf5d0c85, 0xa3e26458, 0xdf63f0e2, 0xafb8283a, 0x26f809c0,
  0xf1364726, 0xb01ba75a, 0x3e182723, 0x149462bf, 0x8b1b608a, 0xafa93e7a, 0x85524ba6, 0x3370785a, 0x61a9edcc,
  0xb4e5e44b, 0x091f24ee, 0x2aec261c, 0x4d871e02, 0x29e13fee, 0x810efdb9, 0x0d89727b, 0x075dc7ce, 0x6a9ee03c,
  0x2b8605d1, 0x34cc02af, 0x08cce87f, 0x1d74876a, 0xd1a6715b, 0x5acfc166, 0xc86c114a, 0x6358c78e, 0x9efd0ffa,
  0xe25a79fa, 0xeca24795, 0xcd2a8fc4, 0x5395be1c, 0xba623e66, 0x5a6f1ba0, 0x3a642c91, 0x0c257974, 0xa20a508b,
  0x80c7ff2e, 0xdd81b679, 0x80ecd420, 0x5ce0410b, 0x8f7a76f1, 0x150a6118, 0xe9e31f6f, 0xddb09892, 0x2663cc09,
  0xab7ea29b, 0x416ca05c, 0xd6e0db23, 0xa77b39f4, 0x1bc44aa2, 0xb3ef0a5b, 0x178e3026, 0x9c7971ab, 0xbe563efb,
  0xb1caca09, 0xb9b77a15, 0x68bb730d, 0x63e07cd8, 0x351be92d, 0x8aa4dae1, 0xc3920ce6, 0x40404ead, 0x259ecdf0,
  0x89e4255e, 0xe9f7954d, 0x6188dd05, 0x3d22e05a, 0x2c20b14f, 0xf783046a, 0x04225b93, 0x90b249aa, 0x43cd515f,
  0xce7f8e1c, 0x70979df1, 0xdb2927aa, 0x2eb8b0a8, 0x10862a1d, 0xf390d0e1, 0xbea45a13, 0xb9f2b7d4, 0xd21a9d73,
  0x3eb1ac4a, 0x369b8ad8, 0xb776a3f7, 0x20a5e0be, 0x1eb8eea4, 0x86163396, 0x6b0c6ad5, 0xabfbb861, 0xc00cd1cb,
  0xc196d3a8, 0xfaa46878, 0x38ad7c4c, 0xb3e03718, 0x5b0fc52c, 0x6901e49a, 0x9e63b563, 0x4d2c4ffe, 0x0b9f0c13,
  0x561b43b3, 0x96e08f68, 0x2f75d79f, 0xdf3af0b5, 0xd8977f62, 0x9abcf91f, 0x329bd452, 0xb5c54973, 0xe2c89639,
  0x636ec7f3, 0x2e445c7b, 0x504ea5ed, 0x4c2e7c5b, 0x8ea29702, 0x3b39e973, 0x36ff45c3, 0xf70f3bf9, 0x3faa10aa,
  0xbe261361, 0x09467a47, 0x81a26639, 0xa7537a1e, 0x5ed41921, 0x344d1e0a, 0x2a9eabe5, 0xe8fb1e53, 0x9b9ef6a2,
  0xeeabea4e, 0xe22180e8, 0x20fa1179, 0x7f4e94d8, 0x8998edc9, 0x13ea17a3, 0x541efa95, 0xe61e26aa, 0x9211b21f,
  0x05f9bb6d, 0x9fa3bcc2, 0x902ae7a2, 0xdc9eef11, 0x6f014a67, 0xad26c656, 0xcf7144fa, 0x3790a808, 0x4274784b,
  0xe917f656, 0xff5c2cfe, 0x8a177786, 0x26a35f94, 0x56012049, 0x2fd2ad71, 0x12e99341, 0xcde5408c, 0xed8f82c6,
  0x71b7b831, 0x15250e36, 0x7dc33c5d, 0xc0b8c39b, 0x32399832, 0xb4f174c3, 0x701bc8b6, 0xb0349c0d, 0xa7ece8ee,
  0x9dd01b2a, 0x414ea287, 0x29365e78, 0xb3c3a6f2, 0x606169b1, 0x83313c8b, 0x31b9b613, 0x4477ef2f, 0x03f245f3,
  0x4ef50214, 0x4ca01b2e, 0x747dcb4f, 0xd2f569a3, 0xdf24827e, 0x6730850f, 0x1b2bc917, 0x1c4cc616, 0xe15808f7,
  0xf0a046aa, 0x77446ff1, 0xc9bb7c0f, 0x321ab183, 0xe2f4f35a, 0xe3f82984, 0x1588851d, 0x05bf991d, 0xe9544f22,
  0x96389516, 0x28b01f43, 0x0ad84e4c, 0xbe7c10e6, 0x535eccc3, 0x6e996df7, 0xec76f4b1, 0x7321c3e3, 0xc3f43e72,
  0xb89bb9d2, 0xc4267dea, 0x1c85ed66, 0xcc30f34c, 0x3b0a2033, 0xc1675629, 0x243e1bb1, 0x3f4d724c, 0x3c31d105,
  0x074d392c, 0x05cc1cca, 0xd1460db1, 0xab3229ce,
]);

/**
 * `bits` one-bits spread evenly over bits 30..0. The hash is 32-bit, not the paper's 64 (32-bit integer math is
 * what V8 and wasm do fastest); with the bits spread, a match still depends on the last ~31 bytes. Bit 31 stays
 * clear so the two-bytes-per-step form (hash << 2, shifted table) tests the same bits.
 */
function spreadMask(bits: number): number {
  let mask = 0;
  for (let j = 0; j < bits; j++) mask |= 1 << (30 - Math.floor((j * 31) / bits));
  return mask;
}

/** Normalized chunking, level 2: a stricter mask (log2(avg)+2 bits) before avgSize, a looser one (-2) after. */
export function chunkMasks(avgSize: number): { readonly maskS: number; readonly maskL: number } {
  const bits = Math.round(Math.log2(avgSize));
  return { maskS: spreadMask(bits + 2), maskL: spreadMask(bits - 2) };
}

const GEAR = Int32Array.from(GEAR_TABLE, (g) => g | 0);

/**
 * Where the chunk that starts at `start` ends, given that the input ends at `end`: the reference form of the cut,
 * one byte per step (the streaming chunker runs the same definition in WebAssembly). Returns the chunk's length.
 * The hash starts afresh at minSize bytes into the chunk; the chunk includes the byte whose hash matched.
 */
export function cutPoint(data: Uint8Array, params: ChunkingParams, start = 0, end = data.length): number {
  const { minSize, avgSize, maxSize } = params;
  const n = end - start;
  if (n <= minSize) return n;
  const stop = Math.min(n, maxSize);
  const center = Math.min(avgSize, stop);
  const { maskS, maskL } = chunkMasks(avgSize);
  let h = 0;
  let i = minSize;
  for (; i < center; i++) {
    h = ((h << 1) + (GEAR[data[start + i] as number] as number)) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  for (; i < stop; i++) {
    h = ((h << 1) + (GEAR[data[start + i] as number] as number)) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  return stop;
}

export interface ChunkSpan {
  readonly offset: number;
  readonly length: number;
}

/** The chunks of a whole buffer (pure, no hashing): for tests and small inputs. */
export function chunkBoundaries(data: Uint8Array, opts: ChunkerOptions = {}): ChunkSpan[] {
  const params = resolveChunking(opts);
  const spans: ChunkSpan[] = [];
  for (let offset = 0; offset < data.length; ) {
    const length = cutPoint(data, params, offset);
    spans.push({ offset, length });
    offset += length;
  }
  return spans;
}

// ---- WebAssembly cut ----
// V8 runs the loop above at ~0.4 GiB/s; the same loop in WebAssembly, two bytes per step as in the 2020 paper
// (hash << 2 plus a table of gear << 1, then the second byte), runs at ~2 GiB/s. Hand-assembled: no toolchain.
// Memory layout: gear table at 0, gear << 1 at 1024, data from TABLES_BYTES on.

const TABLES_BYTES = 2048;
const I32 = 0x7f;

/** The few instructions used below: opcode and immediate (block type, index, constant or memory offset). */
const OPCODES: Record<string, readonly [number, 'none' | 'void' | 'index' | 'sleb' | 'load8' | 'load32']> = {
  block: [0x02, 'void'],
  loop: [0x03, 'void'],
  if: [0x04, 'void'],
  end: [0x0b, 'none'],
  br: [0x0c, 'index'],
  br_if: [0x0d, 'index'],
  return: [0x0f, 'none'],
  call: [0x10, 'index'],
  select: [0x1b, 'none'],
  'local.get': [0x20, 'index'],
  'local.set': [0x21, 'index'],
  'local.tee': [0x22, 'index'],
  'global.get': [0x23, 'index'],
  'global.set': [0x24, 'index'],
  'i32.load': [0x28, 'load32'],
  'i32.load8_u': [0x2d, 'load8'],
  'i32.const': [0x41, 'sleb'],
  'i32.eqz': [0x45, 'none'],
  'i32.lt_u': [0x49, 'none'],
  'i32.gt_u': [0x4b, 'none'],
  'i32.le_u': [0x4d, 'none'],
  'i32.ge_u': [0x4f, 'none'],
  'i32.add': [0x6a, 'none'],
  'i32.sub': [0x6b, 'none'],
  'i32.and': [0x71, 'none'],
  'i32.shl': [0x74, 'none'],
};

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

/** Assembles a function body written as WAT-like instructions (`;;` comments, loads take their offset). */
function assemble(text: string): number[] {
  const tokens = text.replace(/;;.*$/gm, '').split(/\s+/).filter(Boolean);
  const out: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const op = OPCODES[tokens[i] as string];
    if (op === undefined) throw new Error(`wasm assembler: unknown instruction ${tokens[i]}`);
    const [code, immediate] = op;
    out.push(code);
    if (immediate === 'void') out.push(0x40);
    else if (immediate !== 'none') {
      const arg = Number(tokens[++i]);
      if (immediate === 'sleb') out.push(...sleb(arg));
      else if (immediate === 'index') out.push(...uleb(arg));
      else out.push(immediate === 'load8' ? 0 : 2, ...uleb(arg)); // alignment, then offset
    }
  }
  return [...out, 0x0b];
}

/**
 * roll(q, lim, mask) -> the address after the first byte in [q, lim) whose hash matches mask, or 0 (data never
 * starts at 0). The hash carries over in global 0 from one call to the next.
 */
const ROLL = `
  ;; params 0 q, 1 lim, 2 mask; locals 3 h, 4 mask << 1
  global.get 0  local.set 3
  local.get 2  i32.const 1  i32.shl  local.set 4
  block
    loop
      local.get 0  i32.const 1  i32.add  local.get 1  i32.ge_u  br_if 1
      ;; first byte of the pair: (h << 2) + (gear << 1) is the one-byte hash shifted, test it against mask << 1
      local.get 3  i32.const 2  i32.shl
      local.get 0  i32.load8_u 0  i32.const 2  i32.shl  i32.load 1024
      i32.add  local.tee 3
      local.get 4  i32.and  i32.eqz
      if  local.get 0  i32.const 1  i32.add  return  end
      ;; second byte: add its gear, test against mask
      local.get 3
      local.get 0  i32.load8_u 1  i32.const 2  i32.shl  i32.load 0
      i32.add  local.tee 3
      local.get 2  i32.and  i32.eqz
      if  local.get 0  i32.const 2  i32.add  return  end
      local.get 0  i32.const 2  i32.add  local.set 0
      br 0
    end
  end
  ;; an odd byte left over
  local.get 0  local.get 1  i32.lt_u
  if
    local.get 3  i32.const 1  i32.shl
    local.get 0  i32.load8_u 0  i32.const 2  i32.shl  i32.load 0
    i32.add  local.tee 3
    local.get 2  i32.and  i32.eqz
    if  local.get 0  i32.const 1  i32.add  return  end
  end
  local.get 3  global.set 0
  i32.const 0
`;

/** cut(base, n, min, avg, max, maskS, maskL) -> chunk length: the same definition as cutPoint. */
const CUT = `
  ;; params 0 base, 1 n, 2 min, 3 avg, 4 max, 5 maskS, 6 maskL; locals 7 stop, 8 center, 9 roll's result
  local.get 1  local.get 2  i32.le_u
  if  local.get 1  return  end
  ;; stop = min(n, max); center = min(avg, stop)
  local.get 4  local.get 1  local.get 1  local.get 4  i32.gt_u  select  local.set 7
  local.get 3  local.get 7  local.get 3  local.get 7  i32.lt_u  select  local.set 8
  i32.const 0  global.set 0
  local.get 0  local.get 2  i32.add  local.get 0  local.get 8  i32.add  local.get 5  call 0  local.tee 9
  if  local.get 9  local.get 0  i32.sub  return  end
  local.get 0  local.get 8  i32.add  local.get 0  local.get 7  i32.add  local.get 6  call 0  local.tee 9
  if  local.get 9  local.get 0  i32.sub  return  end
  local.get 7
`;

function vec(items: readonly (readonly number[])[]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: readonly number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  return vec([...s].map((ch) => [ch.charCodeAt(0)]));
}

function functionCode(i32Locals: number, text: string): number[] {
  const code = [...vec([[...uleb(i32Locals), I32]]), ...assemble(text)];
  return [...uleb(code.length), ...code];
}

function wasmModuleBytes(): Uint8Array<ArrayBuffer> {
  const funcType = (params: number) => [0x60, ...vec(Array.from({ length: params }, () => [I32])), 1, I32];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([funcType(3), funcType(7)])),
    // memory "e"."m": shared (flags 3), 1 to 65536 pages
    ...section(2, vec([[...name('e'), ...name('m'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]])),
    ...section(3, vec([[0], [1]])),
    // global 0: mutable i32 = 0
    ...section(6, vec([[I32, 0x01, 0x41, 0x00, 0x0b]])),
    ...section(7, vec([[...name('cut'), 0x00, 1]])),
    ...section(10, vec([functionCode(2, ROLL), functionCode(3, CUT)])),
  ]);
}

type WasmCut = (
  base: number,
  n: number,
  minSize: number,
  avgSize: number,
  maxSize: number,
  maskS: number,
  maskL: number,
) => number;

// Typed here: the project's TypeScript libs (es2024, node) do not declare the WebAssembly JS API.
interface WasmApi {
  Module: new (bytes: Uint8Array<ArrayBuffer>) => object;
  Instance: new (module: object, imports: object) => { readonly exports: { readonly cut: WasmCut } };
  Memory: new (descriptor: {
    initial: number;
    maximum: number;
    shared: true;
  }) => {
    readonly buffer: SharedArrayBuffer;
  };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
let wasmModule: object | undefined;

/** Shared memory with the gear tables at 0 and `dataBytes` after them, and the cut function over it. */
function createCutter(dataBytes: number): { buffer: SharedArrayBuffer; cut: WasmCut } {
  wasmModule ??= new wasm.Module(wasmModuleBytes());
  const pages = Math.ceil((TABLES_BYTES + dataBytes) / 65536);
  const memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
  const tables = new Int32Array(memory.buffer, 0, 512);
  tables.set(GEAR, 0);
  tables.set(
    GEAR.map((g) => g << 1),
    256,
  );
  const instance = new wasm.Instance(wasmModule, { e: { m: memory } });
  return { buffer: memory.buffer, cut: instance.exports.cut };
}

// ---- hashing ----

/** Per-chunk digests and the whole-image digest, over ranges of the shared memory. */
interface Hasher {
  /** Advances the image hash over [from, to) and returns the digests of the spans ([address, length] pairs). */
  submit(from: number, to: number, spans: readonly number[]): Promise<string[]>;
  finish(): Promise<string>;
  close(): Promise<void>;
}

function inlineHasher(mem: Uint8Array): Hasher {
  const image = createHash('sha256');
  return {
    submit(from, to, spans) {
      image.update(mem.subarray(from, to));
      const digests: string[] = [];
      for (let i = 0; i < spans.length; i += 2) {
        const at = spans[i] as number;
        digests.push(
          createHash('sha256')
            .update(mem.subarray(at, at + (spans[i + 1] as number)))
            .digest('hex'),
        );
      }
      return Promise.resolve(digests);
    },
    finish: () => Promise.resolve(image.digest('hex')),
    close: () => Promise.resolve(),
  };
}

// Plain JavaScript, evaluated as the worker's script: no loader or file path to resolve in any runtime.
const HASH_WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const mem = new Uint8Array(workerData.buffer);
if (workerData.role === 'chunks') {
  parentPort.on('message', (spans) => {
    const digests = [];
    for (let i = 0; i < spans.length; i += 2) {
      digests.push(createHash('sha256').update(mem.subarray(spans[i], spans[i] + spans[i + 1])).digest('hex'));
    }
    parentPort.postMessage(digests);
  });
} else {
  const image = createHash('sha256');
  parentPort.on('message', (range) => {
    if (range === null) {
      parentPort.postMessage(image.digest('hex'));
    } else {
      image.update(mem.subarray(range[0], range[1]));
      parentPort.postMessage(true);
    }
  });
}
`;

/**
 * Two workers over the shared memory, one for the chunk digests and one for the image digest, so both SHA-256
 * passes overlap with the cutting on the main thread. Workers answer in order; a worker with nothing to do is
 * unref'd so an abandoned chunker never holds the process open.
 */
function threadedHasher(buffer: SharedArrayBuffer): Hasher {
  let failure: Error | undefined;
  let closed = false;
  const spawn = (role: 'chunks' | 'image') => {
    const queue: PromiseWithResolvers<unknown>[] = [];
    const worker = new Worker(HASH_WORKER_SOURCE, { eval: true, workerData: { buffer, role } });
    worker.unref();
    worker.on('message', (reply: unknown) => {
      queue.shift()?.resolve(reply);
      if (queue.length === 0) worker.unref();
    });
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => {
      if (!closed) fail(new Error(`chunk hashing worker (${role}) exited with code ${code}`));
    });
    const request = <T>(message: unknown): Promise<T> => {
      if (failure !== undefined) return Promise.reject(failure);
      const deferred = Promise.withResolvers<unknown>();
      queue.push(deferred);
      worker.ref();
      worker.postMessage(message);
      return deferred.promise as Promise<T>;
    };
    return { worker, queue, request };
  };
  const chunks = spawn('chunks');
  const image = spawn('image');
  function fail(err: Error): void {
    failure ??= err;
    for (const w of [chunks, image]) {
      for (const d of w.queue.splice(0)) d.reject(failure);
      w.worker.unref();
    }
  }
  return {
    async submit(from, to, spans) {
      const [digests] = await Promise.all([chunks.request<string[]>(spans), image.request<true>([from, to])]);
      return digests;
    },
    finish: () => image.request<string>(null),
    async close() {
      closed = true;
      await Promise.all([chunks.worker.terminate(), image.worker.terminate()]);
    },
  };
}

// ---- streaming ----

export interface ChunkInfo {
  readonly offset: number;
  readonly length: number;
  /** Lowercase hex. */
  readonly sha256: string;
}

export interface ImageSummary {
  readonly size: number;
  /** SHA-256 of the whole image, lowercase hex. */
  readonly sha256: string;
  readonly chunking: ChunkingParams;
}

export interface ChunkStreamOptions extends ChunkerOptions {
  /**
   * Bytes read into each buffer (default 3 × maxSize, at least 1 MiB; at least maxSize). Buffers take
   * 3 × (readSize + maxSize) of shared memory (96 MiB at the defaults). Boundaries and digests never depend on it.
   */
  readonly readSize?: number | undefined;
  /** Hash on two worker threads when the input is larger than one read (default true). */
  readonly threads?: boolean | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** A Node Readable, any (async) iterable of byte pieces, or one buffer. */
export type ChunkSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array;

/** Fills the whole target unless the input ends first; returns the bytes written. */
type Filler = (target: Uint8Array) => Promise<number>;

const SLABS = 3;
const MAX_READ_SIZE = 256 * 1024 * 1024;

function resolveReadSize(value: number | undefined, params: ChunkingParams): number {
  const readSize = value ?? Math.max(3 * params.maxSize, 1024 * 1024);
  if (!Number.isSafeInteger(readSize) || readSize < params.maxSize || readSize > MAX_READ_SIZE) {
    throw new ChunkingOptionsError(
      'readSize',
      `must be an integer from maxSize (${params.maxSize}) to ${MAX_READ_SIZE}, got ${String(readSize)}`,
    );
  }
  return readSize;
}

const noop = () => {};

/** The promise, or the signal's reason as soon as it aborts (a stalled source must not outlive a cancel). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * The pipeline: SLABS buffers in shared memory, each [maxSize reserved | readSize read]. While one buffer is cut,
 * the next is being read and earlier ones hashed. The bytes after the last cut (fewer than maxSize) are copied
 * into the next buffer's reserve, so a cut is only ever made with maxSize bytes in view or at the end of input:
 * boundaries depend on content alone.
 */
async function* chunkPipeline(
  fill: Filler,
  params: ChunkingParams,
  readSize: number,
  threads: boolean,
  signal: AbortSignal | undefined,
): AsyncGenerator<ChunkInfo, ImageSummary, undefined> {
  const { minSize, avgSize, maxSize } = params;
  const { maskS, maskL } = chunkMasks(avgSize);
  const slabSize = maxSize + readSize;
  const { buffer, cut } = createCutter(SLABS * slabSize);
  const mem = new Uint8Array(buffer);
  const slabStart = (slab: number) => TABLES_BYTES + slab * slabSize;
  const readInto = (slab: number): Promise<number> => {
    const at = slabStart(slab) + maxSize;
    const filling = fill(mem.subarray(at, at + readSize));
    filling.catch(noop); // awaited later, unless the consumer stops first
    return filling;
  };

  interface Batch {
    readonly slab: number;
    readonly offset: number;
    readonly spans: number[];
    readonly done: Promise<string[]>;
    digests?: string[];
  }
  const free = Array.from({ length: SLABS }, (_, i) => SLABS - 1 - i);
  const batches: Batch[] = [];
  function* emit(batch: Batch, digests: readonly string[]): Generator<ChunkInfo> {
    free.push(batch.slab);
    let offset = batch.offset;
    for (let i = 0; i < digests.length; i++) {
      const length = batch.spans[2 * i + 1] as number;
      yield { offset, length, sha256: digests[i] as string };
      offset += length;
    }
  }

  let hasher: Hasher | undefined;
  try {
    let size = 0;
    let carry = 0;
    let slab = free.pop() as number;
    let filling = readInto(slab);
    for (;;) {
      const got = await untilAborted(filling, signal);
      const eof = got < readSize;
      hasher ??= threads && !eof ? threadedHasher(buffer) : inlineHasher(mem);
      let next = -1;
      if (!eof) {
        while (free.length === 0) {
          const head = batches.shift() as Batch;
          yield* emit(head, await head.done);
        }
        next = free.pop() as number;
        filling = readInto(next);
      }
      const from = slabStart(slab) + maxSize - carry;
      const to = slabStart(slab) + maxSize + got;
      const spans: number[] = [];
      let at = from;
      while (at < to && (eof || to - at >= maxSize)) {
        const length = cut(at, to - at, minSize, avgSize, maxSize, maskS, maskL);
        spans.push(at, length);
        at += length;
      }
      carry = to - at;
      if (carry > 0) mem.copyWithin(slabStart(next) + maxSize - carry, at, to);
      const batch: Batch = { slab, offset: size, spans, done: hasher.submit(from, at, spans) };
      batch.done.then((digests) => {
        batch.digests = digests;
      }, noop);
      batches.push(batch);
      size += at - from;
      // Hand out what is already hashed without waiting for the rest.
      await Promise.resolve();
      while (batches[0]?.digests !== undefined) {
        const head = batches.shift() as Batch;
        yield* emit(head, head.digests as string[]);
      }
      if (eof) break;
      slab = next;
    }
    for (let head = batches.shift(); head !== undefined; head = batches.shift()) {
      yield* emit(head, await head.done);
    }
    return { size, sha256: await hasher.finish(), chunking: params };
  } finally {
    await hasher?.close();
  }
}

function sourceFiller(source: ChunkSource): { fill: Filler; close: () => Promise<void> } {
  const iterator: AsyncIterator<unknown> | Iterator<unknown> =
    source instanceof Uint8Array
      ? [source][Symbol.iterator]()
      : Symbol.asyncIterator in source
        ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
        : (source as Iterable<unknown>)[Symbol.iterator]();
  let pending: Uint8Array = new Uint8Array(0);
  let ended = false;
  let pulling = false;
  return {
    async fill(target) {
      let n = 0;
      while (n < target.length) {
        if (pending.length === 0) {
          if (ended) break;
          pulling = true;
          const r = await iterator.next();
          pulling = false;
          if (r.done === true) {
            ended = true;
            break;
          }
          if (!(r.value instanceof Uint8Array)) {
            throw new TypeError(
              `chunkStream: the source yielded ${typeof r.value}, expected Uint8Array pieces`,
            );
          }
          pending = r.value;
          continue;
        }
        const take = Math.min(pending.length, target.length - n);
        target.set(pending.subarray(0, take), n);
        pending = pending.subarray(take);
        n += take;
      }
      return n;
    },
    async close() {
      if (ended) return;
      ended = true;
      const closing = Promise.resolve(iterator.return?.());
      closing.catch(noop);
      // An async generator stalled in next() would only run return() after it; do not wait for that.
      if (!pulling) await closing;
    },
  };
}

/**
 * Chunks a byte stream (a Node Readable or any iterable of Uint8Array) in order; the generator's return value
 * is the size and whole-image digest. Memory stays bounded whatever the input length.
 */
export function chunkStream(
  source: ChunkSource,
  opts: ChunkStreamOptions = {},
): AsyncGenerator<ChunkInfo, ImageSummary, undefined> {
  const params = resolveChunking(opts);
  const readSize = resolveReadSize(opts.readSize, params);
  return (async function* () {
    const { fill, close } = sourceFiller(source);
    try {
      return yield* chunkPipeline(fill, params, readSize, opts.threads ?? true, opts.signal);
    } finally {
      await close();
    }
  })();
}

function fileFiller(file: FileHandle): Filler {
  let position = 0;
  return async (target) => {
    let n = 0;
    while (n < target.length) {
      const { bytesRead } = await file.read(target, n, target.length - n, position);
      if (bytesRead === 0) break;
      n += bytesRead;
      position += bytesRead;
    }
    return n;
  };
}

/** Chunks a file (or block device) with large sequential reads straight into the chunker's buffers. */
export function chunkFile(
  path: string,
  opts: ChunkStreamOptions = {},
): AsyncGenerator<ChunkInfo, ImageSummary, undefined> {
  const params = resolveChunking(opts);
  const readSize = resolveReadSize(opts.readSize, params);
  return (async function* () {
    const file = await open(path, 'r');
    try {
      return yield* chunkPipeline(fileFiller(file), params, readSize, opts.threads ?? true, opts.signal);
    } finally {
      await file.close();
    }
  })();
}

export interface ChunkedImage extends ImageSummary {
  readonly chunks: ChunkInfo[];
}

/** Runs a chunker to the end and keeps every chunk (a 100 GiB image at 4 MiB average is ~25k entries). */
export async function collectChunks(
  chunker: AsyncGenerator<ChunkInfo, ImageSummary, undefined>,
): Promise<ChunkedImage> {
  const chunks: ChunkInfo[] = [];
  for (;;) {
    const r = await chunker.next();
    if (r.done === true) return { ...r.value, chunks };
    chunks.push(r.value);
  }
}
