// The documentation's shell examples: fenced blocks of README.md and docs/*.md in reading order, the
// `<!-- doc-test: … -->` markers before them, and the commands (and for console blocks the expected output) in them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Fenced blocks with these info strings are shell examples: each one runs, or is marked skipped. */
export const SHELL_LANGS: ReadonlySet<string> = new Set(['sh', 'bash', 'shell', 'console']);

/**
 * Blocks that are not shell examples. Any other info string is refused, so that a shell example under another
 * name (`zsh`, `shell-session`) cannot slip past unrun.
 */
export const OTHER_LANGS: ReadonlySet<string> = new Set([
  'text',
  'ini',
  'json',
  'jsonc',
  'yaml',
  'toml',
  'ts',
  'typescript',
  'js',
  'javascript',
  'diff',
  'http',
  'xml',
  'html',
  'mermaid',
]);

/** A reader's order: the README, the use cases, then the reference documents; any other docs/*.md after them. */
export const DOC_ORDER: readonly string[] = [
  'README.md',
  'docs/use-cases.md',
  'docs/api.md',
  'docs/cli.md',
  'docs/local-cloud.md',
  'docs/architecture.md',
  'docs/reliability.md',
  'docs/development.md',
  'docs/cost.md',
  'docs/deploy.md',
];

export function docFiles(root: string): string[] {
  const present = [
    'README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const known = DOC_ORDER.filter((f) => present.includes(f));
  return [...known, ...present.filter((f) => !known.includes(f)).sort()];
}

export type Directive =
  /** Not run; the test prints the reason. */
  | { readonly kind: 'skip'; readonly reason: string }
  /** Skipped, with that reason, when one of these programs is not installed. */
  | { readonly kind: 'needs'; readonly programs: readonly string[] }
  /** A long-running command (the local cloud): started in the background, ready once its output shows `until`. */
  | { readonly kind: 'background'; readonly until: string };

export interface Block {
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The info string's first word, '' when there is none. */
  readonly lang: string;
  /** The content lines, without the fence's indentation; body[i] is on line `line + 1 + i`. */
  readonly body: readonly string[];
  readonly directives: readonly Directive[];
}

export interface Problem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

const FENCE = /^( *)(`{3,}|~{3,})\s*([^\s`]*)/;
const MARKER = /^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$/;

function parseDirective(text: string): Directive | string {
  const skip = /^skip\s*\((.+)\)$/.exec(text);
  if (skip) return { kind: 'skip', reason: (skip[1] as string).trim() };
  const needs = /^needs\s+(.+)$/.exec(text);
  if (needs) return { kind: 'needs', programs: (needs[1] as string).split(/[\s,]+/).filter(Boolean) };
  const background = /^background\s+until\s+"(.+)"$/.exec(text);
  if (background) return { kind: 'background', until: background[1] as string };
  return `unknown doc-test marker "${text}": use skip (REASON), needs PROGRAM…, or background until "TEXT"`;
}

/** Every fenced block of one Markdown file, with the markers that precede it. */
export function parseBlocks(file: string, text: string): { blocks: Block[]; problems: Problem[] } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  const problems: Problem[] = [];
  let pending: { directive: Directive; line: number }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const marker = MARKER.exec(line);
    if (marker) {
      const d = parseDirective(marker[1] as string);
      if (typeof d === 'string') problems.push({ file, line: i + 1, message: d });
      else pending.push({ directive: d, line: i + 1 });
      continue;
    }
    const open = FENCE.exec(line);
    if (!open) {
      if (line.trim() !== '' && pending.length > 0) {
        for (const p of pending)
          problems.push({ file, line: p.line, message: 'doc-test marker not followed by a fenced block' });
        pending = [];
      }
      continue;
    }
    const indent = (open[1] as string).length;
    const fence = open[2] as string;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] as string;
      const trimmed = l.trimStart();
      if (trimmed.startsWith(fence) && new RegExp(`^\\${fence[0]}+\\s*$`).test(trimmed)) break;
      body.push(l.slice(Math.min(indent, l.length - l.trimStart().length)));
    }
    if (j >= lines.length) problems.push({ file, line: i + 1, message: 'fenced block is never closed' });
    blocks.push({
      file,
      line: i + 1,
      lang: open[3] as string,
      body,
      directives: pending.map((p) => p.directive),
    });
    pending = [];
    i = j;
  }
  for (const p of pending)
    problems.push({ file, line: p.line, message: 'doc-test marker not followed by a fenced block' });
  return { blocks, problems };
}

