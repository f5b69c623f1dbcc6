// Executable documentation: every shell example of README.md and docs/*.md runs, in reading order, in one bash
// session on a terminal against one local cloud, as a reader pasting them from the top would run them; console
// blocks have their output checked. A block that cannot run here carries a `<!-- doc-test: … -->` marker saying
// why, and the test prints that reason. Conventions: test/docs/README.md.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackgroundCommand } from './background.ts';
import { type Block, type Command, commandsOf, loadBlocks, OTHER_LANGS, SHELL_LANGS } from './doc-blocks.ts';
import { diffOutput } from './output.ts';
import { CommandTimeout, ShellSession } from './shell.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCUMENTED_PORT_BASE = 7700;
/** One command: the examples' migrations are small images, done in seconds. */
const COMMAND_TIMEOUT_MS = 120_000;
const START_TIMEOUT_MS = 180_000;

const installed = (program: string) =>
  spawnSync('bash', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;

interface Planned {
  readonly block: Block;
  readonly name: string;
  readonly commands: readonly Command[];
  readonly skip?: string;
  readonly background?: string;
}

const { blocks, problems } = loadBlocks(ROOT);
const planned: Planned[] = [];
const parseProblems: string[] = problems.map((p) => `${p.file}:${p.line}: ${p.message}`);
const noTerminal = installed('script') ? undefined : 'needs `script` (util-linux) for a terminal';
for (const block of blocks) {
  const where = `${block.file}:${block.line}`;
  if (block.lang === '') {
    parseProblems.push(
      `${where}: fenced block without a language: \`\`\`sh (or console) for commands, \`\`\`text for output or pictures`,
    );
    continue;
  }
  if (OTHER_LANGS.has(block.lang)) continue;
  if (!SHELL_LANGS.has(block.lang)) {
    parseProblems.push(
      `${where}: fenced block in \`\`\`${block.lang}: shell examples are sh, bash, shell or console; other blocks one of ${[...OTHER_LANGS].join(', ')} (test/docs/doc-blocks.ts)`,
    );
    continue;
  }
  let commands: Command[] = [];
  try {
    commands = commandsOf(block);
  } catch (err) {
    parseProblems.push((err as Error).message);
    continue;
  }
  const skip = block.directives.find((d) => d.kind === 'skip');
  const missing = block.directives
    .flatMap((d) => (d.kind === 'needs' ? d.programs : []))
    .filter((p) => !installed(p));
  const background = block.directives.find((d) => d.kind === 'background');
  const reason =
    skip?.kind === 'skip'
      ? skip.reason
      : missing.length > 0
        ? `needs ${missing.join(', ')}, not installed here`
        : noTerminal;
  const first = commands[0]?.text.split('\n')[0] ?? '';
  planned.push({
    block,
    name: `${where} ${block.lang}: ${first}${commands.length > 1 ? ` (+${commands.length - 1})` : ''}`,
    commands,
    ...(reason ? { skip: reason } : {}),
    ...(background?.kind === 'background' ? { background: background.until } : {}),
  });
}

/** Five consecutive free ports on the loopback, the documented ones if free (other tests pick ports ≥ 10000). */
async function pickPortBase(): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
    });
  for (let base = DOCUMENTED_PORT_BASE; base < 9_995; base += 5) {
    let ok = true;
    for (let p = base; p < base + 5 && ok; p++) ok = await free(p);
    if (ok) return base;
  }
  throw new Error('no five consecutive free ports from 7700 to 9999');
}

