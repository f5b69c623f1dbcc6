// The image manifest (version 1): format, size, whole-image digest, chunking parameters and the ordered chunk
// list. The server validates untrusted manifests here; the agent builds them from the chunker's output.
import { createHash, type Hash } from 'node:crypto';
import { z } from 'zod';
import {
  CHUNKING_ALGORITHM,
  type ChunkInfo,
  ChunkingOptionsError,
  type ChunkingParams,
  MAX_CHUNK_SIZE,
  resolveChunking,
} from './chunker.ts';
import { IMAGE_FORMATS } from './image-format.ts';

export const MANIFEST_VERSION = 1;
/** 500k chunks: 2 TiB at the default 4 MiB average, ~50 MB of JSON. */
export const MAX_MANIFEST_CHUNKS = 500_000;
/** Problems listed in one error; a hostile manifest can have half a million. */
const MAX_REPORTED_ISSUES = 20;

export const sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

export const manifestChunkSchema = z.strictObject({
  offset: z.int().min(0),
  length: z.int().min(1).max(MAX_CHUNK_SIZE),
  sha256: sha256HexSchema,
});
export type ManifestChunk = z.infer<typeof manifestChunkSchema>;

export const chunkingSchema = z
  .strictObject({
    algorithm: z.literal(CHUNKING_ALGORITHM),
    // Ranges and their combination are checked by the chunker's own rules below.
    minSize: z.int(),
    avgSize: z.int(),
    maxSize: z.int(),
  })
  .superRefine((c, ctx) => {
    try {
      resolveChunking(c);
    } catch (err) {
      if (!(err instanceof ChunkingOptionsError)) throw err;
      ctx.addIssue({ code: 'custom', path: [err.option], message: err.message.replace(/^.*?: /, '') });
    }
  });

export const manifestSchema = z
  .strictObject({
    version: z.literal(MANIFEST_VERSION),
    format: z.enum(IMAGE_FORMATS),
    size: z.int().min(0),
    sha256: sha256HexSchema,
    chunking: chunkingSchema,
    chunks: z
      .array(manifestChunkSchema)
      .max(MAX_MANIFEST_CHUNKS, `must have at most ${MAX_MANIFEST_CHUNKS} chunks`),
  })
  .superRefine((m, ctx) => {
    let reported = 0;
    let suppressed = 0;
    const issue = (path: (string | number)[], message: string) => {
      if (reported < MAX_REPORTED_ISSUES) {
        ctx.addIssue({ code: 'custom', path, message });
        reported++;
      } else {
        suppressed++;
      }
    };
    const { minSize, maxSize } = m.chunking;
    const lengths = new Map<string, { length: number; index: number }>();
    let end = 0;
    m.chunks.forEach((chunk, i) => {
      if (i === 0 && chunk.offset !== 0) {
        issue(['chunks', 0, 'offset'], `expected 0 (the first chunk starts the image), got ${chunk.offset}`);
      } else if (chunk.offset !== end) {
        const what = chunk.offset < end ? 'overlaps the previous chunk' : 'leaves a gap after it';
        issue(
          ['chunks', i, 'offset'],
          `expected ${end} (end of chunk ${i - 1}), got ${chunk.offset}: ${what}`,
        );
      }
      // Carry on from this chunk's own end so one bad offset is reported once, not for every later chunk.
      end = chunk.offset + chunk.length;
      if (chunk.length > maxSize) {
        issue(['chunks', i, 'length'], `must be at most chunking.maxSize (${maxSize}), got ${chunk.length}`);
      } else if (chunk.length < minSize && i < m.chunks.length - 1) {
        issue(
          ['chunks', i, 'length'],
          `must be at least chunking.minSize (${minSize}) except for the last chunk, got ${chunk.length}`,
        );
      }
      const seen = lengths.get(chunk.sha256);
      if (seen === undefined) {
        lengths.set(chunk.sha256, { length: chunk.length, index: i });
      } else if (seen.length !== chunk.length) {
        issue(
          ['chunks', i, 'length'],
          `digest ${chunk.sha256} has length ${seen.length} at chunks[${seen.index}], got ${chunk.length}`,
        );
      }
    });
    if (m.chunks.length === 0 && m.size > 0) {
      // Nothing covers the image: the list is what is wrong, not the size.
      issue(['chunks'], `is empty, but the image is ${m.size} bytes: chunks must cover it from 0 to size`);
    } else if (end !== m.size) {
      issue(['size'], `expected ${end} (the end of the last chunk), got ${m.size}`);
    }
    if (suppressed > 0)
      ctx.addIssue({ code: 'custom', path: [], message: `and ${suppressed} more problems` });
  });
export type Manifest = z.infer<typeof manifestSchema>;

export interface ManifestIssue {
  /** Where, written the way a reader finds it: `chunks[12].offset`; empty for the manifest as a whole. */
  readonly field: string;
  readonly reason: string;
}

export type ManifestParseResult =
  | { readonly ok: true; readonly manifest: Manifest }
  | { readonly ok: false; readonly error: string; readonly issues: readonly ManifestIssue[] };

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  constructor(
    message: string,
    readonly issues: readonly ManifestIssue[],
  ) {
    super(message);
  }
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, seg) =>
      typeof seg === 'number' ? `${acc}[${seg}]` : acc === '' ? String(seg) : `${acc}.${String(seg)}`,
    '',
  );
}