export function loadBlocks(root: string): { blocks: Block[]; problems: Problem[] } {
  const blocks: Block[] = [];
  const problems: Problem[] = [];
  for (const file of docFiles(root)) {
    const parsed = parseBlocks(file, readFileSync(join(root, file), 'utf8'));
    blocks.push(...parsed.blocks);
    problems.push(...parsed.problems);
  }
  return { blocks, problems };
}

export interface Command {
  /** 1-based line in the document where the command starts. */
  readonly line: number;
  /** The command as the shell reads it (continuation lines included). */
  readonly text: string;
  /** Console blocks only: the output lines the document shows (patterns, see output.ts). */
  readonly expected?: readonly string[];
  /** Console blocks only: the document line of the first expected output line. */
  readonly expectedLine?: number;
}

/**
 * Where the shell's reading of `text` stands at its end: inside quotes or parentheses, or after a trailing
 * backslash, pipe or `&&`/`||`, the command goes on on the next line. Enough for the one-liners and the few
 * continued lines of documentation examples; here-documents and multi-line compound commands are not handled.
 */
export function isComplete(text: string): boolean {
  let quote: '' | "'" | '"' = '';
  let depth = 0;
  let tail = ''; // the last two characters that are neither blank nor in a comment
  const see = (c: string) => {
    tail = (tail + c).slice(-2);
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = '';
      see(c);
      continue;
    }
    if (c === '\\') {
      if (i === text.length - 1) return false;
      i++; // an escaped character, or a line continuation
      if (text[i] !== '\n') see('x');
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = '';
      see(c);
      continue;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1] as string))) {
      const nl = text.indexOf('\n', i);
      if (nl < 0) break;
      i = nl - 1;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    if (!/\s/.test(c)) see(c);
  }
  return quote === '' && depth <= 0 && !tail.endsWith('|') && tail !== '&&';
}

/** The commands of a sh/bash/shell block: blank and comment-only lines are not commands. */
export function shellCommands(block: Block): Command[] {
  const commands: Command[] = [];
  let current: string[] = [];
  let start = 0;
  block.body.forEach((l, i) => {
    if (current.length === 0) {
      if (l.trim() === '' || l.trim().startsWith('#')) return;
      start = block.line + 1 + i;
    }
    current.push(l);
    if (isComplete(current.join('\n'))) {
      commands.push({ line: start, text: current.join('\n') });
      current = [];
    }
  });
  if (current.length > 0) throw new Error(`${block.file}:${start}: command does not end inside the block`);
  return commands;
}

/**
 * The commands of a console block and the output each shows: `$ ` starts a command, `> ` continues it, every
 * other line up to the next `$ ` is its expected output (trailing blank lines ignored).
 */
export function consoleCommands(block: Block): Command[] {
  const commands: { line: number; text: string[]; expected: string[]; expectedLine: number }[] = [];
  let continuing = false;
  block.body.forEach((l, i) => {
    const line = block.line + 1 + i;
    const current = commands[commands.length - 1];
    if (continuing && current) {
      if (!l.startsWith('> '))
        throw new Error(`${block.file}:${line}: the command goes on: start the line with "> "`);
      current.text.push(l.slice(2));
      continuing = !isComplete(current.text.join('\n'));
      current.expectedLine = line + 1;
      return;
    }
    if (l.startsWith('$ ')) {
      commands.push({ line, text: [l.slice(2)], expected: [], expectedLine: line + 1 });
      continuing = !isComplete(l.slice(2));
      return;
    }
    if (!current) {
      if (l.trim() === '') return;
      throw new Error(`${block.file}:${line}: a console block starts with a "$ " command line`);
    }
    current.expected.push(l);
  });
  if (continuing)
    throw new Error(`${block.file}:${block.line}: the last command does not end inside the block`);
  return commands.map((c) => {
    const expected = [...c.expected];
    while (expected.length > 0 && (expected[expected.length - 1] as string).trim() === '') expected.pop();
    return { line: c.line, text: c.text.join('\n'), expected, expectedLine: c.expectedLine };
  });
}

export function commandsOf(block: Block): Command[] {
  return block.lang === 'console' ? consoleCommands(block) : shellCommands(block);
}
