import { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoff } from '../../../cli/client.ts';
import { errorResponse } from '../../../lambdas/api/errors.ts';
import { isTransientAwsError as isTransient } from '../../../lambdas/aws/transient.ts';

const sdkError = (name: string, status?: number, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(`${name} from the service`), {
    name,
    ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }),
    ...extra,
  });

/** The answer of a route that throws `err`, through the API's one error handler. */
async function answer(err: unknown) {
  const app = new Hono();
  app.get('/x', () => {
    throw err;
  });
  app.onError((e, c) => errorResponse(c, e));
  const res = await app.request('/x');
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body };
}

describe('storage errors the SDK could not retry away', () => {
  // The handler logs every error it maps; the tests look at the answers.
  beforeEach(() => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    vi.spyOn(console, 'warn').mockImplementation(() => {});
  });
  afterEach(() => vi.restoreAllMocks());

  it.each([
    ['DynamoDB throttling', sdkError('ProvisionedThroughputExceededException', 400)],
    ['S3 SlowDown', sdkError('SlowDown', 503)],
    ['a 500 from S3', sdkError('InternalError', 500)],
    ['a service answer the SDK marks retryable', sdkError('Whatever', 400, { $retryable: {} })],
    ['a reset connection', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
  ])('%s → 503 ServiceUnavailable with Retry-After', async (_what, err) => {
    expect(isTransient(err)).toBe(true);
    const res = await answer(err);
    expect(res.status).toBe(503);
    expect(res.retryAfter).toBe('1');
    expect(res.body.error.code).toBe('ServiceUnavailable');
    expect(res.body.error.message).toContain((err as Error).name);
  });

  it.each([
    ['a failed condition', sdkError('ConditionalCheckFailedException', 400)],
    ['a missing object', sdkError('NoSuchKey', 404)],
    ['a bug', new TypeError('x is undefined')],
  ])('%s stays a 500 (logged, not retried as transient)', async (_what, err) => {
    expect(isTransient(err)).toBe(false);
    const res = await answer(err);
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('InternalError');
  });
});

describe('backoff', () => {
  it('ends at once when its signal aborts', async () => {
    const abort = new AbortController();
    // 30–60 s without the abort: the test's own timeout fails it if the abort is not heard.
    const waiting = backoff(10, 1000, 60_000, abort.signal);
    setTimeout(() => abort.abort(new Error('stopped')), 20);
    await expect(waiting).rejects.toThrow('stopped');
  });

  it('waits without a signal', async () => {
    await expect(backoff(0, 1, 1)).resolves.toBeUndefined();
  });
});
