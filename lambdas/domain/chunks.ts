// Chunk sets of a manifest as the CMN sees them: each distinct non-zero chunk once, at its first offset.
// All-zero chunks never travel: the destination writes them as holes.
import { isZeroChunk, type Manifest } from '../../protocol/manifest.ts';

export interface DistinctChunk {
  readonly sha256: string;
  readonly length: number;
  readonly offset: number;
}

export function distinctNonZeroChunks(manifest: Manifest): DistinctChunk[] {
  const seen = new Set<string>();
  const out: DistinctChunk[] = [];
  for (const c of manifest.chunks) {
    if (seen.has(c.sha256)) continue;
    seen.add(c.sha256);
    if (!isZeroChunk(c.sha256, c.length)) out.push({ sha256: c.sha256, length: c.length, offset: c.offset });
  }
  return out;
}

export function zeroBytes(manifest: Manifest): number {
  let total = 0;
  for (const c of manifest.chunks) if (isZeroChunk(c.sha256, c.length)) total += c.length;
  return total;
}

export const sumLengths = (chunks: readonly { readonly length: number }[]) =>
  chunks.reduce((n, c) => n + c.length, 0);
