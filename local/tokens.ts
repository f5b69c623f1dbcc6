// Local cloud credentials: an admin token and a secret from which each data center's agent token is derived
// (so a data center registered at runtime has a token at once). Generated at first start, kept in the data dir.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Authenticate, Principal } from '../lambdas/api/principal.ts';

export interface LocalTokens {
  readonly adminToken: string;
  readonly agentSecret: string;
}

const AGENT_PREFIX = 'vmmig-agent';

export function loadOrCreateTokens(dataDir: string): LocalTokens {
  const file = join(dataDir, 'tokens.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as LocalTokens;
  const tokens: LocalTokens = {
    adminToken: `vmmig-admin.${randomBytes(24).toString('base64url')}`,
    agentSecret: randomBytes(32).toString('base64url'),
  };
  writeFileSync(file, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return tokens;
}

const mac = (secret: string, dataCenterId: string) =>
  createHmac('sha256', secret).update(`agent:${dataCenterId}`).digest('base64url');

export function agentToken(tokens: LocalTokens, dataCenterId: string): string {
  return `${AGENT_PREFIX}.${dataCenterId}.${mac(tokens.agentSecret, dataCenterId)}`;
}

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export function principalForToken(tokens: LocalTokens, token: string): Principal | undefined {
  if (same(token, tokens.adminToken)) return { kind: 'admin', id: 'local-admin' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== AGENT_PREFIX) return undefined;
  const [, dataCenterId = '', sig = ''] = parts;
  return same(sig, mac(tokens.agentSecret, dataCenterId))
    ? { kind: 'agent', dataCenterId, id: `agent:${dataCenterId}` }
    : undefined;
}

/** The principal of a request's bearer token; undefined without one, or with one that is not valid. */
export function principalOfRequest(tokens: LocalTokens, request: Request): Principal | undefined {
  const header = request.headers.get('authorization');
  const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  return match?.[1] ? principalForToken(tokens, match[1]) : undefined;
}

export function bearerAuthenticate(tokens: LocalTokens): Authenticate {
  return (request) => principalOfRequest(tokens, request);
}