describe('documentation examples', () => {
  let work: string;
  let state: string;
  let portBase = DOCUMENTED_PORT_BASE;
  let shell: ShellSession | undefined;
  let cloud: BackgroundCommand | undefined;
  let failed = false;
  const started = Date.now();

  /** The documented ports moved to the ones this run uses (the same when 7700… are free). */
  const ports = (text: string) =>
    portBase === DOCUMENTED_PORT_BASE
      ? text
      : text.replace(
          /\b(localhost|127\.0\.0\.1):(770[0-4])\b/g,
          (_, host: string, port: string) => `${host}:${portBase + Number(port) - DOCUMENTED_PORT_BASE}`,
        );

  beforeAll(async () => {
    if (planned.every((p) => p.skip)) return;
    portBase = await pickPortBase();
    // A working directory that looks like the checkout (every entry linked) but has its own .vmmig/.
    work = mkdtempSync(join(tmpdir(), 'vmmig-docs-'));
    state = join(work, '.doc-test');
    const project = join(work, 'project');
    mkdirSync(project);
    mkdirSync(state);
    for (const entry of readdirSync(ROOT)) {
      if (['.vmmig', '.git', 'cdk.out', 'coverage'].includes(entry)) continue;
      symlinkSync(join(ROOT, entry), join(project, entry));
    }
    work = project;
    shell = await ShellSession.start({ cwd: work, env: readerEnv(), dir: state });
  });

  afterAll(async () => {
    await shell?.close();
    const cloudProblem = await cloud?.stop();
    const run = planned.filter((p) => !p.skip);
    const skipped = planned.filter((p) => p.skip);
    const count = (ps: Planned[]) => ps.reduce((n, p) => n + p.commands.length, 0);
    const lines = [
      `documentation examples: ${run.length} blocks (${count(run)} commands) run, ${skipped.length} blocks (${count(skipped)} commands) skipped, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      ...skipped.map((p) => `  skipped ${p.block.file}:${p.block.line}: ${p.skip}`),
    ];
    if (cloud && cloudProblem) {
      failed = true;
      lines.push(`  the local cloud ${cloudProblem} when stopped with Ctrl-C (SIGINT): see ${cloud.log}`);
    }
    const keep = failed || process.env['VMMIG_DOCS_KEEP'] === '1';
    if (keep && work) lines.push(`  kept for a look: ${work} (transcript and local cloud log in ${state})`);
    console.log(lines.join('\n'));
    if (work && !keep) rmSync(join(work, '..'), { recursive: true, force: true });
    expect(cloudProblem ?? '', 'the local cloud stops cleanly on Ctrl-C').toBe('');
  }, 90_000);

  it('every fenced block is labeled and every doc-test marker understood', () => {
    expect(parseProblems, parseProblems.join('\n')).toEqual([]);
  });

  for (const p of planned) {
    if (p.skip) {
      it.skip(`${p.name} — skipped: ${p.skip}`, () => {});
      continue;
    }
    const timeout = p.background ? START_TIMEOUT_MS : (p.commands.length + 1) * COMMAND_TIMEOUT_MS;
    it(
      p.name,
      async () => {
        try {
          if (p.background !== undefined) await startBackground(p);
          else await runBlock(p);
        } catch (err) {
          failed = true;
          throw err;
        }
      },
      timeout,
    );
  }

  async function startBackground(p: Planned): Promise<void> {
    const [command, ...rest] = p.commands;
    if (!command || rest.length > 0)
      throw new Error(`${p.block.file}:${p.block.line}: a background block holds exactly one command`);
    let text = command.text;
    if (portBase !== DOCUMENTED_PORT_BASE) {
      text = /^npm start\b/.test(text)
        ? text.replace(/^npm start( --)?/, `npm start -- --port-base ${portBase}`)
        : `${text} --port-base ${portBase}`;
    }
    try {
      cloud = await BackgroundCommand.start({
        command: text,
        until: p.background as string,
        cwd: work,
        env: readerEnv(),
        log: join(state, 'background.log'),
        timeoutMs: START_TIMEOUT_MS - 10_000,
      });
    } catch (err) {
      throw new Error(
        `${p.block.file}:${command.line}: ${(err as Error).message}; see ${join(state, 'background.log')}`,
      );
    }
  }

  async function runBlock(p: Planned): Promise<void> {
    if (!shell?.alive) throw new Error('the shell session has ended (an earlier command timed out)');
    for (const c of p.commands) {
      const label = `${p.block.file}:${c.line}: \`${c.text.split('\n')[0]}\``;
      let result: Awaited<ReturnType<ShellSession['run']>>;
      try {
        result = await shell.run(ports(c.text), COMMAND_TIMEOUT_MS);
      } catch (err) {
        if (err instanceof CommandTimeout) await shell.close();
        throw new Error(`${label}: ${(err as Error).message}${cloudTail()}`);
      }
      const actual = result.screen === '' ? [] : result.screen.split('\n');
      if (c.expected === undefined) {
        if (result.code !== 0)
          throw new Error(
            `${label} exited ${result.code}; the terminal shows:\n${result.screen}${cloudTail()}`,
          );
        continue;
      }
      const expected = c.expected.map(ports);
      const diff = diffOutput(expected, actual);
      if (diff) {
        const first = c.expectedLine ?? c.line + 1;
        const shown = diff.map((d) =>
          d.kind === '+'
            ? `        + ${d.text}`
            : `${String(first + (d.index ?? 0)).padStart(6)} ${d.kind} ${d.text}`,
        );
        throw new Error(
          `${label}: the output differs from the document (- document line, + what the terminal shows):\n${shown.join('\n')}`,
        );
      }
      // A console block shows a failing command's status with `$ echo $?`; nothing fails unnoticed.
      const next = p.commands[p.commands.indexOf(c) + 1];
      if (result.code !== 0 && !next?.text.startsWith('echo $?'))
        throw new Error(`${label} exited ${result.code}: show it with a following \`$ echo $?\` line`);
    }
  }

  function cloudTail(): string {
    return cloud ? `\n--- the local cloud's last lines (${cloud.log}):\n${cloud.tail(20)}` : '';
  }
});

/** The environment of a reader's terminal in the project: Node 24 first on PATH, as npm scripts have it. */
function readerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('VMMIG_') || k.startsWith('VITEST') || k === 'NODE_ENV' || k === 'TEST') continue;
    env[k] = v;
  }
  env['PATH'] = `${join(ROOT, 'node_modules', '.bin')}:${process.env['PATH'] ?? ''}`;
  env['NO_COLOR'] = '1';
  env['TERM'] = 'xterm';
  return env;
}
