// P1: one unique image, one destination in another city. Our end-to-end time (every chunk and the whole image
// verified) against the naive S3 path moving the same file over the same local S3 server.
import { rm, stat } from 'node:fs/promises';
import type { BenchCloud } from '../lib/cloud.ts';
import { syncDisks, uniqueImage, writeImage } from '../lib/images.ts';
import { migrate } from '../lib/migrate.ts';
import { cleanNaive, type NaiveJob, type NaiveResult, runNaiveProcess } from '../lib/naive.ts';
import { figure, type RunContext, type Workload } from '../lib/types.ts';
import { fmtMiB, fmtS, GiB, MiB, type PhaseCpu, phaseCpu, round } from '../lib/util.ts';

export const P1_SOURCE = 'dc-gz';
export const P1_DESTINATION = 'dc-osa';

export interface P1Shared {
  readonly imageId: string;
  readonly spec: import('../lib/images.ts').ImageSpec;
  readonly fileBytes: number;
  readonly naive: NaiveResult;
}

export function naiveJob(
  ctx: RunContext,
  b: BenchCloud,
  file: string,
  key: string,
  to: readonly string[],
): NaiveJob {
  return {
    endpoint: b.cloud.endpoints.s3,
    region: 'ap-northeast-1',
    file,
    sourceBucket: b.bucket(b.cacheNodeOf(P1_SOURCE)),
    key: `naive/${key}`,
    destinations: to.map((dc) => ({
      bucket: b.bucket(b.cacheNodeOf(dc)),
      file: b.imagePath(dc, `naive-${key}`),
    })),
    queueSize: ctx.concurrency,
  };
}

/** Runs the naive path on a file while the sampler watches; removes what it stored afterwards. */
export async function measureNaive(ctx: RunContext, job: NaiveJob) {
  await syncDisks();
  ctx.sampler.start();
  const result = await runNaiveProcess(job);
  const window = ctx.sampler.stop();
  await cleanNaive(job);
  return { result, window };
}

export const p1: Workload = async (ctx) => {
  const { b, format, profile } = ctx;
  const size = ctx.sized(profile === 'full' ? 4 * GiB : 2 * GiB);
  const data = size / 2;
  const reps = profile === 'full' ? 2 : 1;
  const runs: {
    ours: { wallMs: number; phases: PhaseCpu[]; uploadedBytes: number; wanBytes: number; id: string };
    naive: NaiveResult;
    oursCpu: unknown;
    naiveCpu: unknown;
    fileBytes: number;
  }[] = [];
  let last: P1Shared | undefined;
  for (let rep = 0; rep < reps; rep++) {
    const imageId = `p1-${rep}.${format}`;
    const spec = uniqueImage(size, data, `p1 ${rep} ${Date.now()}`);
    const source = b.imagePath(P1_SOURCE, imageId);
    ctx.log(
      `P1 rep ${rep + 1}/${reps}: writing a ${format} image, ${fmtMiB(size)} disk with ${fmtMiB(data)} of data`,
    );
    const fileBytes = await writeImage(source, spec, format);
    // The naive path first on even repetitions, ours first on odd ones: drift in the machine's load cancels out.
    const naiveFirst = rep % 2 === 0;
    const job = naiveJob(ctx, b, source, `p1-${rep}`, [P1_DESTINATION]);
    let naive: Awaited<ReturnType<typeof measureNaive>> | undefined;
    if (naiveFirst) naive = await measureNaive(ctx, job);
    await syncDisks();
    ctx.sampler.start();
    const ours = await migrate(b, { imageId, from: P1_SOURCE, to: [P1_DESTINATION], vmId: `vm-p1-${rep}` });
    const oursWindow = ctx.sampler.stop();
    const phases = phaseCpu(ours, ctx.sampler);
    const delivered = await stat(b.imagePath(P1_DESTINATION, imageId));
    if (delivered.size !== fileBytes)
      throw new Error(`P1: delivered ${delivered.size} bytes, expected ${fileBytes}`);
    if (!naiveFirst) naive = await measureNaive(ctx, job);
    if (!naive) throw new Error('unreachable');
    ctx.log(
      `P1 rep ${rep + 1}: ours ${fmtS(ours.wallMs)}, naive ${fmtS(naive.result.totalMs)} (${fmtMiB(fileBytes)} file)`,
    );
    runs.push({
      ours: {
        id: ours.id,
        wallMs: ours.wallMs,
        phases,
        uploadedBytes: ours.uploadedBytes,
        wanBytes: ours.wanBytes,
      },
      naive: naive.result,
      oursCpu: oursWindow,
      naiveCpu: naive.window,
      fileBytes,
    });
    // The last image stays at both ends for P4 (re-migration after changes, to a destination that holds the
    // previous copy); earlier ones go.
    if (rep < reps - 1) {
      await rm(b.imagePath(P1_DESTINATION, imageId), { force: true });
      await rm(source, { force: true });
    } else last = { imageId, spec, fileBytes, naive: naive.result };
  }
  if (last) ctx.shared.set('P1', last);

  const ratios = runs.map((r) => r.ours.wallMs / r.naive.totalMs);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const ratio = mean(ratios);
  const oursMs = mean(runs.map((r) => r.ours.wallMs));
  const naiveMs = mean(runs.map((r) => r.naive.totalMs));
  const fileBytes = runs[0]?.fileBytes ?? 0;
  return {
    id: 'P1',
    title: 'One unique image, one destination',
    setup:
      `A ${format} image of a ${fmtMiB(size)} disk holding ${fmtMiB(data)} of pseudo-random data in 12 extents between holes ` +
      `(${fmtMiB(fileBytes)} file), moved ${P1_SOURCE} → ${P1_DESTINATION} (cache nodes ${b.cacheNodeOf(P1_SOURCE)} → ${b.cacheNodeOf(P1_DESTINATION)}); ` +
      `${reps} repetition(s), each with a fresh image, ours and the naive path alternating which goes first.`,
    figures: [
      figure({
        id: 'P1',
        metric: 'end-to-end time, ours ÷ naive',
        unit: 'ratio',
        value: round(ratio),
        target: { op: '<=', value: 1 },
        ours: `${fmtS(oursMs)} (${(fileBytes / MiB / (oursMs / 1000)).toFixed(1)} MiB/s of image)`,
        baseline: `${fmtS(naiveMs)} (${(fileBytes / MiB / (naiveMs / 1000)).toFixed(1)} MiB/s), naive S3 path, same run`,
        ...(reps > 1 ? { note: `per repetition: ${ratios.map((r) => r.toFixed(3)).join(', ')}` } : {}),
      }),
    ],
    details: { runs },
    findings: [],
  };
};
