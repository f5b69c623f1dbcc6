// The Step Functions operations over state machines, execution records and running executions, with AWS's
// rules (idempotent StartExecution, named errors). The HTTP protocol is in service.ts.
import { randomUUID } from 'node:crypto';
import { InvalidDefinitionError, prepareDefinition } from './definition.ts';
import { SfnApiError } from './errors.ts';
import { type ExecutionRecord, type ExecutionStatus, ExecutionStore } from './executions.ts';
import { type ExecutionRun, type Machine, runExecution } from './runner.ts';
import { substituteDefinition } from './substitutions.ts';
import { TaskTokens } from './task-tokens.ts';
import { type LocalFunctions, MAX_STATE_PAYLOAD_BYTES } from './tasks.ts';

export interface EngineOptions {
  readonly dataDir: string;
  readonly region: string;
  readonly accountId: string;
  readonly functions: LocalFunctions;
  /** Whether a state machine's role may invoke a function (their ARNs); undefined = allowed. */
  readonly canInvoke?: ((functionArn: string, stateMachineArn: string) => string | undefined) | undefined;
  readonly log: (line: string) => void;
  readonly retryIntervalScale: number;
  readonly timeScale?: number | undefined;
  readonly maxHistoryEvents?: number | undefined;
  readonly functionTimeouts?: Readonly<Record<string, number>> | undefined;
  readonly readObject?: ((bucket: string, key: string) => Promise<string>) | undefined;
  readonly canStartChildren?: ((stateMachineArn: string) => string | undefined) | undefined;
}

// AWS: 1-80 characters; no whitespace, brackets, wildcards, special or control characters.
const NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\p{Cc}]{1,80}$/u;
const MACHINE_ARN = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[^:]+$/;
const EXECUTION_ARN = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[^:]+:[^:]+$/;

export class Engine {
  readonly #options: EngineOptions;
  readonly #store: ExecutionStore;
  readonly #tokens = new TaskTokens();
  readonly #machines = new Map<string, Machine>();
  readonly #runs = new Map<string, ExecutionRun>();

  constructor(options: EngineOptions) {
    this.#options = options;
    this.#store = new ExecutionStore(options.dataDir, options.log);
    const unfinished = this.#store.countRunning();
    if (unfinished > 0) {
      options.log(
        `${unfinished} unfinished execution(s) found: each resumes when its state machine is created`,
      );
    }
  }

  /** Registers (or replaces) a state machine and resumes its executions that were RUNNING at the last stop. */
  createStateMachine(
    name: string,
    definition: string,
    substitutions?: Readonly<Record<string, string>>,
  ): string {
    if (!NAME.test(name)) throw new InvalidDefinitionError(`invalid state machine name: ${name}`);
    const text = substituteDefinition(definition, substitutions);
    let asl: unknown;
    try {
      asl = JSON.parse(text);
    } catch (error) {
      throw new InvalidDefinitionError(`state machine ${name}: definition is not JSON: ${String(error)}`);
    }
    const prepared = prepareDefinition(asl, {
      functionNames: new Set(Object.keys(this.#options.functions)),
      retryIntervalScale: this.#options.retryIntervalScale,
    });
    const { region, accountId } = this.#options;
    const arn = `arn:aws:states:${region}:${accountId}:stateMachine:${name}`;
    const machine: Machine = { arn, name, prepared };
    this.#machines.set(arn, machine);
    for (const record of this.#store.running(arn)) {
      if (this.#runs.has(record.executionArn)) continue;
      this.#options.log(
        `[${record.name}] resuming from the beginning (it was RUNNING when the service stopped)`,
      );
      this.#start(machine, record);
    }
    return arn;
  }

  startExecution(
    stateMachineArn: string,
    name: string | undefined,
    input: string | undefined,
  ): ExecutionRecord {
    const machine = this.#machine(stateMachineArn);
    const executionName = name ?? randomUUID();
    if (!NAME.test(executionName))
      throw new SfnApiError('InvalidName', `invalid execution name: ${executionName}`);
    const text = input ?? '{}';
    if (Buffer.byteLength(text) > MAX_STATE_PAYLOAD_BYTES) {
      throw new SfnApiError(
        'InvalidExecutionInput',
        `input is ${Buffer.byteLength(text)} bytes, over the ${MAX_STATE_PAYLOAD_BYTES}-byte limit`,
      );
    }
    try {
      JSON.parse(text);
    } catch (error) {
      throw new SfnApiError('InvalidExecutionInput', `input is not JSON: ${String(error)}`);
    }
    const { region, accountId } = this.#options;
    const executionArn = `arn:aws:states:${region}:${accountId}:execution:${machine.name}:${executionName}`;
    const existing = this.#store.get(executionArn);
    if (existing) {
      // AWS: the same name and input while RUNNING returns the original execution; anything else is a conflict.
      if (existing.status === 'RUNNING' && existing.input === text) return existing;
      throw new SfnApiError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
    }
    const record = this.#store.save({
      executionArn,
      stateMachineArn: machine.arn,
      name: executionName,
      status: 'RUNNING',
      input: text,
      startDate: Date.now(),
    });
    this.#options.log(`[${executionName}] started (${machine.name})`);
    this.#start(machine, record);
    return record;
  }

