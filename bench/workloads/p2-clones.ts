// P2: ten VMs cloned from one base, each with 2 % of its disk rewritten with its own data, migrated to another
// city. Bytes that cross between cities (uploads + copies between cache nodes), ours ÷ the naive path's.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Format, syncDisks, uniqueImage, uniqueWrites, writeClone, writeImage } from '../lib/images.ts';
import { createOne, type MigrationRun, migrate, summarize, waitFor } from '../lib/migrate.ts';
import { figure, type Workload } from '../lib/types.ts';
import { fmtMiB, fmtS, GiB, MiB, round } from '../lib/util.ts';
import { measureNaive, naiveJob } from './p1-single.ts';

const SOURCE = 'dc-gz';
const DESTINATION = 'dc-osa';
const VMS = 10;
const UNIQUE_FRACTION = 0.02;
const WRITES_PER_VM = 4;

export const p2: Workload = async (ctx) => {
  const { profile } = ctx;
  let b = ctx.b;
  const size = ctx.sized(profile === 'full' ? 2 * GiB : 1 * GiB);
  // Each clone is downloaded whole at the destination: the quick profile keeps that under 4 GiB in all.
  const data = profile === 'full' ? size / 2 : Math.round((size * 0.375) / MiB) * MiB;
  // The quick profile starts the ten together (a batch, the way an operator moves a group of VMs); the full one
  // also sends them one after another, and repeats the batch with raw images when the others are qcow2.
  const modes: { mode: 'batch' | 'one by one'; format: Format }[] =
    profile === 'full'
      ? [
          { mode: 'one by one', format: ctx.format },
          { mode: 'batch', format: ctx.format },
          ...(ctx.format === 'qcow2' ? [{ mode: 'batch' as const, format: 'raw' as const }] : []),
        ]
      : [{ mode: 'batch', format: ctx.format }];
  const stamp = Date.now();
  const results: Record<string, unknown>[] = [];
  const figures = [];
  let naiveDetail: unknown;
  for (const [n, { mode, format }] of modes.entries()) {
    // Each run on empty cache nodes: what one stored must not count for the next (and the disk stays bounded).
    if (n > 0) b = await ctx.freshCloud();
    const label = modes.length > 1 ? `${mode}, ${format}` : mode;
    // A fresh base per mode, so the second mode does not find the first one's chunks cached.
    const basePath = join(ctx.scratch, `p2-base.${format}`);
    await writeImage(basePath, uniqueImage(size, data, `p2 base ${label} ${stamp}`), format);
    const ids = Array.from({ length: VMS }, (_, i) => `p2-${mode === 'batch' ? 'b' : 's'}-vm${i}.${format}`);
    const fileBytes: number[] = [];
    let runsBytes = 0;
    ctx.log(
      `P2 (${label}): ${VMS} ${format} clones of a ${fmtMiB(size)} disk (${fmtMiB(data)} data), each with its own writes`,
    );
    for (const [i, id] of ids.entries()) {
      const seed = `p2 ${label} vm${i} ${stamp}`;
      const runs = uniqueWrites(size, UNIQUE_FRACTION, WRITES_PER_VM, seed);
      runsBytes = runs.reduce((n, r) => n + r.length, 0);
      fileBytes.push(await writeClone(basePath, b.imagePath(SOURCE, id), format, runs, seed));
    }
    await rm(basePath, { force: true });
    const hkgBefore = await b.bucketBytes(b.bucket(b.cacheNodeOf(SOURCE)), 'chunks/');
    const nrtBefore = await b.bucketBytes(b.bucket(b.cacheNodeOf(DESTINATION)), 'chunks/');
    await syncDisks();
    ctx.sampler.start();
    const started = performance.now();
    const runs: MigrationRun[] = [];
    const cleanup = async (i: number) => {
      const id = ids[i] as string;
      await rm(b.imagePath(DESTINATION, id), { force: true });
    };
    if (mode === 'batch') {
      const migrationIds = [];
      for (const [i, imageId] of ids.entries())
        migrationIds.push(
          await createOne(b, { imageId, from: SOURCE, to: [DESTINATION], vmId: `vm-p2-${i}` }),
        );
      await Promise.all(
        migrationIds.map(async (id, i) => {
          const m = await waitFor(b, id, 30 * 60_000);
          runs[i] = await summarize(b, m, performance.now() - started);
          await cleanup(i);
        }),
      );
    } else {
      for (const [i, imageId] of ids.entries()) {
        runs.push(await migrate(b, { imageId, from: SOURCE, to: [DESTINATION], vmId: `vm-p2-${i}` }));
        await cleanup(i);
      }
    }
    const wallMs = performance.now() - started;
    const window = ctx.sampler.stop();
    const hkgAfter = await b.bucketBytes(b.bucket(b.cacheNodeOf(SOURCE)), 'chunks/');
    const nrtAfter = await b.bucketBytes(b.bucket(b.cacheNodeOf(DESTINATION)), 'chunks/');

    // The naive path moves every clone's file up and across: measured on one clone, the same for each by size.
    if (naiveDetail === undefined) {
      const one = ids[VMS - 1] as string;
      const measured = await measureNaive(
        ctx,
        naiveJob(ctx, b, b.imagePath(SOURCE, one), 'p2', [DESTINATION]),
      );
      naiveDetail = { clone: one, ...measured.result, cpu: measured.window };
      const perFile = measured.result.wanBytes / measured.result.bytes;
      if (perFile !== 2) throw new Error(`P2: the naive path moved ${perFile}× the file, expected 2×`);
    }
    for (const id of ids) await rm(b.imagePath(SOURCE, id), { force: true });

    const naiveWan = fileBytes.reduce((n, x) => n + 2 * x, 0);
    const oursWan = runs.reduce((n, r) => n + r.wanBytes, 0);
    const stored = hkgAfter.bytes - hkgBefore.bytes + (nrtAfter.bytes - nrtBefore.bytes);
    const uploaded = runs.reduce((n, r) => n + r.uploadedBytes, 0);
    const copied = runs.reduce((n, r) => n + r.copiedBytes, 0);
    const planned = runs.reduce((n, r) => n + r.plannedCopyBytes, 0);
    const skipped = runs.reduce((n, r) => n + r.copies.skipped, 0);
    ctx.log(
      `P2 (${label}): ours ${fmtMiB(oursWan)} across cities (${fmtMiB(uploaded)} up, ${fmtMiB(copied)} copied), naive ${fmtMiB(naiveWan)}, ${fmtS(wallMs)}`,
    );
    // The best any scheme could do: the base's data once, and each clone's own writes once, up and across.
    const idealWan = 2 * (data + VMS * runsBytes);
    results.push({
      mode,
      format,
      idealWanBytes: idealWan,
      wallMs: round(wallMs, 0),
      fileBytes,
      naiveWanBytes: naiveWan,
      oursWanBytes: oursWan,
      uploadedBytes: uploaded,
      copiedBytes: copied,
      plannedCopyBytes: planned,
      skippedCopies: skipped,
      storedBytesGrowth: stored,
      perVm: runs.map((r) => ({
        id: r.id,
        wallMs: round(r.wallMs, 0),
        uploaded: r.uploadedBytes,
        cached: r.cachedBytes,
        copied: r.copiedBytes,
        plannedCopy: r.plannedCopyBytes,
        copies: r.copies,
        downloaded: r.downloadedBytes,
        phases: r.phases,
      })),
      cpu: window,
    });
    figures.push(
      figure({
        id: modes.length > 1 ? `P2 (${label})` : 'P2',
        metric: `bytes across cities (upload + copies between cache nodes), ours ÷ naive, ${VMS} clones ${mode === 'batch' ? 'started together' : 'one after another'}`,
        unit: 'ratio',
        value: round(oursWan / naiveWan, 4),
        target: { op: '<=', value: 1 / 8 },
        ours: `${fmtMiB(oursWan)} (${fmtMiB(uploaded)} uploaded, ${fmtMiB(copied)} copied); ${fmtS(wallMs)} for all ${VMS}`,
        baseline: `${fmtMiB(naiveWan)}: each clone's file uploaded and copied once (naive path measured on one clone, same run)`,
        note:
          `lower bound for this workload (the base's data and every clone's own writes moved exactly once): ${round(idealWan / naiveWan, 4)}; ` +
          `copies planned ${fmtMiB(planned)}, ${skipped} skipped as already there; new bytes stored at the two cache nodes: ` +
          `${fmtMiB(stored)} (${round(stored / naiveWan, 4)} of naive): what would cross if no chunk were sent twice`,
      }),
    );
  }
  return {
    id: 'P2',
    title: `${VMS} VMs cloned from one base`,
    setup:
      `A base image (${fmtMiB(size)} disk, ${fmtMiB(data)} of data in extents between holes); each clone is a copy ` +
      `of it with ${UNIQUE_FRACTION * 100} % of the disk (${fmtMiB(size * UNIQUE_FRACTION)}) written with its own data in ${WRITES_PER_VM} runs ` +
      `at seeded positions, over data or into holes${ctx.format === 'qcow2' ? ' (qemu-io: in place, or new clusters at the end of the file)' : ''}. ` +
      `Migrated ${SOURCE} → ${DESTINATION}. Runs: ${modes.map((m) => `${m.mode === 'batch' ? "all started together (a batch; those over the cache nodes' capacity wait for a slot)" : 'one after another'}, ${m.format}`).join('; ')}.`,
    figures,
    details: {
      results,
      naive: naiveDetail,
      chunkAverageMiB: 4,
      uniqueBytesPerVm: size * UNIQUE_FRACTION,
      MiB,
    },
    findings: [],
  };
};
