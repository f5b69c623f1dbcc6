// Which AWS SDK and network failures are worth sending again.
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

/**
 * An AWS SDK or network failure that may succeed if sent again: throttling, a 5xx or 429, a reset or refused
 * connection, a body that broke off. Used by the workflow tasks (retried by the state machine) and by the API
 * (answered 503 with Retry-After).
 */
export function isTransientAwsError(err: unknown): boolean {
  const e = err as {
    name?: string;
    code?: string;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.$retryable) return true;
  if (e.name && THROTTLING.has(e.name)) return true;
  if (e.code && TRANSIENT_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  return status !== undefined && (status >= 500 || status === 429);
}
