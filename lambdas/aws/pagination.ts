// Opaque page cursors over DynamoDB's LastEvaluatedKey.
import { invalid } from '../domain/errors.ts';

/** The key a listing's cursor must hold: exactly these attributes, as non-empty strings, some with fixed values. */
export interface CursorShape {
  readonly attributes: readonly string[];
  readonly fixed?: Readonly<Record<string, string>>;
}

export function encodeCursor(key: Record<string, unknown> | undefined): string | undefined {
  return key ? Buffer.from(JSON.stringify(key)).toString('base64url') : undefined;
}

/**
 * A cursor that is not JSON, or (given a shape) not a key of this listing, is the caller's mistake: a 400 here,
 * never a DynamoDB ValidationException (a 500) later.
 */
export function decodeCursor(
  cursor: string | undefined,
  shape?: CursorShape,
): Record<string, unknown> | undefined {
  if (cursor === undefined) return undefined;
  if (cursor.length > 4096) throw invalid('cursor', 'is not a cursor returned by this API');
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      value &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      fits(value as Record<string, unknown>, shape)
    )
      return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw invalid('cursor', 'is not a cursor returned by this API');
}

function fits(key: Record<string, unknown>, shape: CursorShape | undefined): boolean {
  if (!shape) return true;
  const names = Object.keys(key);
  return (
    names.length === new Set(shape.attributes).size &&
    // DynamoDB caps a partition key at 2048 bytes and a sort key at 1024: a forged giant value is no cursor.
    shape.attributes.every(
      (a) => typeof key[a] === 'string' && key[a] !== '' && Buffer.byteLength(key[a]) <= 1024,
    ) &&
    Object.entries(shape.fixed ?? {}).every(([a, v]) => key[a] === v)
  );
}

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor?: string;
}
