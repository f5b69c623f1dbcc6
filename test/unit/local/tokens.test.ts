// Local cloud credentials: an admin token and per-data-center agent tokens derived from one secret, kept in the
// data directory; anything altered is rejected.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  agentToken,
  bearerAuthenticate,
  type LocalTokens,
  loadOrCreateTokens,
  principalForToken,
} from '../../../local/tokens.ts';

let dir: string;
let tokens: LocalTokens;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmmig-tokens-'));
  tokens = loadOrCreateTokens(dir);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('loadOrCreateTokens', () => {
  it('creates tokens once, readable by the owner only, and loads the same ones again', async () => {
    const file = join(dir, 'tokens.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(tokens);
    expect(loadOrCreateTokens(dir)).toEqual(tokens);
    expect(tokens.adminToken).toMatch(/^vmmig-admin\.[A-Za-z0-9_-]{32}$/);
  });

  it('another data directory gets other secrets', async () => {
    const other = await mkdtemp(join(tmpdir(), 'vmmig-tokens-'));
    try {
      const theirs = loadOrCreateTokens(other);
      expect(theirs.adminToken).not.toBe(tokens.adminToken);
      expect(agentToken(theirs, 'dc-gz')).not.toBe(agentToken(tokens, 'dc-gz'));
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('principalForToken', () => {
  it('the admin token is the admin', () => {
    expect(principalForToken(tokens, tokens.adminToken)).toEqual({ kind: 'admin', id: 'local-admin' });
  });

  it('an agent token is derived per data center, also for one registered at runtime', () => {
    expect(agentToken(tokens, 'dc-gz')).toBe(agentToken(tokens, 'dc-gz'));
    expect(agentToken(tokens, 'dc-gz')).not.toBe(agentToken(tokens, 'dc-sh'));
    for (const dc of ['dc-gz', 'dc-new-at-runtime']) {
      expect(principalForToken(tokens, agentToken(tokens, dc))).toEqual({
        kind: 'agent',
        dataCenterId: dc,
        id: `agent:${dc}`,
      });
    }
  });

  const gz = () => agentToken(tokens, 'dc-gz');
  const flip = (s: string) => `${s.slice(0, -1)}${s.endsWith('A') ? 'B' : 'A'}`;
  it.each<[string, () => string]>([
    ['a changed signature', () => flip(gz())],
    ['another data center with this signature', () => gz().replace('.dc-gz.', '.dc-sh.')],
    ['a token of another secret', () => agentToken({ ...tokens, agentSecret: 'x' }, 'dc-gz')],
    ['a changed admin token', () => flip(tokens.adminToken)],
    ['a truncated admin token', () => tokens.adminToken.slice(0, -4)],
    ['an extra part', () => `${gz()}.x`],
    ['another prefix', () => gz().replace('vmmig-agent', 'vmmig-admin')],
    ['no signature', () => 'vmmig-agent.dc-gz.'],
    ['empty', () => ''],
  ])('rejects %s', (_name, token) => {
    expect(principalForToken(tokens, token())).toBeUndefined();
  });
});

describe('bearerAuthenticate', () => {
  const auth = () => bearerAuthenticate(tokens);
  const req = (authorization?: string) =>
    new Request('http://127.0.0.1/v1/data-centers', authorization ? { headers: { authorization } } : {});

  it('reads a Bearer token, case-insensitively', async () => {
    expect(await auth()(req(`Bearer ${tokens.adminToken}`), undefined)).toMatchObject({ kind: 'admin' });
    expect(await auth()(req(`bearer ${agentToken(tokens, 'dc-sh')}`), undefined)).toMatchObject({
      dataCenterId: 'dc-sh',
    });
  });

  it.each([undefined, 'Bearer', `Basic ${Buffer.from('admin:x').toString('base64')}`, 'Bearer a b'])(
    'is unauthenticated with the header %s',
    async (header) => {
      expect(await auth()(req(header), undefined)).toBeUndefined();
    },
  );
});
