// `npm run bench` (quick profile, under 10 minutes on 2 cores) and `npm run bench -- --full`: the workloads of
// issue 7 against the naive S3 path on the same local servers, with a report, its JSON and an SVG chart in
// bench/results/. Options: --only P1,P4 (a subset), --scratch DIR (where images go; default the OS temp dir),
// --out DIR (default bench/results), --no-report (print only).
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { LocalPorts } from '../local/cloud.ts';
import { startBenchCloud } from './lib/cloud.ts';
import { hasQemu } from './lib/images.ts';
import { machineInfo } from './lib/machine.ts';
import { ProcessSampler, type Window } from './lib/procs.ts';
import { type RunReport, writeReport } from './lib/report.ts';
import type { Profile, RunContext, Workload, WorkloadResult } from './lib/types.ts';
import { pressureWindow } from './lib/util.ts';
import { p1 } from './workloads/p1-single.ts';
import { p2 } from './workloads/p2-clones.ts';
import { p3 } from './workloads/p3-backup.ts';
import { p4 } from './workloads/p4-remigrate.ts';
import { p5 } from './workloads/p5-chunker.ts';
import { p6 } from './workloads/p6-api.ts';
import { p7 } from './workloads/p7-os-fleet.ts';

const { values: flags } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    only: { type: 'string' },
    scratch: { type: 'string' },
    out: { type: 'string' },
    'no-report': { type: 'boolean', default: false },
    /** Multiplies every image size: for trying the harness out, never for a report. */
    scale: { type: 'string', default: '1' },
    /** Re-renders the report of an earlier run from its JSON (after analysis.md changed). */
    render: { type: 'string' },
  },
});

const profile: Profile = flags.full ? 'full' : 'quick';
/** Parallel transfers per agent job: the agent's default, and the naive path's queue size. */
const CONCURRENCY = 8;
/** Scratch space each profile needs at its peak (images, cache node buckets, downloads). */
const NEEDED_GIB: Record<Profile, number> = { quick: 10, full: 20 };

// P5 runs before the local cloud starts (the chunker alone on the machine, as on a data center's host);
// P4 right after P1 (it re-migrates P1's image); P6 last (it leaves executions behind). P7 (real OS images; needs
// root and debootstrap, e2fsprogs, casync) after P2, on its cache nodes.
const ORDER: readonly { id: string; run: Workload; needsCloud: boolean }[] = [
  { id: 'P5', run: p5, needsCloud: false },
  { id: 'P1', run: p1, needsCloud: true },
  { id: 'P4', run: p4, needsCloud: true },
  { id: 'P2', run: p2, needsCloud: true },
  { id: 'P7', run: p7, needsCloud: true },
  { id: 'P3', run: p3, needsCloud: true },
  { id: 'P6', run: p6, needsCloud: true },
];

/** Workloads the full profile runs on a fresh local cloud. */
const FRESH_CLOUD_BEFORE = new Set(['P2', 'P3', 'P6']);

const log = (line: string) =>
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

async function render(json: string): Promise<number> {
  const report = JSON.parse(await readFile(json, 'utf8')) as RunReport & { file: string };
  const files = await writeReport(dirname(json), report, report.file);
  log(`re-rendered: ${files.join(', ')}`);
  return 0;
}

