// P5: the agent's chunker on an 8 GiB VM-like image: throughput (FastCDC cut + SHA-256 of every chunk and of the
// whole image) and peak RSS, in a process started as the agent is. Baselines from the same run: one plain SHA-256
// pass over the same file, and the resident memory of an idle process of the same runtime.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTsChild } from '../lib/child.ts';
import { syncDisks, uniqueImage, writeImage } from '../lib/images.ts';
import { figure, type Workload } from '../lib/types.ts';
import { fmtMiB, GiB, MiB, round } from '../lib/util.ts';

const CHILD = fileURLToPath(new URL('./chunk-child.ts', import.meta.url));

interface ChildResult {
  readonly mode: string;
  readonly bytes: number;
  readonly chunks: number;
  readonly ms: number;
  readonly maxRssMiB: number;
  readonly cpuMs: number;
}

const child = (args: string[]): Promise<ChildResult> =>
  runTsChild<ChildResult>(`chunk-child ${args[0]}`, CHILD, args);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

export const p5: Workload = async (ctx) => {
  const size = ctx.sized(8 * GiB);
  const data = ctx.sized(ctx.profile === 'full' ? 6 * GiB : 1 * GiB);
  const reps = ctx.profile === 'full' ? 3 : 1;
  const file = join(ctx.scratch, 'p5.raw');
  ctx.log(`P5: writing an 8 GiB raw image with ${fmtMiB(data)} of data`);
  await writeImage(file, uniqueImage(size, data, `p5 ${Date.now()}`), 'raw');
  await syncDisks();
  try {
    const idle = await child(['idle']);
    const chunk: ChildResult[] = [];
    const sha: ChildResult[] = [];
    // One pass first, not counted: the first read of the holes fills the page cache with zero pages (kernel
    // time); after it both the chunker and the baseline measure CPU, not the disk or the page allocator.
    await child(['sha256', file]);
    for (let i = 0; i < reps; i++) {
      chunk.push(await child(['chunk', file]));
      sha.push(await child(['sha256', file]));
    }
    const rate = (r: ChildResult) => r.bytes / MiB / (r.ms / 1000);
    const chunkRate = median(chunk.map(rate));
    const shaRate = median(sha.map(rate));
    const peak = Math.max(...chunk.map((r) => r.maxRssMiB));
    const chunkCpu = median(chunk.map((r) => r.cpuMs / r.ms));
    return {
      id: 'P5',
      title: 'Agent chunking and hashing',
      setup:
        `An 8 GiB raw VM-like image (${fmtMiB(data)} of data in extents, the rest holes, read as zeros at memory speed) in the ` +
        `page cache (one uncounted pass first); the agent's chunker (protocol/chunker.ts chunkFile + collectChunks) in a child process started as the agent ` +
        `is (node --import tsx); ${reps > 1 ? `median of ${reps}, alternating with the baseline` : 'one run, then the baseline'}.`,
      figures: [
        figure({
          id: 'P5a',
          metric: 'chunk + hash throughput (MiB/s, 2 cores)',
          unit: 'MiB/s',
          value: round(chunkRate, 0),
          target: { op: '>=', value: 800 },
          ratioToBaseline: round(chunkRate / shaRate, 3),
          ours: `${round(chunkRate, 0)} MiB/s (${round(chunkCpu, 2)} cores busy; ${chunk[0]?.chunks ?? 0} chunks)`,
          baseline: `${round(shaRate, 0)} MiB/s: one plain SHA-256 pass over the same file, same run (ratio ${round(chunkRate / shaRate, 2)})`,
          note: `runs: ${chunk.map((r) => round(rate(r), 0)).join(', ')} MiB/s; SHA-256 pass: ${sha.map((r) => round(rate(r), 0)).join(', ')} MiB/s`,
        }),
        figure({
          id: 'P5b',
          metric: 'peak RSS of the chunking process on the 8 GiB image (MiB)',
          unit: 'MiB',
          value: round(peak, 0),
          target: { op: '<=', value: 256 },
          ratioToBaseline: round(peak / idle.maxRssMiB, 2),
          ours: `${round(peak, 0)} MiB`,
          baseline: `${round(idle.maxRssMiB, 0)} MiB: the same runtime (node + tsx) idle, same run; chunker's own share ${round(peak - idle.maxRssMiB, 0)} MiB`,
        }),
      ],
      details: { idle, chunk, sha, imageBytes: size, dataBytes: data },
      findings: [],
    };
  } finally {
    await rm(file, { force: true });
  }
};
