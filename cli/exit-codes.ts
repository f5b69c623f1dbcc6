// The CLI's exit codes and what each means: the one source of the table in docs/cli.md (a test compares them)
// and of the table `vmmig --help` prints.
export const EXIT = {
  ok: 0,
  migrationFailed: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  unavailable: 5,
  unauthenticated: 6,
  forbidden: 7,
  interrupted: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each exit code means, as docs/cli.md states it. */
export const EXIT_MEANINGS: { readonly [K in keyof typeof EXIT]: string } = {
  ok: 'success (with `--wait`/`--watch`: the migration COMPLETED)',
  migrationFailed:
    'with `--wait`/`--watch`: the migration (or a VM of the batch) ended FAILED or CANCELLED; `cache verify`: the index and the bucket disagree (not repaired)',
  usage: 'bad command line or input file, or the API rejected the input (400)',
  notFound: 'not found (404)',
  conflict: 'conflict with the current state (409), e.g. retrying a running migration',
  unavailable:
    'the API could not be reached, kept answering 429/503, or failed (5xx); `vmmig local`: the local cloud could not start',
  unauthenticated:
    'missing, wrong or expired credentials (401): check `--token` / `VMMIG_TOKEN` or AWS credentials',
  forbidden: 'these credentials may not do that (403), e.g. an agent token used for an admin command',
  interrupted: 'interrupted (Ctrl-C)',
};

/** The exit code for an API answer that is an error. */
export function exitForHttpStatus(status: number): ExitCode {
  if (status === 401) return EXIT.unauthenticated;
  if (status === 403) return EXIT.forbidden;
  if (status === 404) return EXIT.notFound;
  if (status === 409) return EXIT.conflict;
  if (status === 429 || status >= 500) return EXIT.unavailable;
  return EXIT.usage;
}

/** The table, code by code, in ascending order. */
export const exitCodeTable = (): { code: number; meaning: string }[] =>
  (Object.keys(EXIT) as (keyof typeof EXIT)[])
    .map((k) => ({ code: EXIT[k], meaning: EXIT_MEANINGS[k] }))
    .sort((a, b) => a.code - b.code);
