// Errors of the local Step Functions service: API errors carry the AWS error name the SDK maps to its named
// exceptions; state errors are what a Task state fails with, shaped the way aws-local-stepfunctions matches them.

/** An API error: HTTP 400 with `{"__type": name, "message"}`, which the SDK raises as the exception `name`. */
export class SfnApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = type;
  }
}

/**
 * The error a state fails with. `name` is what Retry/Catch `ErrorEquals` match and `message` becomes the Cause.
 * The library reads `isRetryable`/`isCatchable` by duck typing: States.Runtime-like errors set both to false.
 */
export class StateError extends Error {
  constructor(
    name: string,
    cause: string,
    readonly isRetryable = true,
    readonly isCatchable = true,
  ) {
    super(cause);
    this.name = name;
  }
}

/** Ends the pending tasks of an execution that was stopped; neither retried nor caught, so nothing runs again. */
export const executionStopped = () =>
  new StateError('States.Runtime', 'The execution was stopped while this task was waiting', false, false);

/**
 * States.Timeout as aws-local-stepfunctions raises it. Its `States.TaskFailed` wildcard excludes timeouts by the
 * error's class (as AWS excludes States.Timeout), and the class is not exported: it is captured once from a task
 * that times out, so the timeouts our task handler enforces are matched exactly as the library's own.
 */
let timeoutClass: (new () => Error) | undefined;

export async function captureTimeoutErrorClass(): Promise<void> {
  if (timeoutClass) return;
  const { StateMachine, ExecutionError } = await import('aws-local-stepfunctions');
  const run = new StateMachine(
    {
      StartAt: 'T',
      States: {
        T: { Type: 'Task', Resource: 'arn:aws:states:::local:capture', TimeoutSeconds: 0.001, End: true },
      },
    } as never,
    { validationOptions: { noValidate: true } },
  ).run({}, { overrides: { taskResourceLocalHandlers: { T: () => new Promise(() => {}) } } });
  const error = await run.result.then(
    () => undefined,
    (e: unknown) => (e instanceof ExecutionError ? e.cause : e),
  );
  if (!(error instanceof Error) || error.name !== 'States.Timeout')
    throw new Error('aws-local-stepfunctions no longer raises States.Timeout the way this service relies on');
  timeoutClass = error.constructor as new () => Error;
}

/** A States.Timeout that Retry/Catch treat as the library's own (not matched by States.TaskFailed). */
export function statesTimeout(cause: string): Error {
  if (!timeoutClass) throw new Error('captureTimeoutErrorClass() has not run');
  const error = new timeoutClass();
  error.message = cause;
  return error;
}
