// The Context Object (`$$`) as AWS fills it. aws-local-stepfunctions rebuilds `$$.Execution` for every run (inside
// a Map iteration `$$.Execution.Input` would be the item) and has no `$$.State` or `$$.Task`. Prepared definitions
// therefore read those through `$$.__sfn`, an object the library hands by reference to nested runs; values that
// differ per task attempt (token, retry count, entered time) are placeholders the task handler fills in.

export const CONTEXT_KEY = '__sfn';

export const PLACEHOLDER = {
  token: '__localsfn_task_token__',
  enteredTime: '__localsfn_state_entered_time__',
  retryCount: '__localsfn_state_retry_count__',
} as const;

/**
 * Points `$$.Execution`, `$$.State` and (in a Task state's Parameters) `$$.Task` at `$$.__sfn`. `stateIndex` picks
 * the state's entry, so `$$.State.Name` needs no run-time knowledge of which state is evaluating.
 */
export function rewriteContextPaths(
  expression: string,
  stateIndex: number,
  inTaskParameters: boolean,
): string {
  const states = inTaskParameters ? 'TaskStates' : 'States';
  return expression
    .replace(/\$\$\.Execution(?![\w$])/g, () => `$$.${CONTEXT_KEY}.Execution`)
    .replace(/\$\$\.State(?![\w$])/g, () => `$$.${CONTEXT_KEY}.${states}[${stateIndex}]`)
    .replace(/\$\$\.Task(?![\w$])/g, () => (inTaskParameters ? `$$.${CONTEXT_KEY}.Task` : '$$.Task'));
}

export interface ExecutionContext {
  readonly executionArn: string;
  readonly name: string;
  readonly input: unknown;
  readonly startTime: string;
  readonly stateMachineArn: string;
  readonly stateMachineName: string;
  readonly roleArn: string;
}

/** The `context` run option for one execution; `stateNames[i]` is the state rewritten to `States[i]`. */
export function buildContext(
  execution: ExecutionContext,
  stateNames: readonly string[],
): Record<string, unknown> {
  const executionObject = {
    Id: execution.executionArn,
    Name: execution.name,
    Input: execution.input,
    StartTime: execution.startTime,
    RoleArn: execution.roleArn,
    RedriveCount: 0,
  };
  return {
    Execution: { ...executionObject },
    StateMachine: { Id: execution.stateMachineArn, Name: execution.stateMachineName },
    [CONTEXT_KEY]: {
      Execution: executionObject,
      // Outside Task Parameters a state's paths are evaluated as it is entered, so "now" is its entered time;
      // only Task states retry with their own count (Map/Parallel retries report 0; see the notes in index.ts).
      States: stateNames.map((name) => ({
        Name: name,
        get EnteredTime() {
          return new Date().toISOString();
        },
        RetryCount: 0,
      })),
      TaskStates: stateNames.map((name) => ({
        Name: name,
        EnteredTime: PLACEHOLDER.enteredTime,
        RetryCount: PLACEHOLDER.retryCount,
      })),
      Task: { Token: PLACEHOLDER.token },
    },
  };
}

export interface AttemptValues {
  readonly token: string | undefined;
  readonly enteredTime: string;
  readonly retryCount: number;
}

/** A copy of `value` with the placeholders replaced; a value that is exactly the retry count becomes a number. */
export function fillPlaceholders(value: unknown, attempt: AttemptValues): unknown {
  if (typeof value === 'string') {
    if (value === PLACEHOLDER.retryCount) return attempt.retryCount;
    if (!value.includes('__localsfn_')) return value;
    return value
      .replaceAll(PLACEHOLDER.token, attempt.token ?? PLACEHOLDER.token)
      .replaceAll(PLACEHOLDER.enteredTime, attempt.enteredTime)
      .replaceAll(PLACEHOLDER.retryCount, String(attempt.retryCount));
  }
  if (Array.isArray(value)) return value.map((item) => fillPlaceholders(item, attempt));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, fillPlaceholders(item, attempt)]),
    );
  }
  return value;
}
