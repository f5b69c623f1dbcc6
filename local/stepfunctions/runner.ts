// Runs one execution on aws-local-stepfunctions: its Context Object and task handlers, one log line per state
// event, and the outcome written to the execution record.
import { ExecutionError, ExecutionTimeoutError, StateMachine } from 'aws-local-stepfunctions';
import { buildContext } from './context.ts';
import type { PreparedMachine } from './definition.ts';
import { executionStopped } from './errors.ts';
import type { ExecutionRecord, ExecutionStore } from './executions.ts';
import type { TaskTokens } from './task-tokens.ts';
import { createTaskHandlers, type LocalFunctions, MAX_STATE_PAYLOAD_BYTES } from './tasks.ts';
import { longTimeout } from './timers.ts';

/** Step Functions Standard: 25,000 history events per execution (a hard quota), one year per execution. */
export const MAX_HISTORY_EVENTS = 25_000;
export const MAX_EXECUTION_SECONDS = 365 * 24 * 3600;

export interface RunnerDeps {
  readonly store: ExecutionStore;
  readonly tokens: TaskTokens;
  readonly functions: LocalFunctions;
  readonly canInvoke?: ((functionArn: string) => string | undefined) | undefined;
  readonly region: string;
  readonly accountId: string;
  readonly log: (line: string) => void;
  readonly functionTimeouts?: Readonly<Record<string, number>> | undefined;
  /** Multiplies the workflow's own durations (tests). Default 1. */
  readonly timeScale?: number | undefined;
  /** Default MAX_HISTORY_EVENTS. */
  readonly maxHistoryEvents?: number | undefined;
}

export interface Machine {
  readonly arn: string;
  readonly name: string;
  readonly prepared: PreparedMachine;
}

export interface ExecutionRun {
  readonly done: Promise<void>;
  /** `abort`: StopExecution has recorded ABORTED. `shutdown`: the record stays RUNNING, to resume at next start. */
  stop(reason: 'abort' | 'shutdown'): void;
}

type EventLog = ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;
type Outcome = Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause'>;

export function runExecution(deps: RunnerDeps, machine: Machine, record: ExecutionRecord): ExecutionRun {
  const arn = record.executionArn;
  const log = (line: string) => deps.log(`[${record.name}] ${line}`);
  let stopped = false;
  const finish = (outcome: Outcome) => {
    const current = deps.store.get(arn);
    if (stopped || current?.status !== 'RUNNING') return;
    try {
      deps.store.save({ ...current, ...outcome, stopDate: Date.now() });
      log(`execution ${outcome.status}${outcome.error ? `: ${outcome.error}` : ''}`);
    } catch (error) {
      log(`execution ${outcome.status}, but its record could not be written: ${String(error)}`);
    }
  };

  // The execution's deadline: its TimeoutSeconds, and at most a year (AWS's quota), on the workflow's clock.
  const scale = deps.timeScale ?? 1;
  const lifetime = Math.min(machine.prepared.timeoutSeconds ?? MAX_EXECUTION_SECONDS, MAX_EXECUTION_SECONDS);
  const remainingMs = lifetime * 1000 * scale - (Date.now() - record.startDate);
  const timedOut: Outcome = {
    status: 'TIMED_OUT',
    error: 'States.Timeout',
    cause:
      machine.prepared.timeoutSeconds !== undefined &&
      machine.prepared.timeoutSeconds <= MAX_EXECUTION_SECONDS
        ? 'the execution exceeded its TimeoutSeconds'
        : 'the execution reached the one-year limit of a Standard execution',
  };
  if (remainingMs <= 0) {
    finish(timedOut);
    return { done: Promise.resolve(), stop: () => {} };
  }
  const definition = machine.prepared.definition;
  const input: unknown = JSON.parse(record.input);
  const context = buildContext(
    {
      executionArn: arn,
      name: record.name,
      input,
      startTime: new Date(record.startDate).toISOString(),
      stateMachineArn: machine.arn,
      stateMachineName: machine.name,
      roleArn: `arn:aws:iam::${deps.accountId}:role/local-stepfunctions`,
    },
    machine.prepared.stateNames,
  );
  const abort = new AbortController();
  // A quota or limit the run broke outside any state's Catch: it ends the execution (States.Runtime-like).
  let broken: Outcome | undefined;
  const breakRun = (outcome: Outcome) => {
    if (broken || stopped) return;
    broken = outcome;
    run.abort();
    abort.abort();
    deps.tokens.closeExecution(arn, executionStopped);
  };
  const maxEvents = deps.maxHistoryEvents ?? MAX_HISTORY_EVENTS;
  let events = 0;
  const history = (n: number) => {
    events += n;
    if (events > maxEvents) {
      breakRun({
        status: 'FAILED',
        error: 'States.Runtime',
        cause: `The execution reached the maximum number of history events (${maxEvents}).`,
      });
    }
  };
  const handlers = createTaskHandlers(machine.prepared, {
    ...deps,
    executionArn: arn,
    history,
    signal: abort.signal,
  });
  const run = new StateMachine(definition, { validationOptions: { noValidate: true } }).run(
    input as Parameters<StateMachine['run']>[0],
    { context, overrides: { taskResourceLocalHandlers: handlers }, noThrowOnAbort: true },
  );
  const lifetimeTimer = longTimeout(() => breakRun(timedOut), remainingMs);
  const logging = logEvents(run.eventLogs, log, (event) => {
    history(historyEvents(event, machine.prepared.stateTypes));
    if (event.type !== 'StateExited' || event.state.output === undefined) return;
    if (Buffer.byteLength(JSON.stringify(event.state.output)) > MAX_STATE_PAYLOAD_BYTES) {
      breakRun({
        status: 'FAILED',
        error: 'States.DataLimitExceeded',
        cause: `state ${event.state.name} produced output over ${MAX_STATE_PAYLOAD_BYTES} bytes`,
      });
    }
  });
  history(1); // ExecutionStarted
  const done = run.result
    .then(
      (output): Outcome => ({ status: 'SUCCEEDED', output: JSON.stringify(output ?? null) }),
      (error: unknown) => failure(error),
    )
    .then(async (outcome) => {
      lifetimeTimer.cancel();
      abort.abort();
      // Tasks left open (a Map iteration aborted because a sibling failed) end with the execution.
      deps.tokens.closeExecution(arn, executionStopped);
      // The event log is closed by now; draining it first keeps the outcome the last line.
      await logging;
      finish(broken ?? outcome);
    });

  return {
    done,
    stop(reason) {
      if (stopped) return;
      stopped = true;
      lifetimeTimer.cancel();
      abort.abort();
      run.abort();
      deps.tokens.closeExecution(arn, executionStopped);
      log(
        reason === 'abort' ? 'execution ABORTED' : 'stopped with the service: it resumes at the next start',
      );
    },
  };
}

