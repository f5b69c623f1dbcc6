// What a reader's terminal shows after a command (progress bars redrawn in place included), and the check of it
// against the output a document shows: exact lines, `[..]` for any text within a line, `...` alone on a line
// for any number of lines (the wildcards of trycmd).

/** The final screen text of a terminal that received `raw`: carriage returns, cursor moves and erasures applied. */
export function renderTerminal(raw: string): string {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (text: string) => {
    const line = (lines[row] as string).padEnd(col);
    lines[row] = line.slice(0, col) + text + line.slice(col + text.length);
    col += text.length;
  };
  const down = () => {
    row++;
    while (lines.length <= row) lines.push('');
  };
  for (let i = 0; i < raw.length; ) {
    const c = raw[i] as string;
    if (c === '\x1b') {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the terminal's control sequences
      const csi = /^\x1b\[([0-9;?]*)([@-~])/.exec(raw.slice(i, i + 32));
      if (!csi) {
        i += 2; // another escape sequence of two characters (charset, keypad): no effect on the text
        continue;
      }
      i += csi[0].length;
      const params = (csi[1] as string).replace('?', '');
      const n = Number(params.split(';')[0] || '0');
      switch (csi[2]) {
        case 'F': // cursor to the start of the line n up
          row = Math.max(0, row - Math.max(1, n));
          col = 0;
          break;
        case 'A':
          row = Math.max(0, row - Math.max(1, n));
          break;
        case 'E':
          for (let k = 0; k < Math.max(1, n); k++) down();
          col = 0;
          break;
        case 'B':
          for (let k = 0; k < Math.max(1, n); k++) down();
          break;
        case 'G':
          col = Math.max(0, n - 1);
          break;
        case 'J':
          if (n === 2 || n === 3) {
            lines.splice(0, lines.length, '');
            row = 0;
            col = 0;
          } else {
            lines[row] = (lines[row] as string).slice(0, col);
            lines.length = row + 1;
          }
          break;
        case 'K':
          lines[row] = (lines[row] as string).slice(0, col);
          break;
        default: // colours and modes
          break;
      }
      continue;
    }
    if (c === '\r') col = 0;
    else if (c === '\n') {
      down();
      col = 0;
    } else if (c === '\b') col = Math.max(0, col - 1);
    else if (c === '\t') put(' '.repeat(8 - (col % 8)));
    else if (c >= ' ') {
      let j = i + 1;
      while (j < raw.length && (raw[j] as string) >= ' ' && raw[j] !== '\x7f') j++;
      put(raw.slice(i, j));
      i = j;
      continue;
    }
    i++;
  }
  const out = lines.map((l) => l.trimEnd());
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out.join('\n');
}

const ANY_LINES = '...';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One expected line against one actual line (trailing blanks ignored). */
export function lineMatches(pattern: string, line: string): boolean {
  const p = pattern.trimEnd();
  const l = line.trimEnd();
  if (!p.includes('[..]')) return p === l;
  return new RegExp(`^${p.split('[..]').map(escapeRegExp).join('.*')}$`).test(l);
}

export interface DiffLine {
  readonly kind: ' ' | '-' | '+';
  readonly text: string;
  /** For expected lines: their index in the expected list. */
  readonly index?: number;
}

/**
 * Aligns expected patterns with actual lines at the least number of unmatched lines; `...` takes any run of
 * actual lines. Returns null when everything matches, else the alignment as a diff.
 */
export function diffOutput(expected: readonly string[], actual: readonly string[]): DiffLine[] | null {
  const n = expected.length;
  const m = actual.length;
  // cost[i][j]: unmatched lines to align expected[i..] with actual[j..]
  const cost: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n; i >= 0; i--) {
    for (let j = m; j >= 0; j--) {
      const row = cost[i] as number[];
      if (i === n) {
        row[j] = m - j;
        continue;
      }
      const next = cost[i + 1] as number[];
      const e = expected[i] as string;
      if (e.trim() === ANY_LINES) {
        row[j] = Math.min(next[j] as number, j < m ? (row[j + 1] as number) : Number.POSITIVE_INFINITY);
        continue;
      }
      let best = 1 + (next[j] as number);
      if (j < m) {
        best = Math.min(best, 1 + (row[j + 1] as number));
        if (lineMatches(e, actual[j] as string)) best = Math.min(best, next[j + 1] as number);
      }
      row[j] = best;
    }
  }
  if ((cost[0] as number[])[0] === 0) return null;
  const diff: DiffLine[] = [];
  let i = 0;
  let j = 0;
  const at = (a: number, b: number) => (cost[a] as number[])[b] as number;
  while (i < n || j < m) {
    const e = expected[i];
    if (i < n && (e as string).trim() === ANY_LINES) {
      if (j < m && at(i, j + 1) === at(i, j)) diff.push({ kind: ' ', text: actual[j++] as string });
      else diff.push({ kind: ' ', text: e as string, index: i++ });
      continue;
    }
    if (i < n && j < m && lineMatches(e as string, actual[j] as string) && at(i + 1, j + 1) === at(i, j)) {
      diff.push({ kind: ' ', text: actual[j++] as string, index: i++ });
    } else if (j < m && (i === n || 1 + at(i, j + 1) === at(i, j))) {
      diff.push({ kind: '+', text: actual[j++] as string });
    } else {
      diff.push({ kind: '-', text: e as string, index: i++ });
    }
  }
  return diff;
}
