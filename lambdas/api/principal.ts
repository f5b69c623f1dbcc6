// Who is calling: an admin, or the agent of one data center. The same model locally (bearer tokens) and on
// AWS (IAM principals mapped by lambdas/api/iam-principals.ts).
import { AppError, forbidden } from '../domain/errors.ts';

export type Principal =
  | { readonly kind: 'admin'; readonly id: string }
  | { readonly kind: 'agent'; readonly dataCenterId: string; readonly id: string };

/** Resolves the caller from the request; undefined = no or bad credentials (401). */
export type Authenticate = (
  request: Request,
  env: unknown,
) => Principal | undefined | Promise<Principal | undefined>;

export function requireAdmin(p: Principal): void {
  if (p.kind !== 'admin') throw forbidden('only an admin may do this');
}

/** Admins see every data center; an agent only its own. */
export function requireDataCenterAccess(p: Principal, dataCenterId: string): void {
  if (p.kind === 'agent' && p.dataCenterId !== dataCenterId) {
    throw forbidden(`the agent of "${p.dataCenterId}" may not read data center "${dataCenterId}"`);
  }
}

export const unauthorized = () => new AppError('unauthorized', 'missing or invalid credentials');
