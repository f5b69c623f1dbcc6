// Task integrations, run in-process with AWS's shapes: `lambda:invoke` (result `{ExecutedVersion, Payload,
// StatusCode, ...}`), `lambda:invoke.waitForTaskToken` (result = SendTaskSuccess output) and a Lambda ARN resource
// (result = the function's return value). A thrown error becomes the state error Lambda would report.
import { randomUUID } from 'node:crypto';
import type { RunOptions } from 'aws-local-stepfunctions';
import { fillPlaceholders } from './context.ts';
import {
  functionNameOf,
  MAX_TIMER_SECONDS,
  type PreparedMachine,
  type TaskCall,
  type TaskSpec,
} from './definition.ts';
import { StateError } from './errors.ts';
import type { TaskTokens, TaskWaiter } from './task-tokens.ts';

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
  readonly tokens: TaskTokens;
  readonly region: string;
  readonly accountId: string;
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
  Number.isInteger(value) && (value as number) >= 1
    ? Math.min(value as number, MAX_TIMER_SECONDS)
    : undefined;

function runAttempt(spec: TaskSpec, call: TaskCall, entry: Entry, runtime: TaskRuntime): Promise<unknown> {
  let timeoutSeconds = spec.timeoutSeconds;
  if (spec.dynamicTimeout) {
    timeoutSeconds = positiveSeconds(call.TimeoutSeconds);
    // The library reads TimeoutSeconds from this object right after we return: it raises States.Runtime for a
    // bad value (so start nothing), and a capped value keeps its timer from overflowing.
    if (timeoutSeconds === undefined) return new Promise(() => {});
    call.TimeoutSeconds = timeoutSeconds;
  }
  const heartbeatSeconds = spec.dynamicHeartbeat
    ? positiveSeconds(call.HeartbeatSeconds)
    : spec.heartbeatSeconds;
  if (spec.dynamicHeartbeat && heartbeatSeconds === undefined) {
    const cause = `HeartbeatSecondsPath of ${spec.name} does not select a positive integer`;
    return Promise.reject(new StateError('States.Runtime', cause, false, false));
  }
  const waiter =
    spec.kind === 'lambda-callback'
      ? runtime.tokens.open({ executionArn: runtime.executionArn, stateName: spec.name, heartbeatSeconds })
      : undefined;
  const parameters = fillPlaceholders(call.Parameters, {
    token: waiter?.token,
    enteredTime: entry.enteredTime,
    retryCount: entry.retryCount,
  });
  const work = perform(spec, parameters, waiter, runtime);
  if (timeoutSeconds !== undefined) {
    // The library fails the state with States.Timeout at the same moment (its timer was set just after ours).
    const attempt = entry.retryCount;
    const timer = setTimeout(() => {
      if (entry.retryCount === attempt) entry.lastFailed = true;
      if (waiter) runtime.tokens.discard(waiter.token);
    }, timeoutSeconds * 1000);
    timer.unref();
    const clear = () => clearTimeout(timer);
    work.then(clear, clear);
  }
  return work;
}

async function perform(
  spec: TaskSpec,
  parameters: unknown,
  waiter: TaskWaiter | undefined,
  runtime: TaskRuntime,
): Promise<unknown> {
  if (spec.kind === 'lambda-function') return invoke(runtime, spec.functionName ?? '', parameters);
  if (!waiter) {
    const request = invokeRequest(parameters);
    if (request.invocationType === 'Event') {
      void invoke(runtime, request.functionName, request.payload).catch(() => {});
      return invokeResult(202, '');
    }
    return invokeResult(200, await invoke(runtime, request.functionName, request.payload));
  }
  try {
    const request = invokeRequest(parameters);
    const invocation = invoke(runtime, request.functionName, request.payload);
    // The function's return value is ignored: the state ends with what SendTaskSuccess/SendTaskFailure says.
    if (request.invocationType === 'Event') {
      void invocation.catch(() => {});
      return await waiter.result;
    }
    return await Promise.race([invocation.then(() => waiter.result), waiter.result]);
  } catch (error) {
    runtime.tokens.discard(waiter.token);
    throw error;
  }
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
  try {
    result = await handler(JSON.parse(JSON.stringify(event ?? {})) as never, context as never);
  } catch (error) {
    throw functionError(error);
  }
  try {
    return result === undefined ? null : JSON.parse(JSON.stringify(result));
  } catch (error) {
    throw functionError(
      Object.assign(new Error(`result is not JSON: ${String(error)}`), { name: 'Runtime.MarshalError' }),
    );
  }
}

/** Lambda's error shape: Error = errorType (the error's name), Cause = the JSON the Node.js runtime reports. */
function functionError(error: unknown): StateError {
  const errorType = error instanceof Error ? error.name : typeof error;
  const errorMessage = error instanceof Error ? error.message : String(error);
  const trace = error instanceof Error && error.stack ? error.stack.split('\n') : [];
  return new StateError(errorType, JSON.stringify({ errorMessage, errorType, trace }));
}
