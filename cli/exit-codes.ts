// The CLI's exit codes, documented in docs/cli.md.
export const EXIT = {
  ok: 0,
  /** The migration ended FAILED or CANCELLED (with --wait / --watch). */
  migrationFailed: 1,
  /** Bad command line or input rejected by the API (400). */
  usage: 2,
  notFound: 3,
  /** The API refused because of the current state (409). */
  conflict: 4,
  /** The API could not be reached or answered with an unexpected error. */
  unavailable: 5,
  interrupted: 130,
} as const;
