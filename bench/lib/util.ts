// Small helpers shared by the workloads: units, machine pressure, and CPU per process role for each phase.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { MigrationRun } from './migrate.ts';
import type { ProcessSampler } from './procs.ts';
import type { Pressure } from './types.ts';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export const mib = (bytes: number) => bytes / MiB;
export const fmtMiB = (bytes: number) =>
  bytes >= GiB ? `${(bytes / GiB).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`;
export const fmtS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
export const round = (n: number, digits = 3) => Number(n.toFixed(digits));

function cpuStallMicros(): number | undefined {
  try {
    const some = /some .*total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return some ? Number(some[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Measures how busy the machine was (other tenants included) over a window. */
export function pressureWindow(): { end(): Pressure } {
  const loadStart = loadavg()[0] ?? 0;
  const stallStart = cpuStallMicros();
  const started = performance.now();
  return {
    end() {
      const stallEnd = cpuStallMicros();
      const wallMicros = (performance.now() - started) * 1000;
      return {
        loadStart: round(loadStart, 2),
        loadEnd: round(loadavg()[0] ?? 0, 2),
        cpuWaitShare:
          stallStart !== undefined && stallEnd !== undefined && wallMicros > 0
            ? round(Math.min(1, (stallEnd - stallStart) / wallMicros), 3)
            : undefined,
      };
    },
  };
}

export interface PhaseCpu {
  readonly phase: string;
  readonly seconds: number;
  /** CPU seconds per process role in the phase, biggest first. */
  readonly cpu: Record<string, number>;
}

const PHASE_MARKS: readonly (readonly [string, string])[] = [
  ['control', 'awaiting-manifest'],
  ['chunk', 'manifest'],
  ['checkCache', 'cache-checked'],
  ['upload', 'uploaded'],
  ['replicate', 'downloading'],
  ['download', 'destination-completed'],
  ['finish', 'completed'],
];

/** Phases of a migration from its history, with the CPU each process role spent in them (sampler timeline). */
export function phaseCpu(run: MigrationRun, sampler: ProcessSampler): PhaseCpu[] {
  const history = run.record.history ?? [];
  const first = (e: string) => history.find((h) => h.event === e)?.at;
  const last = (e: string) => history.filter((h) => h.event === e).pop()?.at;
  const out: PhaseCpu[] = [];
  let prev = Date.parse(first('created') ?? run.record.createdAt);
  for (const [phase, event] of PHASE_MARKS) {
    const at = event === 'destination-completed' ? last(event) : first(event);
    if (!at) continue;
    const t = Date.parse(at);
    const cpu: Record<string, number> = {};
    for (const r of sampler.between(prev, t)) if (r.cpuSeconds >= 0.05) cpu[r.role] = round(r.cpuSeconds, 2);
    out.push({ phase, seconds: round((t - prev) / 1000, 2), cpu });
    prev = t;
  }
  return out;
}

/** The role that used the most CPU in a phase, with its share of the phase's wall time. */
export function busiest(p: PhaseCpu): string {
  const [role, s] = Object.entries(p.cpu).sort((a, b) => b[1] - a[1])[0] ?? ['none', 0];
  return `${role} ${Math.round((100 * s) / Math.max(p.seconds, 0.001))}%`;
}
