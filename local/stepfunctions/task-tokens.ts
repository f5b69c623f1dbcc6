// Task tokens of callback (`.waitForTaskToken`) tasks: one fresh opaque token per task attempt, settled by
// SendTaskSuccess / SendTaskFailure, kept alive by SendTaskHeartbeat. Tokens live in memory only: after a restart
// the old ones are unknown (TaskDoesNotExist) and the re-run execution issues new ones.
import { randomBytes } from 'node:crypto';
import { SfnApiError, StateError } from './errors.ts';
import { type LongTimer, longTimeout } from './timers.ts';

// `sfnlocal.<execution ARN, base64url>.<random>`: like AWS's, a token names its execution even after it is over
// (IAM authorizes SendTask* against the execution's state machine).
const TOKEN = /^sfnlocal\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]{64}$/;
const REMEMBERED_CLOSED_TOKENS = 10_000;

export interface TaskWaiter {
  readonly token: string;
  /** Settles with the SendTaskSuccess output, or rejects with the state error. */
  readonly result: Promise<unknown>;
}

export interface OpenOptions {
  readonly executionArn: string;
  readonly stateName: string;
  readonly heartbeatSeconds: number | undefined;
}

interface OpenTask {
  readonly executionArn: string;
  readonly stateName: string;
  readonly heartbeatMs: number | undefined;
  readonly resolve: (output: unknown) => void;
  readonly reject: (error: Error) => void;
  heartbeatTimer: LongTimer | undefined;
}

export class TaskTokens {
  readonly #open = new Map<string, OpenTask>();
  /** Closed tokens answer TaskTimedOut (as AWS does for a task that is over) instead of TaskDoesNotExist. */
  readonly #closed = new Map<string, true>();

  open(options: OpenOptions): TaskWaiter {
    const token = `sfnlocal.${Buffer.from(options.executionArn).toString('base64url')}.${randomBytes(48).toString('base64url')}`;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const task: OpenTask = {
      executionArn: options.executionArn,
      stateName: options.stateName,
      heartbeatMs: options.heartbeatSeconds === undefined ? undefined : options.heartbeatSeconds * 1000,
      resolve,
      reject,
      heartbeatTimer: undefined,
    };
    this.#open.set(token, task);
    this.#armHeartbeat(token, task);
    return { token, result: promise };
  }

  /** The execution a token was issued for (open or not), if the token is well formed. */
  executionOf(token: string): string | undefined {
    const encoded = TOKEN.exec(token)?.[1];
    return encoded === undefined ? undefined : Buffer.from(encoded, 'base64url').toString('utf8');
  }

  succeed(token: string, output: unknown): void {
    this.#take(token).resolve(output);
  }

  fail(token: string, error: string, cause: string): void {
    this.#take(token).reject(new StateError(error, cause));
  }

  heartbeat(token: string): void {
    this.#armHeartbeat(token, this.#get(token));
  }

  /** Stops accepting `token` without settling its waiter (its task already failed another way). */
  discard(token: string): void {
    if (this.#open.has(token)) this.#close(token);
  }

  /** Ends the open tasks of an execution that stopped or finished, so their waiters settle and timers clear. */
  closeExecution(executionArn: string, error: () => Error): void {
    for (const [token, task] of this.#open) {
      if (task.executionArn !== executionArn) continue;
      this.#close(token);
      task.reject(error());
    }
  }

  #armHeartbeat(token: string, task: OpenTask): void {
    const heartbeatMs = task.heartbeatMs;
    if (heartbeatMs === undefined) return;
    task.heartbeatTimer?.cancel();
    task.heartbeatTimer = longTimeout(() => {
      this.#close(token);
      const cause = `no heartbeat for ${heartbeatMs / 1000} s in state ${task.stateName}`;
      task.reject(new StateError('States.HeartbeatTimeout', cause));
    }, heartbeatMs);
  }

  #get(token: string): OpenTask {
    const task = this.#open.get(token);
    if (task) return task;
    if (!TOKEN.test(token)) throw new SfnApiError('InvalidToken', 'Invalid Token');
    if (this.#closed.has(token)) throw new SfnApiError('TaskTimedOut', 'Task Timed Out: the task is over');
    throw new SfnApiError('TaskDoesNotExist', 'Task does not exist anymore');
  }

  #take(token: string): OpenTask {
    const task = this.#get(token);
    this.#close(token);
    return task;
  }

  #close(token: string): void {
    const task = this.#open.get(token);
    if (!task) return;
    task.heartbeatTimer?.cancel();
    this.#open.delete(token);
    this.#closed.set(token, true);
    if (this.#closed.size > REMEMBERED_CLOSED_TOKENS) {
      const oldest = this.#closed.keys().next();
      if (!oldest.done) this.#closed.delete(oldest.value);
    }
  }
}
