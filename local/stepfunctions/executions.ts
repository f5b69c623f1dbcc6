// Execution records, kept in memory and persisted as one JSON file each under `<dataDir>/executions/<machine>/`
// (written to a temporary file and renamed, so a crash never leaves half a record). Records that are RUNNING on
// load belong to a process that died or stopped: they resume when their state machine is created again.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface ExecutionRecord {
  readonly executionArn: string;
  readonly stateMachineArn: string;
  readonly name: string;
  readonly status: ExecutionStatus;
  /** The input exactly as StartExecution received it (JSON text). */
  readonly input: string;
  /** Epoch milliseconds. */
  readonly startDate: number;
  readonly stopDate?: number;
  readonly output?: string;
  readonly error?: string;
  readonly cause?: string;
}

const machineNameOf = (stateMachineArn: string) =>
  stateMachineArn.slice(stateMachineArn.lastIndexOf(':') + 1);

export class ExecutionStore {
  readonly #records = new Map<string, ExecutionRecord>();
  readonly #dir: string;

  constructor(dataDir: string, warn: (line: string) => void) {
    this.#dir = join(dataDir, 'executions');
    mkdirSync(this.#dir, { recursive: true });
    for (const machine of readdirSync(this.#dir, { withFileTypes: true })) {
      if (!machine.isDirectory()) continue;
      const dir = join(this.#dir, machine.name);
      for (const file of readdirSync(dir)) {
        const path = join(dir, file);
        if (file.endsWith('.tmp')) {
          rmSync(path, { force: true });
          continue;
        }
        try {
          const record = JSON.parse(readFileSync(path, 'utf8')) as ExecutionRecord;
          this.#records.set(record.executionArn, record);
        } catch (error) {
          warn(`ignoring unreadable execution record ${path}: ${String(error)}`);
        }
      }
    }
  }

  get(executionArn: string): ExecutionRecord | undefined {
    return this.#records.get(executionArn);
  }

  /** Newest first, as ListExecutions returns them. */
  list(stateMachineArn: string): ExecutionRecord[] {
    return [...this.#records.values()]
      .filter((record) => record.stateMachineArn === stateMachineArn)
      .sort((a, b) => b.startDate - a.startDate);
  }

  running(stateMachineArn: string): ExecutionRecord[] {
    return this.list(stateMachineArn).filter((record) => record.status === 'RUNNING');
  }

  countRunning(): number {
    return [...this.#records.values()].filter((record) => record.status === 'RUNNING').length;
  }

  save(record: ExecutionRecord): ExecutionRecord {
    const dir = join(this.#dir, encodeURIComponent(machineNameOf(record.stateMachineArn)));
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${encodeURIComponent(record.name)}.json`);
    const temporary = `${file}.${process.pid}.tmp`;
    // Synchronous on purpose: writes of one record land in order, and stop() has nothing left to flush.
    writeFileSync(temporary, `${JSON.stringify(record, null, 2)}\n`);
    renameSync(temporary, file);
    this.#records.set(record.executionArn, record);
    return record;
  }
}
