// P7: a fleet of real OS images (a Debian root disk and clones of it that installed their own files and upgraded a
// few binaries), migrated one after another to another city. Bytes uploaded, ours ÷ casync's store growth on the
// same images in the same run (the report behind it: we moved 2.85× what casync would), and ÷ the naive path's;
// the average object the source cache node stores; the agent's chunk + hash + compress throughput per core.
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTsChild } from '../lib/child.ts';
import { syncDisks } from '../lib/images.ts';
import { type MigrationRun, migrate } from '../lib/migrate.ts';
import {
  type CasyncStep,
  type CloneWrites,
  casyncMake,
  checkOsTools,
  DEBIAN_SUITE,
  debianBaseImage,
  makeClone,
  toQcow2,
  vocabulary,
} from '../lib/os-images.ts';
import { type Figure, figure, type Workload } from '../lib/types.ts';
import { fmtMiB, fmtS, GiB, MiB, round } from '../lib/util.ts';
import type { FleetImageResult } from './p7-pack-child.ts';

const SOURCE = 'dc-gz';
const DESTINATION = 'dc-osa';
const DISK = 1 * GiB;
const TEXT_FILES = 40;
const TEXT_BYTES = 130_000;
const RANDOM_BYTES = 1 * MiB;
const BINARIES = ['/usr/bin/bash', '/usr/bin/ls', '/usr/bin/tar'] as const;
const CHANGED_SHARE = 0.3;
/** A 2.5 Gbit/s link in MiB/s: what one core must chunk, hash and compress to keep it full. */
const LINK_MIB_S = 2.5e9 / 8 / MiB;
const CHILD = fileURLToPath(new URL('./p7-pack-child.ts', import.meta.url));

interface Estimate {
  readonly encoder: string;
  readonly images: readonly FleetImageResult[];
}

/** Moves a file, copying (sparse) when it crosses file systems. */
async function move(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}

const sum = (xs: readonly number[]) => xs.reduce((n, x) => n + x, 0);
const mibs = (bytes: number) => round(bytes / MiB, 1);