async function main(): Promise<number> {
  if (flags.render) return render(flags.render);
  const scale = Number(flags.scale);
  if (!(scale > 0)) throw new Error('--scale must be a positive number');
  const wanted = flags.only?.split(',').map((s) => s.trim().toUpperCase());
  const selected = ORDER.filter((w) => !wanted || wanted.includes(w.id));
  if (wanted?.includes('P4') && !wanted.includes('P1'))
    throw new Error('P4 re-migrates P1 image: add P1 to --only');
  const scratchRoot = flags.scratch ?? tmpdir();
  await mkdir(scratchRoot, { recursive: true });
  const machine = await machineInfo(scratchRoot);
  if (machine.scratchFreeGiB < NEEDED_GIB[profile]) {
    throw new Error(
      `the ${profile} profile needs about ${NEEDED_GIB[profile]} GiB free in ${scratchRoot}; ${machine.scratchFreeGiB} GiB are (use --scratch)`,
    );
  }
  const scratch = await mkdtemp(join(scratchRoot, 'vmmig-bench-'));
  const format = (await hasQemu()) ? 'qcow2' : 'raw';
  log(
    `${profile} profile: ${selected.map((w) => w.id).join(', ')}; ${format} images${format === 'raw' ? ' (qemu-img not found)' : ''}; scratch ${scratch}`,
  );
  log(
    `machine: ${machine.cores} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, load ${machine.loadAverageAtStart.join(' ')}`,
  );
  const started = Date.now();
  const results: WorkloadResult[] = [];
  const sampler = new ProcessSampler();
  const shared = new Map<string, unknown>();
  let cloud: Awaited<ReturnType<typeof startBenchCloud>> | undefined;
  let idle: Window | undefined;
  let startupMs: number | undefined;
  let ports: LocalPorts | undefined;
  try {
    for (const w of selected) {
      // The full profile stores tens of GiB in the cache node buckets: a fresh cloud (and scratch) for the
      // workloads that do not build on an earlier one keeps the peak under NEEDED_GIB.
      if (cloud && profile === 'full' && FRESH_CLOUD_BEFORE.has(w.id)) {
        log('restarting the local cloud with empty state');
        ports = cloud.ports;
        await cloud.dispose();
        cloud = undefined;
      }
      if (w.needsCloud && !cloud) {
        log('starting the local cloud (DynamoDB Local, S3 server, Step Functions, API, edge, 4 agents)');
        cloud = await startBenchCloud(scratch, CONCURRENCY, ports);
        startupMs ??= cloud.startupMs;
        log(`local cloud up in ${(cloud.startupMs / 1000).toFixed(1)} s`);
        if (!idle) {
          log('measuring it idle for 5 s');
          sampler.start();
          await new Promise((r) => setTimeout(r, 5000));
          idle = sampler.stop();
        }
      }
      const ctx: RunContext = {
        profile,
        b: cloud as NonNullable<typeof cloud>,
        scratch,
        format,
        sampler,
        concurrency: CONCURRENCY,
        log,
        shared,
        async freshCloud() {
          log('restarting the local cloud with empty state');
          const current = cloud as NonNullable<typeof cloud>;
          ports = current.ports;
          await current.dispose();
          cloud = await startBenchCloud(scratch, CONCURRENCY, ports);
          return cloud;
        },
        sized: (bytes) => Math.max(1, Math.round((bytes * scale) / 2 ** 20)) * 2 ** 20,
      };
      log(`${w.id} …`);
      const pressure = pressureWindow();
      const t0 = performance.now();
      try {
        const r = await w.run(ctx);
        results.push({ ...r, wallSeconds: (performance.now() - t0) / 1000, pressure: pressure.end() });
        for (const f of r.figures) {
          const target = f.target
            ? `target ${f.target.op} ${f.target.value}: ${f.pass ? 'PASS' : 'FAIL'}`
            : 'no target';
          log(`${f.id}: ${f.metric} = ${f.value} (${target})`);
        }
      } catch (err) {
        const message = (err as Error).stack ?? String(err);
        log(`${w.id} failed: ${message}`);
        results.push({
          id: w.id,
          title: w.id,
          setup: '',
          figures: [],
          details: {},
          findings: [],
          wallSeconds: (performance.now() - t0) / 1000,
          pressure: pressure.end(),
          error: (err as Error).message,
        });
      }
    }
  } finally {
    if (cloud) {
      log('stopping the local cloud');
      await cloud.dispose().catch((err: Error) => log(`stop: ${err.message}`));
    }
    await rm(scratch, { recursive: true, force: true });
  }
  const totalSeconds = (Date.now() - started) / 1000;
  log(`done in ${(totalSeconds / 60).toFixed(1)} min`);
  if (!flags['no-report'] && (scale === 1 || flags.out !== undefined)) {
    const out = flags.out ?? fileURLToPath(new URL('./results', import.meta.url));
    const files = await writeReport(out, {
      profile,
      startedAt: new Date(started).toISOString(),
      totalSeconds,
      machine,
      format,
      startupSeconds: startupMs === undefined ? undefined : startupMs / 1000,
      idle,
      results,
    });
    log(`report: ${files.join(', ')}`);
  }
  return results.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`[bench] ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