function failure(issues: readonly ManifestIssue[]): ManifestParseResult & { ok: false } {
  const lines = issues.map((i) => (i.field === '' ? i.reason : `${i.field}: ${i.reason}`));
  return { ok: false, error: `invalid manifest:\n${lines.join('\n')}`, issues };
}

/** Validates an already-decoded manifest (e.g. a JSON request body). */
export function validateManifest(value: unknown): ManifestParseResult {
  // Refuse an oversized list before validating its elements one by one.
  const chunks = (value as { chunks?: unknown } | null)?.chunks;
  if (Array.isArray(chunks) && chunks.length > MAX_MANIFEST_CHUNKS) {
    return failure([
      { field: 'chunks', reason: `must have at most ${MAX_MANIFEST_CHUNKS} chunks, got ${chunks.length}` },
    ]);
  }
  const result = manifestSchema.safeParse(value);
  if (result.success) return { ok: true, manifest: result.data };
  const issues = result.error.issues.slice(0, MAX_REPORTED_ISSUES + 1).map((issue) => ({
    field: fieldPath(issue.path),
    reason: issue.message,
  }));
  const more = result.error.issues.length - issues.length;
  if (more > 0) issues.push({ field: '', reason: `and ${more} more problems` });
  return failure(issues);
}

/** Parses manifest JSON; never throws, the result names each bad field and why. */
export function parseManifest(json: string | Uint8Array): ManifestParseResult {
  let value: unknown;
  try {
    value = JSON.parse(typeof json === 'string' ? json : new TextDecoder().decode(json));
  } catch (err) {
    return failure([{ field: '', reason: `not JSON: ${(err as Error).message}` }]);
  }
  return validateManifest(value);
}

/** Compact JSON with the keys in schema order, so the same manifest always serializes to the same bytes. */
export function serializeManifest(manifest: Manifest): string {
  const { version, format, size, sha256, chunking, chunks } = manifest;
  return JSON.stringify({
    version,
    format,
    size,
    sha256,
    chunking: {
      algorithm: chunking.algorithm,
      minSize: chunking.minSize,
      avgSize: chunking.avgSize,
      maxSize: chunking.maxSize,
    },
    chunks: chunks.map((c) => ({ offset: c.offset, length: c.length, sha256: c.sha256 })),
  });
}

export interface ChunkedImageInput {
  readonly size: number;
  readonly sha256: string;
  readonly chunking: ChunkingParams;
  readonly chunks: readonly ChunkInfo[];
}

/** The manifest of a chunked image (collectChunks' result); throws ManifestError if it would not validate. */
export function buildManifest(format: Manifest['format'], image: ChunkedImageInput): Manifest {
  const result = validateManifest({
    version: MANIFEST_VERSION,
    format,
    size: image.size,
    sha256: image.sha256,
    chunking: {
      algorithm: CHUNKING_ALGORITHM,
      minSize: image.chunking.minSize,
      avgSize: image.chunking.avgSize,
      maxSize: image.chunking.maxSize,
    },
    chunks: image.chunks.map((c) => ({ offset: c.offset, length: c.length, sha256: c.sha256 })),
  });
  if (!result.ok) throw new ManifestError(result.error, result.issues);
  return result.manifest;
}

export interface UniqueChunk {
  readonly sha256: string;
  readonly length: number;
}

/** Each distinct digest once, in order of first appearance: what has to be stored or fetched. */
export function uniqueChunks(manifest: Pick<Manifest, 'chunks'>): UniqueChunk[] {
  const seen = new Set<string>();
  const out: UniqueChunk[] = [];
  for (const { sha256, length } of manifest.chunks) {
    if (!seen.has(sha256)) {
      seen.add(sha256);
      out.push({ sha256, length });
    }
  }
  return out;
}

const ZERO_BLOCK = new Uint8Array(64 * 1024);
const zeroDigests = new Map<number, string>();
const MAX_ZERO_DIGESTS = 65_536;
/**
 * SHA-256 states after 0, 64 KiB, 128 KiB… of zeros (up to the 8 MiB chunk limit), so the digest of any length
 * costs at most one 64 KiB update instead of hashing `length` zero bytes: every distinct chunk length of a
 * manifest is checked on every pass over it.
 */
const zeroStates: Hash[] = [createHash('sha256')];

function zeroStateAt(blocks: number): Hash {
  while (zeroStates.length <= blocks) {
    zeroStates.push((zeroStates.at(-1) as Hash).copy().update(ZERO_BLOCK));
  }
  return zeroStates[blocks] as Hash;
}

/** SHA-256 of `length` zero bytes, memoized per length. */
export function zeroChunkSha256(length: number): string {
  let digest = zeroDigests.get(length);
  if (digest === undefined) {
    const blocks = Math.floor(length / ZERO_BLOCK.length);
    const hash = zeroStateAt(blocks).copy();
    hash.update(ZERO_BLOCK.subarray(0, length - blocks * ZERO_BLOCK.length));
    digest = hash.digest('hex');
    if (zeroDigests.size >= MAX_ZERO_DIGESTS) zeroDigests.clear();
    zeroDigests.set(length, digest);
  }
  return digest;
}

/** True if the chunk is all zeros: skipped on upload, written as a hole on download. */
export function isZeroChunk(sha256: string, length: number): boolean {
  if (!Number.isSafeInteger(length) || length < 1 || length > MAX_CHUNK_SIZE) return false;
  return zeroChunkSha256(length) === sha256;
}
