// Runs one execution on aws-local-stepfunctions: its Context Object and task handlers, one log line per state
// event, and the outcome written to the execution record.

import { randomUUID } from 'node:crypto';
import { ExecutionError, ExecutionTimeoutError, StateMachine } from 'aws-local-stepfunctions';
import { buildContext } from './context.ts';
import type { MapRunSpec, PreparedMachine } from './definition.ts';
import { executionStopped, StateError } from './errors.ts';
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
  /** Whether the role of the state machine `stateMachineArn` may invoke a function: a refusal, or undefined. */
  readonly canInvoke?: ((functionArn: string, stateMachineArn: string) => string | undefined) | undefined;
  readonly region: string;
  readonly accountId: string;
  readonly log: (line: string) => void;
  readonly functionTimeouts?: Readonly<Record<string, number>> | undefined;
  /** Multiplies the workflow's own durations (tests). Default 1. */
  readonly timeScale?: number | undefined;
  /** Default MAX_HISTORY_EVENTS. */
  readonly maxHistoryEvents?: number | undefined;
  /** Reads an S3 object as the state machine's role (a Distributed Map's ItemReader). */
  readonly readObject?: ((bucket: string, key: string) => Promise<string>) | undefined;
  /** Whether the state machine's role may start its own child executions: a refusal message, or undefined. */
  readonly canStartChildren?: ((stateMachineArn: string) => string | undefined) | undefined;
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
type Outcome = Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause'> & {
  /** History events the run recorded (logged with its end, so that tests can hold it against the quota). */
  readonly historyEvents?: number;
};

export function runExecution(deps: RunnerDeps, machine: Machine, record: ExecutionRecord): ExecutionRun {
  const arn = record.executionArn;
  const log = (line: string) => deps.log(`[${record.name}] ${line}`);
  let stopped = false;
  const finish = ({ historyEvents, ...outcome }: Outcome) => {
    const current = deps.store.get(arn);
    if (stopped || current?.status !== 'RUNNING') return;
    try {
      deps.store.save({ ...current, ...outcome, stopDate: Date.now() });
      log(
        `execution ${outcome.status}${outcome.error ? `: ${outcome.error}` : ''}${eventCount(historyEvents)}`,
      );
    } catch (error) {
      log(`execution ${outcome.status}, but its record could not be written: ${String(error)}`);
    }
  };
  const run = runMachine(deps, machine, machine.prepared, {
    executionArn: arn,
    name: record.name,
    input: JSON.parse(record.input) as unknown,
    startDate: record.startDate,
    log,
  });
  return {
    done: run.outcome.then((outcome) => finish(outcome)),
    stop(reason) {
      if (stopped) return;
      stopped = true;
      run.stop();
      log(
        reason === 'abort' ? 'execution ABORTED' : 'stopped with the service: it resumes at the next start',
      );
    },
  };
}

interface RunSpec {
  readonly executionArn: string;
  readonly name: string;
  readonly input: unknown;
  readonly startDate: number;
  readonly log: (line: string) => void;
}

interface MachineRun {
  readonly outcome: Promise<Outcome>;
  /** Ends the run at once; `outcome` then settles as ABORTED. */
  stop(): void;
}

/**
 * One run of a prepared machine: an execution, or a child execution of a Map Run (its own history, deadline and
 * tasks). Resolves with the outcome; quotas broken outside any Catch end it (States.Runtime and the like).
 */
function runMachine(
  deps: RunnerDeps,
  machine: Machine,
  prepared: PreparedMachine,
  spec: RunSpec,
): MachineRun {
  const arn = spec.executionArn;
  // The execution's deadline: its TimeoutSeconds, and at most a year (AWS's quota), on the workflow's clock.
  const scale = deps.timeScale ?? 1;
  const lifetime = Math.min(prepared.timeoutSeconds ?? MAX_EXECUTION_SECONDS, MAX_EXECUTION_SECONDS);
  const remainingMs = lifetime * 1000 * scale - (Date.now() - spec.startDate);
  const timedOut: Outcome = {
    status: 'TIMED_OUT',
    error: 'States.Timeout',
    cause:
      prepared.timeoutSeconds !== undefined && prepared.timeoutSeconds <= MAX_EXECUTION_SECONDS
        ? 'the execution exceeded its TimeoutSeconds'
        : 'the execution reached the one-year limit of a Standard execution',
  };
  if (remainingMs <= 0) return { outcome: Promise.resolve(timedOut), stop: () => {} };
  const context = buildContext(
    {
      executionArn: arn,
      name: spec.name,
      input: spec.input,
      startTime: new Date(spec.startDate).toISOString(),
      stateMachineArn: machine.arn,
      stateMachineName: machine.name,
      roleArn: `arn:aws:iam::${deps.accountId}:role/local-stepfunctions`,
    },
    prepared.stateNames,
  );
  const abort = new AbortController();
  let ended: Outcome | undefined;
  const end = (outcome: Outcome) => {
    if (ended) return;
    ended = outcome;
    run.abort();
    abort.abort();
    deps.tokens.closeExecution(arn, executionStopped);
  };
  const maxEvents = deps.maxHistoryEvents ?? MAX_HISTORY_EVENTS;
  let events = 0;
  const history = (n: number) => {
    events += n;
    if (events > maxEvents) {
      end({
        status: 'FAILED',
        error: 'States.Runtime',
        cause: `The execution reached the maximum number of history events (${maxEvents}).`,
      });
    }
  };
  const { canInvoke } = deps;
  const handlers = createTaskHandlers(prepared, {
    ...deps,
    // Each state machine has its own role.
    canInvoke: canInvoke && ((functionArn) => canInvoke(functionArn, machine.arn)),
    executionArn: arn,
    history,
    signal: abort.signal,
    mapRun: (mapRun, parameters) =>
      runMapRun(
        deps,
        machine,
        { executionArn: arn, name: spec.name, log: spec.log },
        mapRun,
        parameters,
        abort.signal,
      ),
  });
  const run = new StateMachine(prepared.definition, { validationOptions: { noValidate: true } }).run(
    spec.input as Parameters<StateMachine['run']>[0],
    { context, overrides: { taskResourceLocalHandlers: handlers }, noThrowOnAbort: true },
  );
  const lifetimeTimer = longTimeout(() => end(timedOut), remainingMs);
  const logging = logEvents(run.eventLogs, spec.log, (event) => {
    history(historyEvents(event, prepared.stateTypes));
    if (event.type !== 'StateExited' || event.state.output === undefined) return;
    if (Buffer.byteLength(JSON.stringify(event.state.output)) > MAX_STATE_PAYLOAD_BYTES) {
      end({
        status: 'FAILED',
        error: 'States.DataLimitExceeded',
        cause: `state ${event.state.name} produced output over ${MAX_STATE_PAYLOAD_BYTES} bytes`,
      });
    }
  });
  history(1); // ExecutionStarted
  const outcome = run.result
    .then(
      (output): Outcome => ({ status: 'SUCCEEDED', output: JSON.stringify(output ?? null) }),
      (error: unknown) => failure(error),
    )
    .then(async (result) => {
      lifetimeTimer.cancel();
      abort.abort();
      // Tasks left open (a Map iteration aborted because a sibling failed) end with the execution.
      deps.tokens.closeExecution(arn, executionStopped);
      // The event log is closed by now; draining it first keeps the outcome the last line.
      await logging;
      return { ...(ended ?? result), historyEvents: events };
    });
  return {
    outcome,
    stop: () => {
      lifetimeTimer.cancel();
      end({ status: 'ABORTED' });
    },
  };
}

