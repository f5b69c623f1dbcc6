// Wraps a workflow task: builds its dependencies once and turns transient AWS failures into `TransientError`,
// the one error name the state machine retries with backoff. Anything else fails the step with its own name.
import { type ServiceDeps, serviceDeps } from '../aws/deps.ts';

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

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  // A response body that broke off after the SDK returned (the SDK retries only up to the headers).
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'SlowDown',
  'InternalError',
  'InternalServerError',
  'ServiceUnavailable',
  'TransactionConflictException',
  // S3: "Your socket connection to the server was not read from or written to within the timeout period".
  'RequestTimeout',
  'TimeoutError',
]);

export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  const e = err as {
    name?: string;
    code?: string;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  if (e.$retryable) return true;
  if (e.name && THROTTLING.has(e.name)) return true;
  if (e.code && TRANSIENT_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  return status !== undefined && (status >= 500 || status === 429);
}

export function task<E, R>(fn: (deps: ServiceDeps, event: E) => Promise<R>): (event: E) => Promise<R> {
  return async (event) => {
    try {
      return await fn(serviceDeps(), event);
    } catch (err) {
      if (isTransient(err) && !(err instanceof TransientError)) {
        throw new TransientError(`${(err as Error).name}: ${(err as Error).message}`);
      }
      throw err;
    }
  };
}
