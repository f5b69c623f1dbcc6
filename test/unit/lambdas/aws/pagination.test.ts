// Page cursors: opaque, round-trip the DynamoDB key, and anything else is a 400 on `cursor`, never a 500.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { errorResponse } from '../../../../lambdas/api/errors.ts';
import { type CursorShape, decodeCursor, encodeCursor } from '../../../../lambdas/aws/pagination.ts';
import { AppError } from '../../../../lambdas/domain/errors.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64url');
const SHAPE: CursorShape = { attributes: ['kind', 'id'], fixed: { kind: 'dataCenter' } };

function decodeError(cursor: string, shape?: CursorShape): AppError {
  try {
    decodeCursor(cursor, shape);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error(`decodeCursor accepted ${cursor}`);
}

describe('page cursors', () => {
  it('round-trip a key, and mean "no more" when absent', () => {
    const key = { kind: 'dataCenter', id: 'dc-gz' };
    const cursor = encodeCursor(key) ?? '';
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, SHAPE)).toEqual(key);
    expect(encodeCursor(undefined)).toBeUndefined();
    expect(decodeCursor(undefined, SHAPE)).toBeUndefined();
  });

  it.each([
    ['garbage', 'garbage!'],
    ['not JSON', b64('{"kind":')],
    ['a JSON array', b64('["dataCenter","dc-gz"]')],
    ['a JSON number', b64('42')],
    ['JSON null', b64('null')],
    ['an empty string', ''],
  ])('%s is a validation error on the field cursor', (_name, cursor) => {
    const err = decodeError(cursor);
    expect(err.kind).toBe('validation');
    expect(err.details.issues).toEqual([{ field: 'cursor', reason: expect.any(String) }]);
  });

  it.each([
    ['a missing attribute', { kind: 'dataCenter' }],
    ['an extra attribute', { kind: 'dataCenter', id: 'dc-gz', admin: 'yes' }],
    ['a number value', { kind: 'dataCenter', id: 7 }],
    ['an empty value', { kind: 'dataCenter', id: '' }],
    ['another listing', { kind: 'cacheNode', id: 'hkg' }],
  ])('a key with %s is not a cursor of this listing', (_name, key) => {
    expect(decodeError(b64(JSON.stringify(key)), SHAPE).kind).toBe('validation');
  });

  it('a garbage cursor reaching the API is a 400 naming the field', async () => {
    const app = new Hono()
      .get('/list', (c) => c.json({ start: decodeCursor(c.req.query('cursor'), SHAPE) ?? null }))
      .onError((err, c) => errorResponse(c, err));
    const res = await app.request('/list?cursor=%%%');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        code: 'ValidationError',
        message: 'cursor: is not a cursor returned by this API',
        issues: [{ field: 'cursor', reason: 'is not a cursor returned by this API' }],
      },
    });
    expect((await app.request('/list')).status).toBe(200);
  });
});
