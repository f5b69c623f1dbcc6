// One table, one source: docs/cli.md's exit codes are cli/exit-codes.ts's, code for code and word for word.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeTable, exitForHttpStatus } from '../../../cli/exit-codes.ts';

const doc = readFileSync(fileURLToPath(new URL('../../../docs/cli.md', import.meta.url)), 'utf8');

/** The rows of the table under "## Exit codes". */
function documentedCodes(): { code: number; meaning: string }[] {
  const section = doc.slice(doc.indexOf('## Exit codes'));
  const end = section.indexOf('\n## ', 1);
  return (end > 0 ? section.slice(0, end) : section)
    .split('\n')
    .filter((l) => /^\|\s*\d+\s*\|/.test(l))
    .map((l) => {
      const [, code = '', meaning = ''] = l.split('|').map((c) => c.trim());
      return { code: Number(code), meaning };
    });
}

describe('exit codes', () => {
  it('docs/cli.md lists exactly the codes of cli/exit-codes.ts, with the same meanings', () => {
    expect(documentedCodes()).toEqual(exitCodeTable());
  });

  it('every code has its own number and a meaning', () => {
    const codes = Object.values(EXIT);
    expect(new Set(codes).size).toBe(codes.length);
    for (const row of exitCodeTable()) expect(row.meaning.length).toBeGreaterThan(5);
  });

  it('the numbers scripts already rely on stay as they were', () => {
    expect(EXIT).toMatchObject({
      ok: 0,
      migrationFailed: 1,
      usage: 2,
      notFound: 3,
      conflict: 4,
      unavailable: 5,
      interrupted: 130,
    });
  });

  it('maps API answers: 401 and 403 are not bad command lines; 429 and 5xx are the API being unavailable', () => {
    expect(exitForHttpStatus(400)).toBe(EXIT.usage);
    expect(exitForHttpStatus(401)).toBe(EXIT.unauthenticated);
    expect(exitForHttpStatus(403)).toBe(EXIT.forbidden);
    expect(exitForHttpStatus(404)).toBe(EXIT.notFound);
    expect(exitForHttpStatus(409)).toBe(EXIT.conflict);
    expect(exitForHttpStatus(429)).toBe(EXIT.unavailable);
    expect(exitForHttpStatus(503)).toBe(EXIT.unavailable);
  });
});
