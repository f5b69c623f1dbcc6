// Experiment behind the zero-chunk finding: protocol/manifest.ts isZeroChunk hashes `length` zero bytes for every
// distinct chunk length it meets, and clears its memo past 256 lengths, so each pass over a manifest of a few
// hundred non-zero chunks (whose lengths all differ) hashes about the image's size of zeros again. Compared with
// SHA-256 states checkpointed every 64 KiB (a new length then costs under 64 KiB of hashing).
// Usage: npx tsx bench/experiments/zero-digest.ts [chunks]
import { createHash, type Hash } from 'node:crypto';
import { isZeroChunk } from '../../protocol/manifest.ts';

const n = Number(process.argv[2] ?? 350);
const MiB = 1024 * 1024;
const lengths = Array.from({ length: n }, (_, i) => MiB + ((i * 2654435761) % (7 * MiB)));
const notZero = 'f'.repeat(64);

for (const pass of [1, 2]) {
  const t = performance.now();
  for (const l of lengths) isZeroChunk(notZero, l);
  process.stdout.write(
    `isZeroChunk now, pass ${pass}: ${(performance.now() - t).toFixed(0)} ms for ${n} chunks\n`,
  );
}

const BLOCK = new Uint8Array(64 * 1024);
const states: Hash[] = [createHash('sha256')];
const memo = new Map<number, string>();
function zeroDigest(length: number): string {
  let d = memo.get(length);
  if (d === undefined) {
    const k = Math.floor(length / BLOCK.length);
    while (states.length <= k) states.push((states[states.length - 1] as Hash).copy().update(BLOCK));
    d = (states[k] as Hash)
      .copy()
      .update(BLOCK.subarray(0, length - k * BLOCK.length))
      .digest('hex');
    memo.set(length, d);
  }
  return d;
}
for (const l of [1, 65536, 65537, 5 * MiB + 3, 8 * MiB]) {
  if (createHash('sha256').update(new Uint8Array(l)).digest('hex') !== zeroDigest(l))
    throw new Error(`bad ${l}`);
}
memo.clear();
const t = performance.now();
for (const l of lengths) zeroDigest(l);
process.stdout.write(`checkpointed, cold: ${(performance.now() - t).toFixed(0)} ms for ${n} chunks\n`);
