// P4: the image of P1, after 1 % of its blocks changed in place, migrated again to the same destination. Bytes
// moved between cities ÷ what the naive path moves for the same file; plus how the result depends on how the
// changes cluster (chunking only, no migration).
import { copyFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeRawImage } from '../../local/sample-images.ts';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';
import { applyChanges, changedRuns, syncDisks } from '../lib/images.ts';
import { destinationSources, migrate } from '../lib/migrate.ts';
import { figure, type Workload } from '../lib/types.ts';
import { fmtMiB, fmtS, MiB, phaseCpu, round } from '../lib/util.ts';
import { P1_DESTINATION, P1_SOURCE, type P1Shared } from './p1-single.ts';

const CHANGED_FRACTION = 0.01;
/** Changed blocks come in runs of this size (a file's extent, a database's hot pages); see the sensitivity table. */
const RUN_BYTES = 1 * MiB;

export const p4: Workload = async (ctx) => {
  const { b, format, profile } = ctx;
  const p1 = ctx.shared.get('P1') as P1Shared | undefined;
  if (!p1) throw new Error('P4 needs the image P1 migrated (P1 failed or did not run)');
  const source = b.imagePath(P1_SOURCE, p1.imageId);
  // Positions from a fixed seed (the same blocks every run); the new data is fresh.
  const runs = changedRuns(p1.spec, CHANGED_FRACTION, RUN_BYTES, 'p4 positions');
  const changed = runs.reduce((n, r) => n + r.length, 0);
  ctx.log(
    `P4: rewriting ${runs.length} runs of ${fmtMiB(RUN_BYTES)} (${fmtMiB(changed)}) of ${p1.imageId} in place`,
  );
  await applyChanges(source, format, runs, `p4 changes ${Date.now()}`);
  const fileBytes = (await stat(source)).size;
  await syncDisks();
  ctx.sampler.start();
  const run = await migrate(b, {
    imageId: p1.imageId,
    from: P1_SOURCE,
    to: [P1_DESTINATION],
    vmId: 'vm-p1-again',
  });
  ctx.sampler.stop();
  const fromEdge = await destinationSources(b, run.id);
  const phases = phaseCpu(run, ctx.sampler);
  await rm(b.imagePath(P1_DESTINATION, p1.imageId), { force: true });
  await rm(source, { force: true });
  // The naive path moves the whole file again: measured in P1 on the same image before the changes.
  const naiveWan = (p1.naive.wanBytes / p1.naive.bytes) * fileBytes;
  const dataBytes = p1.spec.extents.reduce((n, e) => n + e.length, 0);

  const sensitivity = await clusteringSensitivity(
    ctx.scratch,
    ctx.sized(profile === 'full' ? 1024 * MiB : 512 * MiB),
  );
  return {
    id: 'P4',
    title: 'Re-migration after 1 % of the blocks changed',
    setup:
      `P1's ${format} image (${fmtMiB(fileBytes)} file, ${fmtMiB(dataBytes)} of data) with ${CHANGED_FRACTION * 100} % of its data ` +
      `(${fmtMiB(changed)}) rewritten in place in ${runs.length} runs of ${fmtMiB(RUN_BYTES)} at seeded positions` +
      `${format === 'qcow2' ? ' (qemu-io, as a running VM writes)' : ''}, migrated again ${P1_SOURCE} → ${P1_DESTINATION}.`,
    figures: [
      figure({
        id: 'P4',
        metric:
          'bytes across cities (upload + copies) on re-migration ÷ naive (the whole file, up and across)',
        unit: 'ratio',
        value: round(run.wanBytes / naiveWan, 4),
        target: { op: '<=', value: 0.03 },
        ours: `${fmtMiB(run.wanBytes)} (${fmtMiB(run.uploadedBytes)} uploaded, ${fmtMiB(run.copiedBytes)} copied) in ${fmtS(run.wallMs)}`,
        baseline: `${fmtMiB(naiveWan)} (${fmtMiB(fileBytes)} file up and across; naive path measured in P1)`,
        note:
          `uploaded ÷ file ${round(run.uploadedBytes / fileBytes, 4)}; changed bytes ÷ file ${round(changed / fileBytes, 4)}; ` +
          (fromEdge
            ? `the destination fetched ${fromEdge.fetched} chunks through the edge and took ${fromEdge.local} from its previous copy`
            : `the destination's log line was not found`),
      }),
    ],
    details: {
      runs: runs.length,
      changedBytes: changed,
      fileBytes,
      migration: {
        id: run.id,
        wallMs: round(run.wallMs, 0),
        uploaded: run.uploadedBytes,
        cached: run.cachedBytes,
        copied: run.copiedBytes,
        downloaded: run.downloadedBytes,
        ...(fromEdge ? { chunksFetched: fromEdge.fetched, chunksTakenLocally: fromEdge.local } : {}),
        phases: run.phases,
        phaseCpu: phases,
      },
      naiveP1Ms: round(p1.naive.totalMs, 0),
      sensitivity,
    },
    findings: [],
  };
};

/**
 * What share of an image's bytes a re-migration must move when 1 % of it changes, by how the changed blocks cluster
 * and by the average chunk size: chunk a dense image before and after the changes, count the bytes of new chunks.
 */
async function clusteringSensitivity(scratch: string, size: number) {
  const original = join(scratch, 'p4-dense.raw');
  const changedPath = join(scratch, 'p4-dense-changed.raw');
  const spec = { size, extents: [{ offset: 0, length: size, seed: `p4 dense ${Date.now()}` }] };
  await writeRawImage(original, spec);
  const rows: { runBytes: number; avgChunkMiB: number; changedShare: number; movedShare: number }[] = [];
  try {
    for (const avgSize of [4 * MiB, 1 * MiB]) {
      const before = await collectChunks(chunkFile(original, { avgSize }));
      const known = new Set(before.chunks.map((c) => c.sha256));
      for (const runBytes of [4096, 64 * 1024, 1 * MiB, 4 * MiB]) {
        await copyFile(original, changedPath);
        const runs = changedRuns(spec, CHANGED_FRACTION, runBytes, `s ${runBytes}`);
        const changed = runs.reduce((n, r) => n + r.length, 0);
        await applyChanges(changedPath, 'raw', runs, 'x');
        const after = await collectChunks(chunkFile(changedPath, { avgSize }));
        const fresh = new Map(
          after.chunks.filter((c) => !known.has(c.sha256)).map((c) => [c.sha256, c.length]),
        );
        const moved = [...fresh.values()].reduce((n, l) => n + l, 0);
        rows.push({
          runBytes,
          avgChunkMiB: avgSize / MiB,
          changedShare: round(changed / size, 4),
          movedShare: round(moved / size, 4),
        });
      }
    }
  } finally {
    await rm(original, { force: true });
    await rm(changedPath, { force: true });
  }
  return { imageBytes: size, changedShare: CHANGED_FRACTION, rows };
}
