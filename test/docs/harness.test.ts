// The pieces of the documentation test on their own: blocks and markers, commands, the terminal, the matching.
import { describe, expect, it } from 'vitest';
import { type Block, consoleCommands, isComplete, parseBlocks, shellCommands } from './doc-blocks.ts';
import { diffOutput, lineMatches, renderTerminal } from './output.ts';

const block = (lang: string, body: string[], line = 1): Block => ({
  file: 'x.md',
  line,
  lang,
  body,
  directives: [],
});

describe('parseBlocks', () => {
  it('finds fenced blocks, indented ones too, with the markers before them', () => {
    const text = [
      '# t',
      '<!-- doc-test: skip (needs an AWS account) -->',
      '',
      '```sh',
      'aws sts get-caller-identity',
      '```',
      '1. step',
      '',
      '   <!-- doc-test: needs qemu-img, jq -->',
      '   ```console',
      '   $ qemu-img --version',
      '   ```',
      '```',
      'plain',
      '```',
    ].join('\n');
    const { blocks, problems } = parseBlocks('x.md', text);
    expect(problems).toEqual([]);
    expect(blocks.map((b) => [b.line, b.lang, b.body, b.directives])).toEqual([
      [4, 'sh', ['aws sts get-caller-identity'], [{ kind: 'skip', reason: 'needs an AWS account' }]],
      [10, 'console', ['$ qemu-img --version'], [{ kind: 'needs', programs: ['qemu-img', 'jq'] }]],
      [13, '', ['plain'], []],
    ]);
  });

  it('reports unknown markers, markers without a block, and unclosed blocks', () => {
    const { problems } = parseBlocks(
      'x.md',
      ['<!-- doc-test: skipp -->', '```sh', 'ls', '```', '<!-- doc-test: skip (x) -->', 'text', '```sh'].join(
        '\n',
      ),
    );
    expect(problems.map((p) => p.line)).toEqual([1, 5, 7]);
  });

  it('reads background markers', () => {
    const { blocks } = parseBlocks(
      'x.md',
      '<!-- doc-test: background until "ready now" -->\n```sh\nnpm start\n```',
    );
    expect(blocks[0]?.directives).toEqual([{ kind: 'background', until: 'ready now' }]);
  });
});

describe('commands', () => {
  it('knows when a command goes on', () => {
    expect(isComplete('ls -l')).toBe(true);
    expect(isComplete('curl -s \\')).toBe(false);
    expect(isComplete('curl -d \'{\n  "a": 1')).toBe(false);
    expect(isComplete('curl -d \'{\n  "a": 1 }\'')).toBe(true);
    expect(isComplete('a=$(node -p "1+\n1")')).toBe(true);
    expect(isComplete('ls |')).toBe(false);
    expect(isComplete('make &&   # then')).toBe(false);
    expect(isComplete("echo hi   # a user's desk")).toBe(true);
    expect(isComplete('sleep 1 &')).toBe(true);
  });

  it('splits sh blocks into commands with their lines', () => {
    const cmds = shellCommands(
      block(
        'sh',
        ['# setup', 'A=1', '', 'curl -X PUT \\', '  -d \'{"a":', "  1}' url   # done", 'echo $A'],
        10,
      ),
    );
    expect(cmds).toEqual([
      { line: 12, text: 'A=1' },
      { line: 14, text: 'curl -X PUT \\\n  -d \'{"a":\n  1}\' url   # done' },
      { line: 17, text: 'echo $A' },
    ]);
  });

  it('reads console blocks: commands, continuations, expected output', () => {
    const cmds = consoleCommands(
      block('console', ['$ echo a \\', '> b', 'a b', '', '$ false', '$ echo $?', '1', ''], 20),
    );
    expect(cmds).toEqual([
      { line: 21, text: 'echo a \\\nb', expected: ['a b'], expectedLine: 23 },
      { line: 25, text: 'false', expected: [], expectedLine: 26 },
      { line: 26, text: 'echo $?', expected: ['1'], expectedLine: 27 },
    ]);
    expect(() => consoleCommands(block('console', ['output first']))).toThrow(/starts with/);
  });
});

describe('renderTerminal', () => {
  it('applies carriage returns, redraws and erasures as a terminal does', () => {
    expect(renderTerminal('a\r\nb\r\n')).toBe('a\nb');
    expect(renderTerminal('start\r\nx 1%\r\ny 1%\r\n\x1b[2F\x1b[0Jx 100%\r\ny 100%\r\ndone\r\n')).toBe(
      'start\nx 100%\ny 100%\ndone',
    );
    expect(renderTerminal('⠙\x1b[1G\x1b[0Kok\r\n')).toBe('ok');
    expect(renderTerminal('\x1b[33mtrue\x1b[39m 50%\r10')).toBe('10ue 50%');
  });
});

describe('matching output', () => {
  it('matches [..] within a line and ... across lines', () => {
    expect(lineMatches('mig-[..]  COMPLETED', 'mig-0abc  COMPLETED')).toBe(true);
    expect(lineMatches('a (1.5 MiB)', 'a (1.5 MiB)  ')).toBe(true);
    expect(lineMatches('a.b', 'axb')).toBe(false);
    expect(diffOutput(['head', '...', 'tail'], ['head', '1', '2', 'tail'])).toBeNull();
    expect(diffOutput(['head', '...', 'tail'], ['head', 'tail'])).toBeNull();
  });

  it('shows what differs, line by line', () => {
    expect(diffOutput(['a', 'b [..]', 'c'], ['a', 'B 1', 'c', 'd'])).toEqual([
      { kind: ' ', text: 'a', index: 0 },
      { kind: '+', text: 'B 1' },
      { kind: '-', text: 'b [..]', index: 1 },
      { kind: ' ', text: 'c', index: 2 },
      { kind: '+', text: 'd' },
    ]);
  });
});
