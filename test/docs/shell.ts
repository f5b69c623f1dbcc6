// One bash session on a terminal, as a reader pasting the examples has: variables and the working directory
// carry from one command to the next, and commands see a terminal (the CLI draws its human output only there).
// bash reads its commands from a FIFO; `script` (util-linux) gives it a pseudo-terminal for stdout and stderr.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { renderTerminal } from './output.ts';

export interface CommandResult {
  /** The exit status. */
  readonly code: number;
  /** What the terminal shows once the command ended. */
  readonly screen: string;
}

export class CommandTimeout extends Error {
  override readonly name = 'CommandTimeout';
}

/** Printed after each command: its number and exit status between two ASCII record separators. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: a separator no command prints
const SENTINEL = /\x1e(\d+) (\d+)\x1e/;

export class ShellSession {
  private output = '';
  private exited = false;
  private count = 0;
  private waiter: (() => void) | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly fifo: FileHandle,
    private readonly dir: string,
    private readonly transcript: string,
    private readonly errors: string[],
  ) {
    child.stdout?.on('data', (d: Buffer) => {
      this.output += d.toString('utf8');
      this.waiter?.();
    });
    child.on('exit', () => {
      this.exited = true;
      this.waiter?.();
    });
  }

  /** `dir` holds the FIFO, the command files and `transcript.log`; commands run in `cwd` with `env`. */
  static async start(opts: { cwd: string; env: NodeJS.ProcessEnv; dir: string }): Promise<ShellSession> {
    const fifo = join(opts.dir, 'commands.fifo');
    execFileSync('mkfifo', [fifo]);
    const child = spawn(
      'script',
      ['-qfec', `stty cols 160 rows 50 2>/dev/null; exec bash --noprofile --norc ${fifo}`, '/dev/null'],
      { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const errors: string[] = [];
    child.stderr?.on('data', (d: Buffer) => errors.push(d.toString()));
    // Opening a FIFO for writing waits for its reader: bash, unless the session died first.
    const died = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code) =>
        reject(new Error(`the shell session ended at start (${code}): ${errors.join('')}`)),
      );
    });
    const handle = await Promise.race([open(fifo, 'w'), died]);
    const transcript = join(opts.dir, 'transcript.log');
    writeFileSync(transcript, '');
    await handle.write('__doc_rc() { return "$1"; }\n');
    return new ShellSession(child, handle, opts.dir, transcript, errors);
  }

  /** Runs `command` in the session; rejects with CommandTimeout (and the output so far) after `timeoutMs`. */
  async run(command: string, timeoutMs: number): Promise<CommandResult> {
    if (this.exited) throw new Error(`the shell session has ended: ${this.errors.join('')}`);
    const n = ++this.count;
    const file = join(this.dir, `command-${n}.sh`);
    writeFileSync(file, `${command}\n`);
    appendFileSync(this.transcript, `$ ${command}\n`);
    const started = this.output.length;
    // The status goes back to $? after the sentinel, so `echo $?` in the next command sees it.
    await this.fifo.write(
      `source '${file}'; __doc_s=$?; printf '\\036%d %d\\036' ${n} $__doc_s; __doc_rc $__doc_s\n`,
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = SENTINEL.exec(this.output.slice(started));
      if (found && Number(found[1]) === n) {
        const raw = this.output.slice(started, started + found.index);
        this.output = this.output.slice(started + found.index + found[0].length);
        appendFileSync(this.transcript, raw);
        return { code: Number(found[2]), screen: renderTerminal(raw) };
      }
      if (this.exited) throw new Error(`the shell session ended during the command: ${this.errors.join('')}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        const raw = this.output.slice(started);
        appendFileSync(this.transcript, `${raw}\n[timed out after ${timeoutMs} ms]\n`);
        throw new CommandTimeout(
          `no end after ${Math.round(timeoutMs / 1000)} s; the terminal shows:\n${renderTerminal(raw)}`,
        );
      }
      // Woken by output or by the end of the session; the timer only bounds the wait.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Ends the session: EOF on the FIFO ends bash; a session stuck in a command is killed. */
  async close(): Promise<void> {
    await this.fifo.close().catch(() => {});
    if (this.exited) return;
    const ended = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await ended;
    clearTimeout(timer);
  }
}
