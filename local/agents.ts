// One agent process per data center, as a real site would run it: its own directory, its own token, restarted
// if it dies (a crashed agent resumes from its journals).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const CLI = fileURLToPath(new URL('../cli/vmmig.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface AgentSpec {
  readonly dataCenterId: string;
  readonly dir: string;
  readonly token: string;
  readonly onReady?: string | undefined;
  readonly onMigrated?: string | undefined;
  readonly concurrency?: number | undefined;
}

/** argv (after the node binary) that runs `vmmig <args>` from this checkout. */
export function vmmigArgs(...args: string[]): string[] {
  return ['--import', TSX, CLI, ...args];
}

/** argv (after the node binary) that runs the agent of a data center: the same command an operator types. */
export function agentArgs(spec: AgentSpec, endpoint: string): string[] {
  return vmmigArgs(
    'agent',
    '--vrn',
    spec.dataCenterId,
    '--dir',
    spec.dir,
    '--endpoint',
    endpoint,
    ...(spec.concurrency ? ['--concurrency', String(spec.concurrency)] : []),
    ...(spec.onReady ? ['--on-ready', spec.onReady] : []),
    ...(spec.onMigrated ? ['--on-migrated', spec.onMigrated] : []),
  );
}

export class AgentSupervisor {
  private readonly children = new Map<string, ChildProcess>();
  private readonly specs = new Map<string, AgentSpec>();
  private stopping = false;

  constructor(
    private readonly endpoint: string,
    private readonly log: (dataCenterId: string, line: string) => void,
    /** A data center's AWS environment: its agent's own credentials, as Roles Anywhere gives them on AWS. */
    private readonly awsEnvironment: (dataCenterId: string) => Record<string, string> = () => ({}),
  ) {}

  start(spec: AgentSpec, failures = 0): void {
    if (this.stopping) return;
    this.specs.set(spec.dataCenterId, spec);
    mkdirSync(`${spec.dir}/images`, { recursive: true });
    const child = spawn(process.execPath, agentArgs(spec, this.endpoint), {
      env: { ...process.env, ...this.awsEnvironment(spec.dataCenterId), VMMIG_TOKEN: spec.token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.set(spec.dataCenterId, child);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => this.log(spec.dataCenterId, line));
    }
    const startedAt = Date.now();
    child.on('exit', (code, signal) => {
      if (this.children.get(spec.dataCenterId) === child) this.children.delete(spec.dataCenterId);
      if (this.stopping || this.specs.get(spec.dataCenterId) !== spec) return;
      // A crash loop backs off; an agent that ran a while restarts at once.
      const next = Date.now() - startedAt > 30_000 ? 0 : failures + 1;
      const delay = Math.min(30_000, 500 * 2 ** next);
      this.log(spec.dataCenterId, `agent exited (${signal ?? code}); restarting in ${delay} ms`);
      setTimeout(() => {
        if (!this.stopping && this.specs.get(spec.dataCenterId) === spec) this.start(spec, next);
      }, delay).unref();
    });
  }

  has(dataCenterId: string): boolean {
    return this.specs.has(dataCenterId);
  }

  ids(): string[] {
    return [...this.specs.keys()];
  }

  /** Stops one data center's agent for good (its data center was removed). */
  async stopOne(dataCenterId: string): Promise<void> {
    this.specs.delete(dataCenterId);
    const child = this.children.get(dataCenterId);
    if (child) await terminate(child);
  }

  pid(dataCenterId: string): number | undefined {
    return this.children.get(dataCenterId)?.pid;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.children.values()].map(terminate));
  }
}

function terminate(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
