import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkStream, collectChunks } from '../../../protocol/chunker.ts';
import {
  buildManifest,
  isZeroChunk,
  MAX_MANIFEST_CHUNKS,
  type Manifest,
  ManifestError,
  parseManifest,
  serializeManifest,
  uniqueChunks,
  validateManifest,
  zeroChunkSha256,
} from '../../../protocol/manifest.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');
const digest = (n: number) => sha256(`chunk ${n}`);

/** A valid manifest of `lengths` chunks with distinct digests (default chunking: max 8 MiB). */
function manifestOf(lengths: readonly number[]): Manifest {
  let offset = 0;
  const chunks = lengths.map((length, i) => {
    const chunk = { offset, length, sha256: digest(i) };
    offset += length;
    return chunk;
  });
  return {
    version: 1,
    format: 'qcow2',
    size: offset,
    sha256: digest(-1),
    chunking: { algorithm: 'fastcdc-2020', minSize: MiB, avgSize: 4 * MiB, maxSize: 8 * MiB },
    chunks,
  };
}

/** The reasons reported for one field, e.g. 'chunks[2].offset'. */
function reasons(value: unknown, field: string): string[] {
  const result = validateManifest(value);
  expect(result.ok).toBe(false);
  return result.ok ? [] : result.issues.filter((i) => i.field === field).map((i) => i.reason);
}

