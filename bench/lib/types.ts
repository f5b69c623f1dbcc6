// What a workload reports: figures (a ratio against a baseline measured in the same run, with its target) and the
// details behind them (absolute numbers, phases, CPU per process role) for the report.
import type { BenchCloud } from './cloud.ts';
import type { Format } from './images.ts';
import type { ProcessSampler, Window } from './procs.ts';

export type Profile = 'quick' | 'full';

export interface Target {
  readonly op: '<=' | '>=';
  readonly value: number;
}

export interface Figure {
  /** P1, P2, P3a, … */
  readonly id: string;
  /** What the ratio is, e.g. "end-to-end time, ours ÷ naive". */
  readonly metric: string;
  readonly value: number;
  /** How the value is printed, e.g. 'ratio', 'MiB/s', 'MiB', 'ms'. */
  readonly unit: 'ratio' | 'MiB/s' | 'MiB' | 'ms';
  /** Undefined where issue 7 sets none: the figure is context, without pass/fail. */
  readonly target: Target | undefined;
  readonly pass: boolean | undefined;
  /** Our absolute figure, for context ("48.3 s"). */
  readonly ours: string;
  /** The baseline's absolute figure and what it is ("69.1 s, naive S3 path, same run"). */
  readonly baseline: string;
  /** For absolute targets: the figure as a ratio to a baseline measured in the same run (context). */
  readonly ratioToBaseline?: number;
  readonly note?: string;
}

export function figure(f: Omit<Figure, 'pass'>): Figure {
  const t = f.target;
  const pass = t === undefined ? undefined : t.op === '<=' ? f.value <= t.value : f.value >= t.value;
  return { ...f, pass };
}

export interface Pressure {
  /** Load average (1 min) at the start and the end. */
  readonly loadStart: number;
  readonly loadEnd: number;
  /** Share of the wall time in which some runnable task waited for a CPU (Linux PSI), 0–1. */
  readonly cpuWaitShare: number | undefined;
}

export interface WorkloadResult {
  readonly id: string;
  readonly title: string;
  /** How the workload was built, in a sentence or two. */
  readonly setup: string;
  readonly figures: readonly Figure[];
  /** Free-form details (absolute numbers, phases, CPU per role) kept in the JSON and summarised in the report. */
  readonly details: Record<string, unknown>;
  /** Findings: what limited the figure, ours or the emulator's. */
  readonly findings: readonly string[];
  readonly wallSeconds: number;
  readonly pressure: Pressure;
  readonly error?: string;
}

export interface RunContext {
  readonly profile: Profile;
  readonly b: BenchCloud;
  /** Directory for images that are not in a data center (scratch), deleted at the end. */
  readonly scratch: string;
  readonly format: Format;
  readonly sampler: ProcessSampler;
  /** Parallel chunk transfers per agent job, and lib-storage's queue size for the naive path. */
  readonly concurrency: number;
  log(line: string): void;
  /** Results of earlier workloads in this run (P4 reuses P1's image and naive baseline). */
  readonly shared: Map<string, unknown>;
  /** Replaces the local cloud with one with empty state (the full profile, between large runs). */
  freshCloud(): Promise<BenchCloud>;
  /** A workload size scaled by --scale (1 unless trying the harness out), in whole MiB. */
  sized(bytes: number): number;
}

export type Workload = (ctx: RunContext) => Promise<Omit<WorkloadResult, 'wallSeconds' | 'pressure'>>;

export type { Window };
