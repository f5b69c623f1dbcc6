// Task integrations, run in-process with AWS's shapes: `lambda:invoke` (result `{ExecutedVersion, Payload,
// StatusCode, ...}`), `lambda:invoke.waitForTaskToken` (result = SendTaskSuccess output) and a Lambda ARN resource
// (result = the function's return value). A thrown error becomes the state error Lambda would report.
import { randomUUID } from 'node:crypto';
import type { RunOptions } from 'aws-local-stepfunctions';
import { fillPlaceholders } from './context.ts';
import {
  functionNameOf,
  type MapRunSpec,
  type PreparedMachine,
  type TaskCall,
  type TaskSpec,
} from './definition.ts';
import { StateError, statesTimeout } from './errors.ts';
import type { TaskTokens, TaskWaiter } from './task-tokens.ts';
import { longSleep, longTimeout } from './timers.ts';

/**
 * A Lambda handler run in-process: it gets a fresh JSON copy of the event and a minimal Lambda context, and may
 * return a value or a promise. (`never` parameters accept any handler signature.)
 */
export type LocalFunction = (event: never, context: never) => unknown;
export type LocalFunctions = Readonly<Record<string, LocalFunction>>;

type TaskHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;
type JsonValue = Parameters<TaskHandlers[string]>[0];

export interface TaskRuntime {
  readonly executionArn: string;
  readonly functions: LocalFunctions;
  /** A refusal message when the state machine's role may not invoke the function, else undefined. */
  readonly canInvoke?: ((functionArn: string) => string | undefined) | undefined;
  readonly tokens: TaskTokens;
  readonly region: string;
  readonly accountId: string;
  /** Each function's timeout in seconds (its declaration): Lambda stops it there. */
  readonly functionTimeouts?: Readonly<Record<string, number>> | undefined;
  /** Multiplies the workflow's own durations (Wait, TimeoutSeconds, HeartbeatSeconds); tests shrink them. */
  readonly timeScale?: number | undefined;
  /** Counts history events (the execution fails at AWS's quota). */
  readonly history?: ((events: number) => void) | undefined;
  /** Aborted when the execution stops. */
  readonly signal?: AbortSignal | undefined;
  /** Runs a Distributed Map's Map Run (runner.ts). */
  readonly mapRun?: ((spec: MapRunSpec, parameters: MapRunParameters) => Promise<unknown>) | undefined;
}

export interface MapRunParameters {
  readonly Bucket?: unknown;
  readonly Key?: unknown;
  readonly Items?: unknown;
}

/** One entry into a Task state; Retry re-runs it with the same effective input object (see `enter`). */
interface Entry {
  readonly enteredTime: string;
  retryCount: number;
  lastFailed: boolean;
}

export function createTaskHandlers(machine: PreparedMachine, runtime: TaskRuntime): TaskHandlers {
  const handlers: TaskHandlers = {};
  for (const spec of machine.tasks.values()) {
    const entries = new WeakMap<object, Entry>();
    handlers[spec.name] = (input) => {
      const call = input as unknown as TaskCall;
      const entry = enter(entries, call.Input);
      const attempt = entry.retryCount;
      const settled = (failed: boolean) => () => {
        if (entry.retryCount === attempt) entry.lastFailed = failed;
      };
      const result = runAttempt(spec, call, entry, runtime);
      result.then(settled(false), settled(true));
      return result as Promise<JsonValue>;
    };
  }
  return handlers;
}

/**
 * The library re-runs a retried state with the very input object of the failed attempt, and every new entry gets
 * a new object (clones, results, Catch output); so the same object right after a failure means a retry.
 */
function enter(entries: WeakMap<object, Entry>, input: unknown): Entry {
  const enteredTime = new Date().toISOString();
  if (input === null || typeof input !== 'object') return { enteredTime, retryCount: 0, lastFailed: false };
  const previous = entries.get(input);
  if (previous?.lastFailed) {
    previous.retryCount += 1;
    previous.lastFailed = false;
    return previous;
  }
  const entry: Entry = { enteredTime, retryCount: 0, lastFailed: false };
  entries.set(input, entry);
  return entry;
}

const positiveSeconds = (value: unknown) =>
  Number.isInteger(value) && (value as number) >= 1 ? (value as number) : undefined;

/** AWS's limits: a state's data 256 KiB, a synchronous Lambda response 6 MB. */
export const MAX_STATE_PAYLOAD_BYTES = 256 * 1024;
export const MAX_LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;

/** History events of one task attempt (TaskScheduled, TaskStarted, [TaskSubmitted,] and its outcome). */
const ATTEMPT_EVENTS: Record<TaskSpec['kind'], number> = {
  'lambda-invoke': 3,
  'lambda-callback': 4,
  'lambda-function': 3,
  wait: 0,
  // MapRunStarted, MapRunSucceeded/Failed (the child executions keep their own histories).
  'map-run': 2,
};

