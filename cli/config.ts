// Where the CLI finds the API and its credentials: flags, then VMMIG_ENDPOINT / VMMIG_TOKEN, then a local
// cloud running on the data directory (--data-dir, VMMIG_DATA_DIR, or ./.vmmig).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { readRunningState } from '../local/state-file.ts';
import { agentToken, loadOrCreateTokens } from '../local/tokens.ts';
import { regionOfEndpoint, sigv4 } from './auth.ts';
import { ApiClient } from './client.ts';

export interface ConnectionFlags {
  readonly endpoint?: string | undefined;
  readonly token?: string | undefined;
  readonly dataDir?: string | undefined;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const defaultDataDir = (flag?: string) => resolve(flag ?? process.env['VMMIG_DATA_DIR'] ?? '.vmmig');

/**
 * A client for an admin (default) or for a data center's agent. An API Gateway endpoint
 * (`…execute-api.<region>.amazonaws.com`) without a token is called with SigV4 and the AWS credential chain
 * (`AWS_PROFILE`, Roles Anywhere's credential process, instance roles…); so is any endpoint with
 * `VMMIG_AUTH=iam`.
 */
export function connect(flags: ConnectionFlags, asAgentOf?: string): ApiClient {
  const endpoint = flags.endpoint ?? process.env['VMMIG_ENDPOINT'];
  const token = flags.token ?? process.env['VMMIG_TOKEN'];
  if (endpoint && token) return new ApiClient(endpoint, token);
  if (endpoint && (process.env['VMMIG_AUTH'] === 'iam' || regionOfEndpoint(endpoint))) {
    const region = regionOfEndpoint(endpoint) ?? process.env['AWS_REGION'];
    if (!region) throw new UsageError(`cannot tell the AWS region of ${endpoint}: set AWS_REGION`);
    return new ApiClient(endpoint, sigv4(region));
  }
  const dataDir = defaultDataDir(flags.dataDir);
  const state = readRunningState(dataDir);
  if (!endpoint && !state) {
    throw new UsageError(
      `no API to talk to: no local cloud is running on ${dataDir} (start one with \`npm start\`), ` +
        'and neither --endpoint nor VMMIG_ENDPOINT is set',
    );
  }
  if (!token && !existsSync(resolve(dataDir, 'tokens.json'))) {
    throw new UsageError('no token: pass --token or set VMMIG_TOKEN');
  }
  const tokens = token ? undefined : loadOrCreateTokens(dataDir);
  const resolvedToken = token ?? (asAgentOf && tokens ? agentToken(tokens, asAgentOf) : tokens?.adminToken);
  return new ApiClient(endpoint ?? (state?.endpoints.api as string), resolvedToken as string);
}
