// A command that runs until Ctrl-C (the local cloud, `npm start`), as a reader runs it in a terminal of its own:
// started in its own process group, ready once its output shows a line, stopped with SIGINT to the group.
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';

export class BackgroundCommand {
  private output = '';
  /** How it ended: its exit code, or the signal that ended it. */
  private ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly log: string,
  ) {
    const take = (d: Buffer) => {
      this.output += d.toString('utf8');
      appendFileSync(log, d);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.on('exit', (code, signal) => {
      this.ended = { code, signal };
    });
  }

  /** Starts `command` with bash in `cwd`; resolves once its output contains `until`. */
  static async start(opts: {
    command: string;
    until: string;
    cwd: string;
    env: NodeJS.ProcessEnv;
    log: string;
    timeoutMs: number;
  }): Promise<BackgroundCommand> {
    writeFileSync(opts.log, `$ ${opts.command}\n`);
    const child = spawn('bash', ['-c', opts.command], {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const self = new BackgroundCommand(child, opts.log);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`\`${opts.command}\` did not print "${opts.until}" within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const check = () => {
        if (self.output.includes(opts.until)) {
          finish();
          resolve();
        }
      };
      const exited = (code: number | null) => {
        finish();
        reject(new Error(`\`${opts.command}\` ended (${code}) before printing "${opts.until}"`));
      };
      const finish = () => {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        child.stderr?.off('data', check);
        child.off('exit', exited);
      };
      child.stdout?.on('data', check);
      child.stderr?.on('data', check);
      child.once('exit', exited);
    });
    return self;
  }

  /** The last lines it printed, for failure messages. */
  tail(lines = 40): string {
    return this.output.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /**
   * Ctrl-C: SIGINT to its process group; SIGKILL if it has not ended after `graceMs`. Resolves with what went
   * wrong ('' when it ended as Ctrl-C ends it: exit 0, 130, or by SIGINT).
   */
  async stop(graceMs = 60_000): Promise<string> {
    const pid = this.child.pid;
    if (this.ended === undefined && pid !== undefined) {
      const ended = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      process.kill(-pid, 'SIGINT');
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, graceMs);
      await ended;
      clearTimeout(timer);
    }
    const e = this.ended;
    if (!e || e.code === 0 || e.code === 130 || e.signal === 'SIGINT') return '';
    return e.signal ? `ended by ${e.signal}` : `exited ${e.code}`;
  }
}
