// One place maps error kinds to HTTP statuses and JSON bodies; clients never see a stack trace.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { z } from 'zod';
import type { ErrorBody } from '../../protocol/api/common.ts';
import { MigrationTerminatedError } from '../aws/migration-store.ts';
import { isTransientAwsError } from '../aws/transient.ts';
import { AppError, type ErrorKind } from '../domain/errors.ts';

const STATUS: Record<
  ErrorKind,
  { status: 400 | 401 | 403 | 404 | 409 | 413; code: ErrorBody['error']['code'] }
> = {
  validation: { status: 400, code: 'ValidationError' },
  unauthorized: { status: 401, code: 'Unauthorized' },
  forbidden: { status: 403, code: 'Forbidden' },
  not_found: { status: 404, code: 'NotFound' },
  conflict: { status: 409, code: 'Conflict' },
  limit: { status: 413, code: 'LimitExceeded' },
};

export function errorResponse(c: Context, err: unknown): Response {
  if (err instanceof AppError) {
    const { status, code } = STATUS[err.kind];
    const { issues, ...rest } = err.details;
    const body: ErrorBody = {
      error: { ...rest, code, message: err.message, ...(issues ? { issues: [...issues] } : {}) },
    };
    return c.json(body, status);
  }
  // A migration that ended between a route's read and its write (e.g. cancelled meanwhile): a conflict, not a crash.
  if (err instanceof MigrationTerminatedError) {
    return c.json({ error: { code: 'Conflict', message: err.message } } satisfies ErrorBody, 409);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const code =
      status === 404
        ? 'NotFound'
        : status === 413
          ? 'LimitExceeded'
          : status === 429
            ? 'LimitExceeded'
            : status === 415
              ? 'UnsupportedMediaType'
              : 'ValidationError';
    // @hono/zod-openapi refuses a body sent without `content-type: application/json`: say which header to fix.
    if (status === 415) {
      const reason = 'must be application/json (the body is JSON)';
      return c.json(
        { error: { code, message: `content-type: ${reason}`, issues: [{ field: 'content-type', reason }] } },
        status,
      );
    }
    const message = err.message || 'request rejected';
    // Hono's validators throw these for a body that cannot be parsed at all (malformed JSON): the field is the body.
    const issues = status === 400 ? { issues: [{ field: 'body', reason: message }] } : {};
    return c.json({ error: { code, message, ...issues } }, status);
  }
  if (isTransientAwsError(err)) {
    console.warn(JSON.stringify({ level: 'warn', msg: 'transient', error: String(err) }));
    c.header('Retry-After', '1');
    return c.json(
      {
        error: {
          code: 'ServiceUnavailable',
          message: `a storage service is briefly unavailable (${(err as Error).name}): retry`,
        },
      } satisfies ErrorBody,
      503,
    );
  }
  console.error(
    JSON.stringify({ level: 'error', msg: 'unhandled', error: String(err), stack: (err as Error)?.stack }),
  );
  return c.json({ error: { code: 'InternalError', message: 'internal error; see the API logs' } }, 500);
}

/** Formats zod issues from request validation as a 400 naming each field. */
export function validationResponse(c: Context, error: z.ZodError, target: string): Response {
  // An issue with the whole JSON body (not an object, a cross-field rule) names `body`, as a malformed body does.
  const whole = target === 'json' ? 'body' : target;
  // A key that is empty or has a dot or blank in it is quoted, so the field names the key unambiguously.
  const segment = (s: PropertyKey) =>
    typeof s === 'string' && (s === '' || /[.\s"]/.test(s)) ? JSON.stringify(s) : String(s);
  const field = (path: readonly PropertyKey[]) => (path.length > 0 ? path.map(segment).join('.') : whole);
  // An unknown key is reported at its parent object; name the key itself, which is what the caller must remove.
  const issues = error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ field: field([...issue.path, key]), reason: 'is not a known field' }))
      : [{ field: field(issue.path), reason: issue.message }],
  );
  const message = issues.map((i) => `${i.field}: ${i.reason}`).join('; ');
  return c.json({ error: { code: 'ValidationError', message, issues } } satisfies ErrorBody, 400);
}
