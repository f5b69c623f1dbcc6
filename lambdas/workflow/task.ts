// Wraps a workflow task: builds its dependencies once and turns transient AWS failures into `TransientError`,
// the one error name the state machine retries with backoff. Anything else fails the step with its own name.
import { type ServiceDeps, serviceDeps } from '../aws/deps.ts';
import { isTransientAwsError } from '../aws/transient.ts';

export class TransientError extends Error {
  override readonly name = 'TransientError';
}

/** A failure the workflow should not retry: the cause is in the message. */
export class TaskFailure extends Error {
  constructor(
    override readonly name: string,
    message: string,
  ) {
    super(message);
  }
}

export function task<E, R>(fn: (deps: ServiceDeps, event: E) => Promise<R>): (event: E) => Promise<R> {
  return async (event) => {
    try {
      return await fn(serviceDeps(), event);
    } catch (err) {
      if (!(err instanceof TransientError) && isTransientAwsError(err)) {
        throw new TransientError(`${(err as Error).name}: ${(err as Error).message}`);
      }
      throw err;
    }
  };
}
