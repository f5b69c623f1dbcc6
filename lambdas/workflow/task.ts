// Wraps a workflow task: builds the adapters its declaration allows once per runtime and turns transient AWS
// failures into `TransientError`, the one error name the state machine retries with backoff. Anything else fails
// the step with its own name.
import { buildDeps, type DepsOf, lambdaRuntime, type Runtime } from '../aws/deps.ts';
import { isTransientAwsError } from '../aws/transient.ts';
import type { FunctionDefinition, Needs } from '../needs.ts';

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

/** A Lambda handler bound to its declaration; `in(runtime)` runs the same code with another runtime's adapters. */
export interface DeclaredHandler<E, R> {
  (event: E): Promise<R>;
  readonly definition: FunctionDefinition;
  in(runtime: Runtime): (event: E) => Promise<R>;
}

export function task<N extends Needs, E, R>(
  definition: FunctionDefinition<N>,
  fn: (deps: DepsOf<N>, event: E) => Promise<R>,
): DeclaredHandler<E, R> {
  const bind = (runtime: () => Runtime) => {
    let deps: DepsOf<N> | undefined;
    return async (event: E): Promise<R> => {
      deps ??= buildDeps(definition.needs, runtime());
      try {
        return await fn(deps, event);
      } catch (err) {
        if (!(err instanceof TransientError) && isTransientAwsError(err)) {
          throw new TransientError(`${(err as Error).name}: ${(err as Error).message}`);
        }
        throw err;
      }
    };
  };
  return Object.assign(bind(lambdaRuntime), {
    definition,
    in: (runtime: Runtime) => bind(() => runtime),
  });
}
