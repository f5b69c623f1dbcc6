// CPU time and peak memory per process of the benchmark's process tree (Linux /proc), grouped by role, so a
// slow phase can be pinned on our code (agents, API and workflow) or on an emulator (the S3 server, DynamoDB Local).
import { readdirSync, readFileSync } from 'node:fs';

export type Role =
  | 'control plane (API, Step Functions, Lambdas, edge) + bench driver'
  | 'S3 server (fauxqs)'
  | 'DynamoDB Local (Java)'
  | `agent ${string}`
  | 'naive client (lib-storage)'
  | 'chunker'
  | 'other';

const TICKS = 100; // USER_HZ on Linux

interface Sample {
  readonly role: Role;
  readonly cpuMs: number;
  readonly rssMiB: number;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function roleOf(pid: number, cmdline: string): Role {
  if (pid === process.pid) return 'control plane (API, Step Functions, Lambdas, edge) + bench driver';
  if (/\bjava\b/.test(cmdline) || cmdline.includes('DynamoDBLocal')) return 'DynamoDB Local (Java)';
  if (cmdline.includes('s3/child.ts')) return 'S3 server (fauxqs)';
  const agent = /\bagent\b.*--vrn\s(\S+)/.exec(cmdline);
  if (agent) return `agent ${agent[1]}`;
  if (cmdline.includes('naive-child')) return 'naive client (lib-storage)';
  if (cmdline.includes('chunk-child')) return 'chunker';
  return 'other';
}

function statOf(pid: number): { ppid: number; cpuMs: number; rssMiB: number } | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // Fields after the command name, which may hold spaces: state ppid ... utime(14) stime(15) ... rss(24).
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    ppid: Number(rest[1]),
    cpuMs: ((Number(rest[11]) + Number(rest[12])) * 1000) / TICKS,
    rssMiB: (Number(rest[21]) * 4096) / 2 ** 20,
  };
}

/** This process and its descendants, with their roles (a full /proc scan: done only now and then). */
function discover(): Map<number, Role> {
  const parent = new Map<number, number>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return new Map();
  }
  for (const d of pids) {
    const s = statOf(Number(d));
    if (s) parent.set(Number(d), s.ppid);
  }
  const mine = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 32; hops++) {
      if (p === process.pid) return true;
      p = parent.get(p) ?? 0;
    }
    return false;
  };
  const out = new Map<number, Role>();
  for (const pid of parent.keys()) {
    if (mine(pid)) out.set(pid, roleOf(pid, (read(`/proc/${pid}/cmdline`) ?? '').replaceAll('\0', ' ')));
  }
  return out;
}

let known = new Map<number, Role>();
let discoveredAt = 0;

/** Every live descendant of this process (and the process itself) with its CPU time and RSS. */
function snapshot(): Map<number, Sample> {
  if (Date.now() - discoveredAt > 1000) {
    known = discover();
    discoveredAt = Date.now();
  }
  const out = new Map<number, Sample>();
  for (const [pid, role] of known) {
    const s = statOf(pid);
    if (s) out.set(pid, { role, cpuMs: s.cpuMs, rssMiB: s.rssMiB });
  }
  return out;
}

export interface RoleUsage {
  readonly role: Role;
  /** CPU seconds (user + system) spent in the window. */
  readonly cpuSeconds: number;
  /** Highest RSS seen in the window, summed over the role's processes at the sample. */
  readonly peakRssMiB: number;
}

export interface Window {
  readonly wallSeconds: number;
  readonly roles: readonly RoleUsage[];
  /** CPU seconds of all roles ÷ wall seconds: 2.0 means both cores busy on this machine. */
  readonly coresBusy: number;
}

/** Samples the process tree every `intervalMs` while a window is open; short-lived children are caught. */
export class ProcessSampler {
  private readonly first = new Map<number, Sample>();
  private readonly last = new Map<number, Sample>();
  private readonly peak = new Map<Role, number>();
  private timer: NodeJS.Timeout | undefined;
  private started = 0;
  /** Cumulative CPU ms per role at each tick (epoch ms), to slice the window by phase afterwards. */
  private readonly timeline: { at: number; cpu: Map<Role, number> }[] = [];

  start(intervalMs = 500): void {
    discoveredAt = 0;
    this.first.clear();
    this.last.clear();
    this.peak.clear();
    this.timeline.length = 0;
    this.started = performance.now();
    for (const [pid, s] of snapshot()) this.first.set(pid, s);
    this.tick();
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  private tick(): void {
    const perRole = new Map<Role, number>();
    for (const [pid, s] of snapshot()) {
      // A process born inside the window starts from zero CPU.
      if (!this.first.has(pid)) this.first.set(pid, { ...s, cpuMs: 0 });
      this.last.set(pid, s);
      perRole.set(s.role, (perRole.get(s.role) ?? 0) + s.rssMiB);
    }
    for (const [role, rss] of perRole) this.peak.set(role, Math.max(this.peak.get(role) ?? 0, rss));
    const cpu = new Map<Role, number>();
    for (const [pid, end] of this.last) {
      const used = end.cpuMs - (this.first.get(pid)?.cpuMs ?? 0);
      cpu.set(end.role, (cpu.get(end.role) ?? 0) + Math.max(0, used));
    }
    this.timeline.push({ at: Date.now(), cpu });
  }

  /** CPU seconds per role between two epoch times inside the last window (nearest ticks). */
  between(from: number, to: number): { role: Role; cpuSeconds: number }[] {
    const nearest = (t: number) =>
      this.timeline.reduce((best, x) => (Math.abs(x.at - t) < Math.abs(best.at - t) ? x : best));
    if (this.timeline.length === 0) return [];
    const a = nearest(from);
    const b = nearest(to);
    return [...b.cpu.entries()]
      .map(([role, ms]) => ({ role, cpuSeconds: Math.max(0, ms - (a.cpu.get(role) ?? 0)) / 1000 }))
      .filter((r) => r.cpuSeconds > 0)
      .sort((x, y) => y.cpuSeconds - x.cpuSeconds);
  }

  stop(): Window {
    this.tick();
    clearInterval(this.timer);
    const wallSeconds = (performance.now() - this.started) / 1000;
    const cpu = new Map<Role, number>();
    for (const [pid, end] of this.last) {
      const begin = this.first.get(pid)?.cpuMs ?? 0;
      cpu.set(end.role, (cpu.get(end.role) ?? 0) + Math.max(0, end.cpuMs - begin) / 1000);
    }
    const roles = [...cpu.entries()]
      .map(([role, cpuSeconds]) => ({ role, cpuSeconds, peakRssMiB: this.peak.get(role) ?? 0 }))
      .sort((a, b) => b.cpuSeconds - a.cpuSeconds);
    const total = roles.reduce((n, r) => n + r.cpuSeconds, 0);
    return { wallSeconds, roles, coresBusy: wallSeconds > 0 ? total / wallSeconds : 0 };
  }
}
