// P3: off-site backup of one image to three data centers. Bytes uploaded ÷ the image's size (one upload however
// many destinations), and wall time to three destinations ÷ to one, both cold, adjacent in time.
import { rm } from 'node:fs/promises';
import { syncDisks, uniqueImage, writeImage } from '../lib/images.ts';
import { type MigrationRun, migrate } from '../lib/migrate.ts';
import { figure, type Workload } from '../lib/types.ts';
import { fmtMiB, fmtS, GiB, type PhaseCpu, phaseCpu, round } from '../lib/util.ts';
import { measureNaive, naiveJob } from './p1-single.ts';

const SOURCE = 'dc-gz';
const ONE = ['dc-osa'];
const THREE = ['dc-osa', 'dc-jkt', 'dc-sh'];

export const p3: Workload = async (ctx) => {
  const { b, format, profile } = ctx;
  const size = ctx.sized(profile === 'full' ? 2 * GiB : 1 * GiB);
  const data = size / 2;
  const reps = profile === 'full' ? 2 : 1;
  const stamp = Date.now();
  const pairs: {
    one: MigrationRun;
    three: MigrationRun;
    fileBytes: Record<'one' | 'three', number>;
    phases: PhaseCpu[][];
  }[] = [];
  let naive: Record<string, unknown> | undefined;
  for (let rep = 0; rep < reps; rep++) {
    const runs: Partial<Record<'one' | 'three', MigrationRun>> = {};
    const phases: PhaseCpu[][] = [];
    const fileBytes = { one: 0, three: 0 };
    // Alternate which goes first, so a drift in the machine's load does not favour one.
    const order: ('one' | 'three')[] = rep % 2 === 0 ? ['one', 'three'] : ['three', 'one'];
    for (const which of order) {
      const imageId = `p3-${rep}-${which}.${format}`;
      const to = which === 'one' ? ONE : THREE;
      const source = b.imagePath(SOURCE, imageId);
      fileBytes[which] = await writeImage(
        source,
        uniqueImage(size, data, `p3 ${rep} ${which} ${stamp}`),
        format,
      );
      await syncDisks();
      ctx.sampler.start();
      const run = await migrate(b, { imageId, from: SOURCE, to, vmId: `vm-p3-${rep}-${which}` });
      ctx.sampler.stop();
      phases.push(phaseCpu(run, ctx.sampler));
      runs[which] = run;
      ctx.log(`P3 rep ${rep + 1}: ${to.length} destination(s) in ${fmtS(run.wallMs)}`);
      if (which === 'three' && profile === 'full' && !naive) {
        const measured = await measureNaive(ctx, naiveJob(ctx, b, source, 'p3', THREE));
        naive = { ...measured.result, cpu: measured.window };
      }
      for (const dc of to) await rm(b.imagePath(dc, imageId), { force: true });
      await rm(source, { force: true });
    }
    pairs.push({
      one: runs.one as MigrationRun,
      three: runs.three as MigrationRun,
      fileBytes,
      phases,
    });
  }
  const mean = (xs: number[]) => xs.reduce((a, c) => a + c, 0) / xs.length;
  const upRatio = mean(pairs.map((p) => p.three.uploadedBytes / p.fileBytes.three));
  const timeRatios = pairs.map((p) => p.three.wallMs / p.one.wallMs);
  const three = pairs[0]?.three;
  return {
    id: 'P3',
    title: 'Backup to three destinations',
    setup:
      `Two fresh ${format} images of the same shape (${fmtMiB(size)} disk, ${fmtMiB(data)} of data): one migrated ` +
      `${SOURCE} → ${ONE.join(', ')}, the other ${SOURCE} → ${THREE.join(', ')} (cache nodes ${THREE.map((d) => b.cacheNodeOf(d)).join(', ')}), ` +
      `both with nothing cached, one after the other; ${reps} repetition(s) alternating the order.`,
    figures: [
      figure({
        id: 'P3a',
        metric: 'bytes uploaded for 3 destinations ÷ image size (the naive path uploads the file once too)',
        unit: 'ratio',
        value: round(upRatio, 4),
        target: { op: '<=', value: 1 },
        ours: `${fmtMiB(three?.uploadedBytes ?? 0)} uploaded, ${fmtMiB(three?.copiedBytes ?? 0)} copied between cache nodes`,
        baseline: `${fmtMiB(pairs[0]?.fileBytes.three ?? 0)} image file`,
      }),
      figure({
        id: 'P3b',
        metric: 'wall time to 3 destinations ÷ to 1 destination (ours, same run)',
        unit: 'ratio',
        value: round(mean(timeRatios)),
        target: { op: '<=', value: 1.3 },
        ours: `${fmtS(mean(pairs.map((p) => p.three.wallMs)))} to 3`,
        baseline: `${fmtS(mean(pairs.map((p) => p.one.wallMs)))} to 1 (ours, fresh image of the same shape)`,
        ...(reps > 1 ? { note: `per repetition: ${timeRatios.map((r) => r.toFixed(3)).join(', ')}` } : {}),
      }),
    ],
    details: {
      pairs: pairs.map((p) => ({
        fileBytes: p.fileBytes,
        one: { id: p.one.id, wallMs: round(p.one.wallMs, 0), phases: p.one.phases },
        three: {
          id: p.three.id,
          wallMs: round(p.three.wallMs, 0),
          phases: p.three.phases,
          uploaded: p.three.uploadedBytes,
          copied: p.three.copiedBytes,
          downloaded: p.three.downloadedBytes,
          legs: p.three.record.legs.map((l) => ({
            dataCenterId: l.dataCenterId,
            cacheNodeId: l.cacheNodeId,
            completedAt: l.completedAt,
          })),
        },
        phaseCpu: p.phases,
      })),
      naive,
    },
    findings: [],
  };
};