export const p7: Workload = async (ctx) => {
  const { b, format } = ctx;
  const tools = await checkOsTools(format);
  const vms = ctx.profile === 'full' ? 6 : 3;
  const work = join(ctx.scratch, 'p7');
  await mkdir(work, { recursive: true });
  const ext = format === 'qcow2' ? 'qcow2' : 'raw';
  const ids = ['p7-base', ...Array.from({ length: vms }, (_, i) => `p7-vm${i + 1}`)].map(
    (id) => `${id}.${ext}`,
  );
  const local = ids.map((id) => join(work, id));
  try {
    // 1. The images: the root filesystem in an ext4 disk, and clones changed inside their file systems.
    const baseRaw = join(work, 'base.raw');
    const origin = await debianBaseImage(tools, baseRaw, DISK, work, ctx.log);
    ctx.log(
      `P7: ${fmtMiB(DISK)} ext4 base image from ${origin.from} in ${round(origin.seconds, 1)} s; building ${vms} clones (${format})`,
    );
    const words = vocabulary('p7 fleet');
    const writes: CloneWrites[] = [];
    for (let i = 1; i <= vms; i++) {
      const raw = join(work, `vm${i}.raw`);
      writes.push(
        await makeClone(
          tools,
          baseRaw,
          raw,
          {
            index: i,
            seed: `p7 vm${i}`,
            textFiles: TEXT_FILES,
            textBytes: TEXT_BYTES,
            randomBytes: RANDOM_BYTES,
            binaries: BINARIES,
            changedShare: CHANGED_SHARE,
          },
          words,
          work,
        ),
      );
      if (format === 'qcow2') await toQcow2(tools, raw, local[i] as string);
      else await rename(raw, local[i] as string);
    }
    if (format === 'qcow2') await toQcow2(tools, baseRaw, local[0] as string);
    else await rename(baseRaw, local[0] as string);
    const fileBytes = await Promise.all(local.map(async (p) => (await stat(p)).size));
    await syncDisks();

    // 2. The baseline: casync, every image into one store, in order.
    const store = join(work, 'casync-store');
    const casync: CasyncStep[] = [];
    for (const [i, image] of local.entries())
      casync.push(await casyncMake(tools, store, join(work, `${i}.caibx`), image));
    const casyncBytes = sum(casync.map((c) => c.bytes));
    const casyncChunks = sum(casync.map((c) => c.chunks));
    ctx.log(
      `P7: casync store ${fmtMiB(casyncBytes)} in ${casyncChunks} chunks (base ${fmtMiB(casync[0]?.bytes ?? 0)}, clones ${casync
        .slice(1)
        .map((c) => fmtMiB(c.bytes))
        .join(', ')})`,
    );
    await rm(store, { recursive: true, force: true });

    // 3. The agent's chunker and encoder alone over the fleet: throughput, and what an ideal upload would be.
    const estimate = await runTsChild<Estimate>('p7-pack-child', CHILD, local);
    const estimateBytes = sum(estimate.images.map((e) => e.newStoredBytes));
    const base = estimate.images[0] as FleetImageResult;
    const perCore = base.bytes / MiB / (base.cpuMs / 1000);
    const wallRate = base.bytes / MiB / (base.ms / 1000);
    const casyncBase = casync[0] as CasyncStep;
    const casyncPerCore = casyncBase.imageBytes / MiB / (casyncBase.cpuMs / 1000);
    const casyncWall = casyncBase.imageBytes / MiB / (casyncBase.wallMs / 1000);
    const throughput = figure({
      id: 'P7d',
      metric: 'chunk + hash + compress throughput per core (MiB/s per CPU second)',
      unit: 'MiB/s',
      value: round(perCore, 0),
      target: undefined,
      ratioToBaseline: round(perCore / casyncPerCore, 3),
      ours:
        `${round(perCore, 0)} MiB/s per core, ${round(wallRate, 0)} MiB/s wall (${round(base.cpuMs / base.ms, 2)} cores busy) on the base; ` +
        `zstd kept ${round(base.encodedStoredBytes / base.encodedRawBytes, 3)} of the bytes (${estimate.encoder})`,
      baseline: `${round(casyncPerCore, 0)} MiB/s per core, ${round(casyncWall, 0)} MiB/s wall: casync make on the base (its chunking, SHA-512/256, zstd and chunk files written), same run`,
      note:
        `a 2.5 Gbit/s link is ${round(LINK_MIB_S, 0)} MiB/s: ` +
        (perCore >= LINK_MIB_S
          ? 'one core keeps it full'
          : `${Math.ceil(LINK_MIB_S / perCore)} cores to keep it full`),
    });

    // 4. Ours: the base, then each clone, one after another, each delivered file deleted after its migration.
    for (const [i, id] of ids.entries()) await move(local[i] as string, b.imagePath(SOURCE, id));
    const sourceBucket = b.bucket(b.cacheNodeOf(SOURCE));
    const destinationBucket = b.bucket(b.cacheNodeOf(DESTINATION));
    const srcBefore = await b.bucketBytes(sourceBucket, 'chunks/');
    const dstBefore = await b.bucketBytes(destinationBucket, 'chunks/');
    await syncDisks();
    ctx.sampler.start();
    const started = performance.now();
    const runs: MigrationRun[] = [];
    let failure: Error | undefined;
    try {
      for (const [i, imageId] of ids.entries()) {
        const vmId = i === 0 ? 'vm-p7-base' : `vm-p7-${i}`;
        runs.push(await migrate(b, { imageId, from: SOURCE, to: [DESTINATION], vmId }));
        await rm(b.imagePath(DESTINATION, imageId), { force: true });
        const r = runs[i] as MigrationRun;
        ctx.log(
          `P7: ${imageId}: ${fmtMiB(r.uploadedBytes)} uploaded (${fmtMiB(r.uploadedLogicalBytes)} of chunks), casync ${fmtMiB(casync[i]?.bytes ?? 0)}; ${fmtS(r.wallMs)}`,
        );
      }
    } catch (err) {
      failure = err as Error;
    }
    const wallMs = performance.now() - started;
    const window = ctx.sampler.stop();
    const srcAfter = await b.bucketBytes(sourceBucket, 'chunks/');
    const dstAfter = await b.bucketBytes(destinationBucket, 'chunks/');

    const perImage = ids.map((id, i) => {
      const r = runs[i];
      return {
        image: id,
        fileBytes: fileBytes[i] as number,
        ...(i > 0 ? { wrote: writes[i - 1] } : {}),
        casync: casync[i],
        estimate: estimate.images[i],
        ours: r && {
          id: r.id,
          wallMs: round(r.wallMs, 0),
          uploadWire: r.uploadedBytes,
          uploadLogical: r.uploadedLogicalBytes,
          cached: r.cachedBytes,
          copied: r.copiedBytes,
          downloadWire: r.downloadedWireBytes,
          downloadLogical: r.downloadedBytes,
          phases: r.phases,
        },
      };
    });
    const naiveBytes = sum(fileBytes);
    const source = { objects: srcAfter.objects - srcBefore.objects, bytes: srcAfter.bytes - srcBefore.bytes };
    const destination = {
      objects: dstAfter.objects - dstBefore.objects,
      bytes: dstAfter.bytes - dstBefore.bytes,
    };
    const details = {
      tools: tools.versions,
      rootfs: { suite: DEBIAN_SUITE, variant: 'minbase', ...origin },
      diskBytes: DISK,
      format,
      clone: {
        textFiles: TEXT_FILES,
        textBytes: TEXT_BYTES,
        randomBytes: RANDOM_BYTES,
        binaries: BINARIES,
        changedShare: CHANGED_SHARE,
      },
      perImage,
      naiveUploadBytes: naiveBytes,
      casync: { bytes: casyncBytes, chunks: casyncChunks },
      estimate: { encoder: estimate.encoder, bytes: estimateBytes },
      sourceNode: { bucket: sourceBucket, ...source },
      destinationNode: { bucket: destinationBucket, ...destination },
      wallMs: round(wallMs, 0),
      cpu: window,
    };
    const setup =
      `A Debian ${DEBIAN_SUITE} root filesystem (debootstrap --variant=minbase) in a ${fmtMiB(DISK)} ext4 disk ` +
      `(mkfs.ext4 -d; ${origin.from === 'cached image' ? 'the base image cached by an earlier run' : `built from ${origin.from}, then cached`}); ${vms} clones of it, each changed inside its file system with debugfs: /opt/app<i> with ${TEXT_FILES} ` +
      `text files of about ${TEXT_BYTES / 1000} KB and ${fmtMiB(RANDOM_BYTES)} of random bytes, and ${BINARIES.join(', ')} replaced ` +
      `by versions with ${CHANGED_SHARE * 100} % of their 4 KiB blocks changed; all from seeds. ${format === 'qcow2' ? 'Converted to qcow2 (qemu-img convert). ' : ''}` +
      `Migrated ${SOURCE} → ${DESTINATION} one after another, base first. Baseline: casync make of the same files, in the same order, into one store.`;
    if (failure) {
      return {
        id: 'P7',
        title: 'A fleet of real OS images',
        setup,
        figures: [throughput],
        details: { ...details, failedAt: ids[runs.length] },
        findings: [],
        error: `migration of ${ids[runs.length]} failed: ${failure.message}`,
      };
    }

    const uploaded = sum(runs.map((r) => r.uploadedBytes));
    const uploadedLogical = sum(runs.map((r) => r.uploadedLogicalBytes));
    const copied = sum(runs.map((r) => r.copiedBytes));
    const downloaded = sum(runs.map((r) => r.downloadedWireBytes));
    const avgObject = source.objects > 0 ? source.bytes / source.objects : 0;
    const casyncAvg = casyncChunks > 0 ? casyncBytes / casyncChunks : 0;
    const table = perImage
      .map(
        (p) =>
          `${p.image.replace(/^p7-/, '').replace(/\.\w+$/, '')} ${mibs(p.ours?.uploadWire ?? 0)} / ${mibs(p.casync?.bytes ?? 0)} / ${mibs(p.fileBytes)}`,
      )
      .join('; ');
    const figures: Figure[] = [
      figure({
        id: 'P7a',
        metric: `bytes uploaded for a fleet of Debian disks (base + ${vms} clones), ours ÷ casync`,
        unit: 'ratio',
        value: round(uploaded / casyncBytes, 4),
        target: { op: '<=', value: 1 },
        ours: `${fmtMiB(uploaded)} uploaded as sent (${fmtMiB(uploadedLogical)} of chunks before compression); ${fmtMiB(copied)} copied between cache nodes, ${fmtMiB(downloaded)} downloaded`,
        baseline: `${fmtMiB(casyncBytes)}: casync store growth over the same files (casync make, 64 KiB average chunks, zstd), same run`,
        note:
          `per image, MiB uploaded ours / casync / naive: ${table}; ` +
          `chunking estimate (the agent's chunker and zstd, each new chunk once, no packs): ${fmtMiB(estimateBytes)} = ${round(estimateBytes / casyncBytes, 3)} of casync`,
      }),
      figure({
        id: 'P7b',
        metric: 'bytes uploaded for the fleet, ours ÷ naive (every file uploaded whole)',
        unit: 'ratio',
        value: round(uploaded / naiveBytes, 4),
        target: undefined,
        ours: `${fmtMiB(uploaded)}`,
        baseline: `${fmtMiB(naiveBytes)}: the ${ids.length} ${format} files, each uploaded whole`,
      }),
      figure({
        id: 'P7c',
        metric: 'average object stored at the source cache node (MiB)',
        unit: 'MiB',
        value: round(avgObject / MiB, 2),
        target: { op: '>=', value: 1 },
        ...(casyncAvg > 0 ? { ratioToBaseline: round(avgObject / casyncAvg, 2) } : {}),
        ours: `${source.objects} new objects, ${fmtMiB(source.bytes)} under chunks/ in ${sourceBucket}`,
        baseline: `casync: ${casyncChunks} chunk files, ${round(casyncAvg / 1024, 1)} KiB on average, same run`,
      }),
      throughput,
    ];
    const findings = [
      `Per image (MiB): ${perImage
        .map(
          (p) =>
            `${p.image}: ours ${mibs(p.ours?.uploadWire ?? 0)} up (${mibs(p.ours?.uploadLogical ?? 0)} of chunks), ${mibs(p.ours?.copied ?? 0)} copied, ${mibs(p.ours?.downloadWire ?? 0)} down; casync ${mibs(p.casync?.bytes ?? 0)}; chunking estimate ${mibs(p.estimate?.newStoredBytes ?? 0)}; naive ${mibs(p.fileBytes)}`,
        )
        .join('. ')}.`,
      `Ours uploaded ${round(uploaded / Math.max(1, estimateBytes), 3)} × the chunking estimate (above 1: packs, repeats or chunks the index did not find); the estimate is ${round(estimateBytes / casyncBytes, 3)} × casync (the chunk size and compression alone).`,
    ];
    return { id: 'P7', title: 'A fleet of real OS images', setup, figures, details, findings };
  } finally {
    await rm(work, { recursive: true, force: true });
    for (const id of ids) {
      await rm(b.imagePath(SOURCE, id), { force: true });
      await rm(b.imagePath(DESTINATION, id), { force: true });
    }
  }
};