function runAttempt(spec: TaskSpec, call: TaskCall, entry: Entry, runtime: TaskRuntime): Promise<unknown> {
  runtime.history?.(ATTEMPT_EVENTS[spec.kind]);
  const scale = runtime.timeScale ?? 1;
  let timeoutSeconds = spec.timeoutSeconds;
  if (spec.dynamicTimeout) {
    timeoutSeconds = positiveSeconds(call.TimeoutSeconds);
    if (timeoutSeconds === undefined) {
      const cause = `TimeoutSecondsPath of ${spec.name} does not select a positive integer`;
      return Promise.reject(new StateError('States.Runtime', cause, false, false));
    }
  }
  const heartbeatSeconds = spec.dynamicHeartbeat
    ? positiveSeconds(call.HeartbeatSeconds)
    : spec.heartbeatSeconds;
  if (spec.dynamicHeartbeat && heartbeatSeconds === undefined) {
    const cause = `HeartbeatSecondsPath of ${spec.name} does not select a positive integer`;
    return Promise.reject(new StateError('States.Runtime', cause, false, false));
  }
  if (spec.kind === 'wait') return waitFor(call, scale, runtime.signal);
  if (spec.kind === 'map-run') {
    const { mapRun } = runtime;
    if (!mapRun || !spec.mapRun)
      return Promise.reject(new StateError('States.Runtime', 'no map runs here', false, false));
    return mapRun(spec.mapRun, (call.Parameters ?? {}) as MapRunParameters);
  }
  const waiter =
    spec.kind === 'lambda-callback'
      ? runtime.tokens.open({
          executionArn: runtime.executionArn,
          stateName: spec.name,
          heartbeatSeconds: heartbeatSeconds === undefined ? undefined : heartbeatSeconds * scale,
        })
      : undefined;
  const parameters = fillPlaceholders(call.Parameters, {
    token: waiter?.token,
    enteredTime: entry.enteredTime,
    retryCount: entry.retryCount,
  });
  const work = perform(spec, parameters, waiter, runtime);
  // Every Task has a timeout on AWS: TimeoutSeconds, or 99999999 s (the execution's year comes first).
  const attempt = entry.retryCount;
  const { promise: timedOut, reject } = Promise.withResolvers<never>();
  timedOut.catch(() => {});
  const timer = longTimeout(
    () => {
      if (entry.retryCount === attempt) entry.lastFailed = true;
      if (waiter) runtime.tokens.discard(waiter.token);
      reject(statesTimeout(`task ${spec.name} did not finish within ${timeoutSeconds ?? 99_999_999} s`));
    },
    (timeoutSeconds ?? 99_999_999) * 1000 * scale,
  );
  const clear = () => timer.cancel();
  work.then(clear, clear);
  return Promise.race([work, timedOut]);
}

/** A Wait state: its delay on the workflow's (scaled) clock, then its input, unchanged. */
async function waitFor(call: TaskCall, scale: number, signal: AbortSignal | undefined): Promise<unknown> {
  const fields = (call.Parameters ?? {}) as { Seconds?: unknown; Timestamp?: unknown };
  let ms: number;
  if (fields.Seconds !== undefined) {
    if (!Number.isInteger(fields.Seconds) || (fields.Seconds as number) < 0) {
      throw new StateError(
        'States.Runtime',
        `Wait Seconds must be a non-negative integer: ${String(fields.Seconds)}`,
        false,
        false,
      );
    }
    ms = (fields.Seconds as number) * 1000;
  } else {
    const at = typeof fields.Timestamp === 'string' ? Date.parse(fields.Timestamp) : Number.NaN;
    if (Number.isNaN(at)) {
      throw new StateError(
        'States.Runtime',
        `Wait Timestamp is not a timestamp: ${String(fields.Timestamp)}`,
        false,
        false,
      );
    }
    ms = Math.max(0, at - Date.now());
  }
  await longSleep(ms * scale, signal);
  return call.Input;
}

async function perform(
  spec: TaskSpec,
  parameters: unknown,
  waiter: TaskWaiter | undefined,
  runtime: TaskRuntime,
): Promise<unknown> {
  if (spec.kind === 'lambda-function')
    return checkedResult(await invoke(runtime, spec.functionName ?? '', parameters));
  if (!waiter) {
    const request = invokeRequest(parameters);
    if (request.invocationType === 'Event') {
      void invoke(runtime, request.functionName, request.payload).catch(() => {});
      return invokeResult(202, '');
    }
    return invokeResult(200, checkedResult(await invoke(runtime, request.functionName, request.payload)));
  }
  try {
    const request = invokeRequest(parameters);
    const invocation = invoke(runtime, request.functionName, request.payload);
    // The function's return value is ignored: the state ends with what SendTaskSuccess/SendTaskFailure says.
    if (request.invocationType === 'Event') {
      void invocation.catch(() => {});
      return checkedResult(await waiter.result);
    }
    return checkedResult(await Promise.race([invocation.then(() => waiter.result), waiter.result]));
  } catch (error) {
    runtime.tokens.discard(waiter.token);
    throw error;
  }
}

