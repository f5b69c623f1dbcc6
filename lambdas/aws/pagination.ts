// Opaque page cursors over DynamoDB's LastEvaluatedKey.
import { invalid } from '../domain/errors.ts';

export function encodeCursor(key: Record<string, unknown> | undefined): string | undefined {
  return key ? Buffer.from(JSON.stringify(key)).toString('base64url') : undefined;
}

export function decodeCursor(cursor: string | undefined): Record<string, unknown> | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw invalid('cursor', 'is not a cursor returned by this API');
}

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor?: string;
}