/**
 * A Distributed Map's Map Run: reads its items, batches them, runs each batch as a child execution (its own
 * history; at most MaxConcurrency at once), and fails with States.ExceedToleratedFailureThreshold past the
 * tolerated failures. The parent records only the Map Run's start and end.
 */
async function runMapRun(
  deps: RunnerDeps,
  machine: Machine,
  parent: { readonly executionArn: string; readonly name: string; readonly log: (line: string) => void },
  spec: MapRunSpec,
  parameters: { readonly Bucket?: unknown; readonly Key?: unknown; readonly Items?: unknown },
  signal: AbortSignal,
): Promise<unknown[]> {
  let items: unknown = parameters.Items;
  if (parameters.Bucket !== undefined) {
    if (!deps.readObject)
      throw new StateError('States.ItemReaderFailed', 'this service has no S3 to read items from');
    try {
      items = JSON.parse(await deps.readObject(String(parameters.Bucket), String(parameters.Key)));
    } catch (error) {
      throw new StateError(
        'States.ItemReaderFailed',
        `reading s3://${String(parameters.Bucket)}/${String(parameters.Key)}: ${String(error)}`,
      );
    }
  }
  if (!Array.isArray(items))
    throw new StateError('States.ItemReaderFailed', 'the items are not a JSON array');
  const refused = deps.canStartChildren?.(machine.arn);
  if (refused) throw new StateError('States.TaskFailed', refused);
  const inputs: unknown[] = [];
  const size = spec.maxItemsPerBatch;
  if (size === undefined) inputs.push(...items);
  else for (let i = 0; i < items.length; i += size) inputs.push({ Items: items.slice(i, i + size) });
  const concurrency = spec.maxConcurrency > 0 ? spec.maxConcurrency : 10_000;
  const runId = randomUUID();
  parent.log(`map run ${spec.label}: ${items.length} items in ${inputs.length} child executions`);
  const outputs: unknown[] = new Array(inputs.length);
  let failed = 0;
  let next = 0;
  const running = new Set<MachineRun>();
  const stopAll = () => {
    for (const child of running) child.stop();
  };
  signal.addEventListener('abort', stopAll, { once: true });
  const worker = async () => {
    while (next < inputs.length && !signal.aborted) {
      const index = next++;
      const name = `${runId}:${index}`;
      const child = runMachine(deps, machine, spec.child, {
        executionArn: `${machine.arn.replace(':stateMachine:', ':execution:')}/${spec.label}:${name}`,
        name,
        input: inputs[index],
        startDate: Date.now(),
        log: (line) => parent.log(`${spec.label}/${index}: ${line}`),
      });
      running.add(child);
      const outcome = await child.outcome;
      running.delete(child);
      parent.log(
        `${spec.label}/${index}: child execution ${outcome.status}${outcome.error ? `: ${outcome.error}` : ''}${eventCount(outcome.historyEvents)}`,
      );
      if (outcome.status === 'SUCCEEDED') outputs[index] = JSON.parse(outcome.output ?? 'null');
      else failed++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
  } finally {
    signal.removeEventListener('abort', stopAll);
  }
  const tolerated =
    inputs.length === 0
      ? true
      : (failed * 100) / inputs.length <= spec.toleratedFailurePercentage &&
        (spec.toleratedFailureCount === undefined || failed <= spec.toleratedFailureCount);
  if (!tolerated) {
    throw new StateError(
      'States.ExceedToleratedFailureThreshold',
      `${failed} of ${inputs.length} child executions of map run ${spec.label} failed`,
    );
  }
  return outputs;
}

const eventCount = (n: number | undefined) => (n === undefined ? '' : ` (${n} history events)`);

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