/** A task's result becomes state data: over 256 KiB, the state fails with States.DataLimitExceeded. */
function checkedResult(result: unknown): unknown {
  const size = Buffer.byteLength(JSON.stringify(result ?? null));
  if (size > MAX_STATE_PAYLOAD_BYTES) {
    throw new StateError(
      'States.DataLimitExceeded',
      `The state/task returned a result with a size exceeding the maximum number of bytes service limit (${size} > ${MAX_STATE_PAYLOAD_BYTES}).`,
    );
  }
  return result;
}

function invokeRequest(parameters: unknown) {
  const fields = (parameters ?? {}) as Record<string, unknown>;
  const given = fields['FunctionName'];
  const functionName = typeof given === 'string' ? functionNameOf(given) : undefined;
  if (functionName === undefined) {
    throw new StateError(
      'Lambda.InvalidParameterValueException',
      `invalid FunctionName: ${JSON.stringify(given)}`,
    );
  }
  return { functionName, payload: fields['Payload'], invocationType: fields['InvocationType'] };
}

function invokeResult(statusCode: number, payload: unknown) {
  const requestId = randomUUID();
  return {
    ExecutedVersion: '$LATEST',
    Payload: payload,
    SdkHttpMetadata: {
      HttpHeaders: { 'Content-Type': 'application/json', 'X-Amz-Executed-Version': '$LATEST' },
      HttpStatusCode: statusCode,
    },
    SdkResponseMetadata: { RequestId: requestId },
    StatusCode: statusCode,
  };
}

async function invoke(runtime: TaskRuntime, functionName: string, event: unknown): Promise<unknown> {
  const arn = `arn:aws:lambda:${runtime.region}:${runtime.accountId}:function:${functionName}`;
  const handler = Object.hasOwn(runtime.functions, functionName)
    ? runtime.functions[functionName]
    : undefined;
  if (!handler) {
    throw new StateError('Lambda.ResourceNotFoundException', `Function not found: ${arn} (Status Code: 404)`);
  }
  const refused = runtime.canInvoke?.(arn);
  // Lambda answers 403 AccessDeniedException; Step Functions names service errors Lambda.AWSLambdaException.
  if (refused)
    throw new StateError('Lambda.AWSLambdaException', `${refused} (Service: Lambda, Status Code: 403)`);
  const context = {
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: arn,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 900_000,
  };
  let result: unknown;
  // Lambda stops a function at its timeout (here: the in-process call is abandoned, its answer ignored).
  const timeoutSeconds = runtime.functionTimeouts?.[functionName];
  let timer: NodeJS.Timeout | undefined;
  const timedOut =
    timeoutSeconds === undefined
      ? undefined
      : new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new StateError(
                  'Lambda.Unknown',
                  JSON.stringify({
                    errorMessage: `Task timed out after ${timeoutSeconds}.00 seconds`,
                    errorType: 'Sandbox.Timedout',
                  }),
                ),
              ),
            timeoutSeconds * 1000,
          );
        });
  try {
    const call = Promise.resolve(handler(JSON.parse(JSON.stringify(event ?? {})) as never, context as never));
    result = await (timedOut ? Promise.race([call, timedOut]) : call);
  } catch (error) {
    if (error instanceof StateError) throw error;
    throw functionError(error);
  } finally {
    clearTimeout(timer);
  }
  let text: string;
  try {
    text = JSON.stringify(result === undefined ? null : result);
  } catch (error) {
    throw functionError(
      Object.assign(new Error(`result is not JSON: ${String(error)}`), { name: 'Runtime.MarshalError' }),
    );
  }
  // A synchronous invocation answers at most 6 MB.
  const size = Buffer.byteLength(text);
  if (size > MAX_LAMBDA_RESPONSE_BYTES) {
    throw new StateError(
      'Lambda.Unknown',
      JSON.stringify({
        errorMessage: `Response payload size (${size} bytes) exceeded maximum allowed payload size (${MAX_LAMBDA_RESPONSE_BYTES} bytes).`,
        errorType: 'Function.ResponseSizeTooLarge',
      }),
    );
  }
  return JSON.parse(text);
}

/** Lambda's error shape: Error = errorType (the error's name), Cause = the JSON the Node.js runtime reports. */
function functionError(error: unknown): StateError {
  const errorType = error instanceof Error ? error.name : typeof error;
  const errorMessage = error instanceof Error ? error.message : String(error);
  const trace = error instanceof Error && error.stack ? error.stack.split('\n') : [];
  return new StateError(errorType, JSON.stringify({ errorMessage, errorType, trace }));
}
