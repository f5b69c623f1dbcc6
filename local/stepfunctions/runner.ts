// Runs one execution on aws-local-stepfunctions: its Context Object and task handlers, one log line per state
// event, and the outcome written to the execution record.
import { ExecutionError, ExecutionTimeoutError, StateMachine } from 'aws-local-stepfunctions';
import { buildContext } from './context.ts';
import { MAX_TIMER_SECONDS, type PreparedMachine } from './definition.ts';
import { executionStopped } from './errors.ts';
import type { ExecutionRecord, ExecutionStore } from './executions.ts';
import type { TaskTokens } from './task-tokens.ts';
import { createTaskHandlers, type LocalFunctions } from './tasks.ts';

export interface RunnerDeps {
  readonly store: ExecutionStore;
  readonly tokens: TaskTokens;
  readonly functions: LocalFunctions;
  readonly region: string;
  readonly accountId: string;
  readonly log: (line: string) => void;
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

  const timeout = machine.prepared.timeoutSeconds;
  const remaining = timeout === undefined ? undefined : timeout - (Date.now() - record.startDate) / 1000;
  if (remaining !== undefined && remaining <= 0) {
    finish({
      status: 'TIMED_OUT',
      error: 'States.Timeout',
      cause: 'the execution exceeded its TimeoutSeconds',
    });
    return { done: Promise.resolve(), stop: () => {} };
  }
  const definition =
    remaining === undefined
      ? machine.prepared.definition
      : { ...machine.prepared.definition, TimeoutSeconds: Math.min(remaining, MAX_TIMER_SECONDS) };
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
  const handlers = createTaskHandlers(machine.prepared, { ...deps, executionArn: arn });
  const run = new StateMachine(definition, { validationOptions: { noValidate: true } }).run(
    input as Parameters<StateMachine['run']>[0],
    { context, overrides: { taskResourceLocalHandlers: handlers }, noThrowOnAbort: true },
  );
  const logging = logEvents(run.eventLogs, log);
  const done = run.result
    .then(
      (output): Outcome => ({ status: 'SUCCEEDED', output: JSON.stringify(output ?? null) }),
      (error: unknown) => failure(error),
    )
    .then(async (outcome) => {
      // Tasks left open (a Map iteration aborted because a sibling failed) end with the execution.
      deps.tokens.closeExecution(arn, executionStopped);
      // The event log is closed by now; draining it first keeps the outcome the last line.
      await logging;
      finish(outcome);
    });

  return {
    done,
    stop(reason) {
      if (stopped) return;
      stopped = true;
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

async function logEvents(events: AsyncGenerator<EventLog>, log: (line: string) => void): Promise<void> {
  for await (const event of events) {
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
