// Sending task tokens back to Step Functions. A token the service no longer knows (the step timed out, was
// retried, or the execution was restarted) is "stale": the caller withdraws its work item instead of failing.
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';

export type CallbackOutcome = 'sent' | 'stale';

const STALE = new Set(['TaskDoesNotExist', 'InvalidToken', 'TaskTimedOut']);

async function send(fn: () => Promise<unknown>): Promise<CallbackOutcome> {
  try {
    await fn();
    return 'sent';
  } catch (err) {
    if (STALE.has((err as Error).name)) return 'stale';
    throw err;
  }
}

export const taskSucceeded = (sfn: SFNClient, taskToken: string, output: unknown = {}) =>
  send(() => sfn.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) })));

export const taskFailed = (sfn: SFNClient, taskToken: string, error: string, cause: string) =>
  send(() => sfn.send(new SendTaskFailureCommand({ taskToken, error, cause: cause.slice(0, 32_000) })));

export const taskHeartbeat = (sfn: SFNClient, taskToken: string) =>
  send(() => sfn.send(new SendTaskHeartbeatCommand({ taskToken })));