  describeExecution(executionArn: string): ExecutionRecord {
    if (!EXECUTION_ARN.test(executionArn))
      throw new SfnApiError('InvalidArn', `Invalid Arn: '${executionArn}'`);
    const record = this.#store.get(executionArn);
    if (!record)
      throw new SfnApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return record;
  }

  stopExecution(executionArn: string, error: string | undefined, cause: string | undefined): ExecutionRecord {
    const record = this.describeExecution(executionArn);
    if (record.status !== 'RUNNING') return record;
    const stopped = this.#store.save({
      ...record,
      status: 'ABORTED',
      stopDate: Date.now(),
      ...(error === undefined ? {} : { error }),
      ...(cause === undefined ? {} : { cause }),
    });
    this.#runs.get(executionArn)?.stop('abort');
    return stopped;
  }

  listExecutions(stateMachineArn: string, status: ExecutionStatus | undefined): ExecutionRecord[] {
    if (!MACHINE_ARN.test(stateMachineArn))
      throw new SfnApiError('InvalidArn', `Invalid Arn: '${stateMachineArn}'`);
    const records = this.#store.list(stateMachineArn);
    if (records.length === 0 && !this.#machines.has(stateMachineArn)) this.#machine(stateMachineArn);
    return status === undefined ? records : records.filter((record) => record.status === status);
  }

  /**
   * The state machine a task token belongs to: what AWS authorizes SendTask* against (its ARN appears in their
   * AccessDenied messages, though the Service Authorization Reference lists no resource type for them).
   */
  stateMachineOfToken(token: string): string | undefined {
    const execution = this.#tokens.executionOf(token);
    const match =
      execution === undefined ? null : /^(arn:[^:]+:states:[^:]+:\d{12}):execution:([^:]+):/.exec(execution);
    return match ? `${match[1]}:stateMachine:${match[2]}` : undefined;
  }

  sendTaskSuccess(token: string, output: string): void {
    let value: unknown;
    try {
      value = JSON.parse(output);
    } catch (error) {
      throw new SfnApiError('InvalidOutput', `output is not JSON: ${String(error)}`);
    }
    this.#tokens.succeed(token, value);
  }

  sendTaskFailure(token: string, error: string | undefined, cause: string | undefined): void {
    this.#tokens.fail(token, error ?? '', cause ?? '');
  }

  sendTaskHeartbeat(token: string): void {
    this.#tokens.heartbeat(token);
  }

  /** Aborts running executions in memory only: on disk they stay RUNNING and resume at the next start. */
  async shutdown(): Promise<void> {
    const runs = [...this.#runs.values()];
    for (const run of runs) run.stop('shutdown');
    await Promise.all(runs.map((run) => run.done));
  }

  #machine(stateMachineArn: string): Machine {
    if (!MACHINE_ARN.test(stateMachineArn))
      throw new SfnApiError('InvalidArn', `Invalid Arn: '${stateMachineArn}'`);
    const machine = this.#machines.get(stateMachineArn);
    if (!machine)
      throw new SfnApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${stateMachineArn}'`);
    return machine;
  }

  #start(machine: Machine, record: ExecutionRecord): void {
    const run = runExecution({ ...this.#options, store: this.#store, tokens: this.#tokens }, machine, record);
    this.#runs.set(record.executionArn, run);
    void run.done.finally(() => this.#runs.delete(record.executionArn));
  }
}
