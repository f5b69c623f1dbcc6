// What the API needs: the adapters its declaration (API_FUNCTION in lambdas/functions.ts) allows, plus who is
// calling.
import { buildDeps, type DepsOf, type Runtime } from '../aws/deps.ts';
import { API_FUNCTION } from '../functions.ts';
import type { Authenticate } from './principal.ts';

export type ApiDeps = DepsOf<typeof API_FUNCTION.needs> & { readonly authenticate: Authenticate };

export function apiDeps(authenticate: Authenticate, runtime: Runtime): ApiDeps {
  return { ...buildDeps(API_FUNCTION.needs, runtime), authenticate };
}
