// Errors are values with a kind; the API maps each kind to one HTTP status in one place (lambdas/api/errors.ts).

export type ErrorKind = 'validation' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'limit';

export interface FieldIssue {
  readonly field: string;
  readonly reason: string;
}

export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details: { readonly issues?: readonly FieldIssue[]; readonly [key: string]: unknown } = {},
  ) {
    super(message);
  }
}

export const invalid = (field: string, reason: string): AppError =>
  new AppError('validation', `${field}: ${reason}`, { issues: [{ field, reason }] });

export const notFound = (what: string, id: string): AppError =>
  new AppError('not_found', `${what} "${id}" does not exist`, { resource: what, id });

export const conflict = (message: string, details: Record<string, unknown> = {}): AppError =>
  new AppError('conflict', message, details);

export const forbidden = (message: string): AppError => new AppError('forbidden', message);