describe('manifest validation', () => {
  it('accepts a well-formed manifest', () => {
    const m = manifestOf([4 * MiB, 8 * MiB, 3 * MiB, 100]);
    expect(validateManifest(m)).toEqual({ ok: true, manifest: m });
  });

  it('accepts an empty image', () => {
    expect(validateManifest({ ...manifestOf([]), size: 0 }).ok).toBe(true);
  });

  it('rejects an overlapping chunk, naming the expected offset', () => {
    const m = manifestOf([4 * MiB, 4 * MiB, 4 * MiB]);
    (m.chunks[2] as { offset: number }).offset = 8 * MiB - 608;
    expect(reasons(m, 'chunks[2].offset')).toEqual([
      `expected ${8 * MiB} (end of chunk 1), got ${8 * MiB - 608}: overlaps the previous chunk`,
    ]);
  });

  it('rejects a gap between chunks', () => {
    const m = manifestOf([4 * MiB, 4 * MiB, 4 * MiB]);
    (m.chunks[1] as { offset: number }).offset += 1;
    expect(reasons(m, 'chunks[1].offset')).toEqual([
      `expected ${4 * MiB} (end of chunk 0), got ${4 * MiB + 1}: leaves a gap after it`,
    ]);
  });

  it('rejects a first chunk that does not start at 0', () => {
    const m = manifestOf([4 * MiB]);
    (m.chunks[0] as { offset: number }).offset = 10;
    expect(reasons(m, 'chunks[0].offset')).toEqual(['expected 0 (the first chunk starts the image), got 10']);
  });

  it('rejects a size that is not the sum of the chunk lengths', () => {
    const m = { ...manifestOf([4 * MiB, 2 * MiB]), size: 6 * MiB + 1 };
    expect(reasons(m, 'size')).toEqual([
      `expected ${6 * MiB} (the end of the last chunk), got ${6 * MiB + 1}`,
    ]);
  });

  it('names the chunk list, not the size, when no chunk covers a non-empty image', () => {
    const m = { ...manifestOf([4 * MiB]), chunks: [] };
    expect(reasons(m, 'chunks')).toEqual([
      `is empty, but the image is ${4 * MiB} bytes: chunks must cover it from 0 to size`,
    ]);
    expect(reasons(m, 'size')).toEqual([]);
  });

  it('rejects chunk lengths outside 1..maxSize, and short chunks before the last', () => {
    expect(reasons(manifestOf([4 * MiB, 0]), 'chunks[1].length')[0]).toMatch(/>=\s*1/);
    expect(reasons(manifestOf([8 * MiB + 1]), 'chunks[0].length')[0]).toMatch(/<=\s*8388608/);
    expect(reasons(manifestOf([100, 4 * MiB]), 'chunks[0].length')).toEqual([
      `must be at least chunking.minSize (${MiB}) except for the last chunk, got 100`,
    ]);
    const smallMax = manifestOf([3 * MiB, 2 * MiB]);
    const m = {
      ...smallMax,
      chunking: { ...smallMax.chunking, avgSize: MiB, minSize: MiB / 4, maxSize: 2 * MiB },
    };
    expect(reasons(m, 'chunks[0].length')).toEqual([
      `must be at most chunking.maxSize (${2 * MiB}), got ${3 * MiB}`,
    ]);
  });

  it('rejects one digest with two lengths but accepts repeated identical chunks', () => {
    const m = manifestOf([4 * MiB, 4 * MiB, 4 * MiB, 2 * MiB]);
    const chunks = m.chunks as { sha256: string }[];
    chunks[2] = { ...chunks[2], sha256: digest(0) } as { sha256: string };
    expect(validateManifest(m).ok).toBe(true);
    chunks[3] = { ...chunks[3], sha256: digest(0) } as { sha256: string };
    expect(reasons(m, 'chunks[3].length')).toEqual([
      `digest ${digest(0)} has length ${4 * MiB} at chunks[0], got ${2 * MiB}`,
    ]);
  });

  it('rejects digests that are not 64 lowercase hex digits', () => {
    const m = manifestOf([4 * MiB, 4 * MiB, 4 * MiB]);
    (m.chunks[0] as { sha256: string }).sha256 = digest(0).toUpperCase();
    (m.chunks[1] as { sha256: string }).sha256 = digest(1).slice(1);
    (m.chunks[2] as { sha256: string }).sha256 = `${digest(2).slice(1)}g`;
    const result = validateManifest({ ...m, sha256: 'abc' });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      for (const field of ['sha256', 'chunks[0].sha256', 'chunks[1].sha256', 'chunks[2].sha256']) {
        expect(result.error).toContain(`${field}: must be 64 lowercase hex digits`);
      }
    }
  });

  it(`rejects more than ${MAX_MANIFEST_CHUNKS} chunks`, () => {
    const n = MAX_MANIFEST_CHUNKS + 1;
    const m = { ...manifestOf([]), size: n * MiB, chunks: [] as Manifest['chunks'][number][] };
    for (let i = 0; i < n; i++) m.chunks.push({ offset: i * MiB, length: MiB, sha256: digest(0) });
    expect(reasons(m, 'chunks')).toEqual([`must have at most ${MAX_MANIFEST_CHUNKS} chunks, got ${n}`]);
    m.chunks.pop();
    expect(validateManifest({ ...m, size: (n - 1) * MiB }).ok).toBe(true);
  });

  it('rejects bad chunking parameters, naming the parameter', () => {
    const m = manifestOf([MiB]);
    expect(reasons({ ...m, chunking: { ...m.chunking, maxSize: 16 * MiB } }, 'chunking.maxSize')[0]).toMatch(
      /at most 8388608/,
    );
    expect(reasons({ ...m, chunking: { ...m.chunking, avgSize: 3 * MiB } }, 'chunking.avgSize')[0]).toMatch(
      /power of two/,
    );
    expect(
      reasons({ ...m, chunking: { ...m.chunking, algorithm: 'rabin' } }, 'chunking.algorithm'),
    ).toHaveLength(1);
  });

  it('rejects unknown fields, versions and formats', () => {
    const m = manifestOf([MiB]);
    expect(reasons({ ...m, extra: 1 }, '')[0]).toMatch(/extra/);
    expect(reasons({ ...m, version: 2 }, 'version')).toHaveLength(1);
    expect(reasons({ ...m, format: 'iso' }, 'format')).toHaveLength(1);
    expect(reasons({ ...m, size: 2 ** 53 }, 'size').length).toBeGreaterThanOrEqual(1);
  });

  it('caps the number of problems it lists', () => {
    const m = manifestOf(Array.from({ length: 1000 }, () => MiB));
    m.chunks.forEach((c, i) => {
      (c as { offset: number }).offset += i % 2;
    });
    const result = validateManifest(m);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.issues.length).toBe(21);
      expect(result.error).toMatch(/and \d+ more problems$/);
    }
  });

  it('never throws, whatever it is given', () => {
    const valid = manifestOf([4 * MiB, 4 * MiB]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.array(fc.jsonValue(), { maxLength: 4 }).map((chunks) => ({ ...valid, chunks })),
          fc.jsonValue().map((chunking) => ({ ...valid, chunking })),
          fc
            .array(fc.record({ offset: fc.jsonValue(), length: fc.jsonValue(), sha256: fc.jsonValue() }))
            .map((chunks) => ({ ...valid, chunks })),
          fc
            .record({
              offset: fc.integer(),
              length: fc.integer(),
              sha256: fc.constantFrom(digest(0), digest(1)),
            })
            .map((chunk) => ({ ...valid, chunks: [...valid.chunks, chunk] })),
        ),
        (value) => {
          const result = validateManifest(value);
          if (!result.ok) expect(result.issues.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('manifest JSON', () => {
  it('round-trips through serializeManifest and parseManifest, bytes stable', () => {
    const m = manifestOf([4 * MiB, 5 * MiB, 1]);
    const json = serializeManifest(m);
    const parsed = parseManifest(json);
    expect(parsed).toEqual({ ok: true, manifest: m });
    if (parsed.ok) expect(serializeManifest(parsed.manifest)).toBe(json);
    expect(parseManifest(new TextEncoder().encode(json)).ok).toBe(true);
  });

  it('reports malformed JSON as a result, not an exception', () => {
    const result = parseManifest('{"version": 1,');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(/not JSON/);
  });
});

describe('building from the chunker', () => {
  it('builds a valid manifest from chunker output', async () => {
    const data = new Uint8Array(300_000);
    for (let i = 0; i < 150_000; i++) data[i] = (i * 7919) % 251;
    const image = await collectChunks(chunkStream([data], { avgSize: 4096 }));
    const manifest = buildManifest('raw', image);
    expect(manifest.size).toBe(data.length);
    expect(manifest.sha256).toBe(sha256(data));
    expect(manifest.chunking).toEqual({
      algorithm: 'fastcdc-2020',
      minSize: 1024,
      avgSize: 4096,
      maxSize: 8192,
    });
    expect(manifest.chunks).toEqual(image.chunks);
    // The zero half is many identical chunks: stored once, and recognised as zeros.
    const unique = uniqueChunks(manifest);
    expect(unique.length).toBeLessThan(manifest.chunks.length);
    expect(new Set(unique.map((c) => c.sha256)).size).toBe(unique.length);
    expect(unique).toContainEqual({ sha256: zeroChunkSha256(8192), length: 8192 });
    for (const c of manifest.chunks) {
      const allZero = data.subarray(c.offset, c.offset + c.length).every((b) => b === 0);
      expect(isZeroChunk(c.sha256, c.length)).toBe(allZero);
    }
  });

  it('throws ManifestError when the result would not validate', () => {
    expect(() =>
      buildManifest('raw', {
        size: 10,
        sha256: sha256(''),
        chunking: { minSize: 1024, avgSize: 4096, maxSize: 8192 },
        chunks: [{ offset: 0, length: 5, sha256: sha256('x') }],
      }),
    ).toThrow(ManifestError);
  });
});

describe('zero chunks', () => {
  it('recognises the digest of zeros of the same length only', () => {
    for (const length of [1, 65535, 65536, 65537, 131071, 4 * MiB + 12345, 8 * MiB]) {
      const zeros = sha256(new Uint8Array(length));
      expect(zeroChunkSha256(length)).toBe(zeros);
      expect(isZeroChunk(zeros, length)).toBe(true);
      expect(isZeroChunk(zeros, length + 1)).toBe(false);
    }
    expect(isZeroChunk(sha256('x'), 1)).toBe(false);
    expect(isZeroChunk(sha256(''), 0)).toBe(false);
  });
});