function failure(error: unknown): Outcome {
  if (error instanceof ExecutionTimeoutError) {
    return {
      status: 'TIMED_OUT',
      error: 'States.Timeout',
      cause: 'the execution exceeded its TimeoutSeconds',
    };
  }
  const reason = error instanceof ExecutionError ? error.cause : error;
  if (!(reason instanceof Error)) return { status: 'FAILED', error: 'States.Runtime', cause: String(reason) };
  return {
    status: 'FAILED',
    ...(reason.name ? { error: reason.name } : {}),
    ...(reason.message ? { cause: reason.message } : {}),
  };
}

async function logEvents(
  events: AsyncGenerator<EventLog>,
  log: (line: string) => void,
  observe: (event: EventLog) => void,
): Promise<void> {
  for await (const event of events) {
    observe(event);
    const line = describe(event);
    if (line !== undefined) log(line);
  }
}

/** A cause for one log line: a Lambda error's message rather than its whole JSON with the stack trace. */
function brief(cause: unknown): string {
  let text = typeof cause === 'string' ? cause : JSON.stringify(cause);
  try {
    const lambda: unknown = JSON.parse(text);
    if (lambda !== null && typeof lambda === 'object' && 'errorMessage' in lambda)
      text = String(lambda.errorMessage);
  } catch {
    // Not JSON: the cause as it is.
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function describe(event: EventLog): string | undefined {
  if (!('state' in event)) return undefined;
  const where = `${event.state.name}${event.index === undefined ? '' : ` [item ${event.index}]`}`;
  switch (event.type) {
    case 'StateEntered':
      return `entered ${where}`;
    case 'StateExited':
      return `exited ${where}`;
    case 'StateFailed':
      return `failed ${where}: ${event.Error}${event.Cause ? ` (${brief(event.Cause)})` : ''}`;
    case 'StateRetried':
      return `retrying ${where} (retry ${event.retry.attempt})`;
    case 'StateCaught':
      return `caught ${where} -> ${event.catch.catcher.Next}`;
  }
}

/**
 * History events AWS records for one library event (Task attempts are counted by the task handler):
 * XStateEntered/Exited for every state, Map/Parallel Started and Succeeded/Failed, one per Map iteration start and
 * end, one per Parallel branch start and end, the execution's end.
 */
function historyEvents(event: EventLog, types: ReadonlyMap<string, string>): number {
  const typeOf = (name: string) => types.get(name) ?? 'Task';
  switch (event.type) {
    case 'StateEntered': {
      const type = typeOf(event.state.name);
      return type === 'Map' || type === 'Parallel' ? 2 : 1;
    }
    case 'StateExited': {
      const type = typeOf(event.state.name);
      return type === 'Map' || type === 'Parallel' ? 2 : 1;
    }
    case 'StateFailed':
      return ['Map', 'Parallel'].includes(typeOf(event.state.name)) ? 1 : 0;
    case 'StateCaught':
      return 1;
    case 'MapIterationStarted':
    case 'MapIterationSucceeded':
    case 'MapIterationFailed':
    case 'ParallelBranchStarted':
    case 'ParallelBranchSucceeded':
    case 'ParallelBranchFailed':
      return 1;
    case 'ExecutionSucceeded':
    case 'ExecutionFailed':
      return 1;
    default:
      return 0;
  }
}
