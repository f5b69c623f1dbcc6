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
