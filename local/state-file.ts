// The running local cloud announces itself in `<dataDir>/local.json` (endpoints, pid) so the CLI finds it;
// the same file is the lock that keeps a second cloud off the same data directory.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LocalEndpoints {
  readonly api: string;
  readonly edge: string;
  readonly stepFunctions: string;
  readonly s3: string;
  readonly dynamodb: string;
}

export interface LocalState {
  readonly pid: number;
  readonly startedAt: string;
  readonly dataDir: string;
  readonly endpoints: LocalEndpoints;
}

export const stateFile = (dataDir: string) => join(dataDir, 'local.json');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The state of a local cloud running on this data directory, or undefined. */
export function readRunningState(dataDir: string): LocalState | undefined {
  try {
    const state = JSON.parse(readFileSync(stateFile(dataDir), 'utf8')) as LocalState;
    return alive(state.pid) ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Claims the data directory for this process; throws if another live local cloud holds it. */
export function claimDataDir(dataDir: string): void {
  const running = readRunningState(dataDir);
  if (running && running.pid !== process.pid) {
    throw new Error(
      `a local cloud already runs on ${dataDir} (pid ${running.pid}, API ${running.endpoints.api}); ` +
        'use it, stop it, or pass another --data-dir',
    );
  }
  rmSync(stateFile(dataDir), { force: true });
}

export function writeState(state: LocalState): void {
  const file = stateFile(state.dataDir);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  // rename is atomic: readers see the old file or the new one
  renameSync(`${file}.tmp`, file);
}

export function clearState(dataDir: string): void {
  try {
    const state = JSON.parse(readFileSync(stateFile(dataDir), 'utf8')) as LocalState;
    if (state.pid === process.pid) rmSync(stateFile(dataDir), { force: true });
  } catch {
    // nothing to clear
  }
}
