// On AWS, API Gateway's IAM authorizer gives the caller's ARN; this maps it to an admin or one data center's agent.
import { describe, expect, it } from 'vitest';
import { iamAuthenticate, principalFromArn, roleName } from '../../../../lambdas/api/iam-principals.ts';

const ACCOUNT = '123456789012';
const ADMINS = [`arn:aws:iam::${ACCOUNT}:role/ops/VmmigAdmin`, `arn:aws:iam::${ACCOUNT}:user/alice`];
const PREFIX = 'vmmig-agent-';
const session = (role: string, account = ACCOUNT) => `arn:aws:sts::${account}:assumed-role/${role}/session-1`;

describe('roleName', () => {
  it.each([
    [session('VmmigAdmin'), 'VmmigAdmin'],
    [`arn:aws:iam::${ACCOUNT}:role/VmmigAdmin`, 'VmmigAdmin'],
    [`arn:aws:iam::${ACCOUNT}:role/a/b/VmmigAdmin`, 'VmmigAdmin'],
    [`arn:aws-cn:sts::${ACCOUNT}:assumed-role/R/s`, 'R'],
    [`arn:aws:iam::${ACCOUNT}:user/alice`, undefined],
    [`arn:aws:sts::${ACCOUNT}:assumed-role/NoSession`, undefined],
    ['arn:aws:sts::123:assumed-role/R/s', undefined],
    ['not an arn', undefined],
    ['', undefined],
  ])('%s → %s', (arn, name) => {
    expect(roleName(arn)).toBe(name);
  });
});

describe('principalFromArn', () => {
  it('a session of a listed admin role (with or without a path) is an admin', () => {
    expect(principalFromArn(session('VmmigAdmin'), ADMINS, PREFIX)).toEqual({
      kind: 'admin',
      id: session('VmmigAdmin'),
    });
    expect(principalFromArn(`arn:aws:iam::${ACCOUNT}:role/VmmigAdmin`, ADMINS, PREFIX)?.kind).toBe('admin');
  });

  it('a listed admin user is an admin by its exact ARN only', () => {
    expect(principalFromArn(`arn:aws:iam::${ACCOUNT}:user/alice`, ADMINS, PREFIX)?.kind).toBe('admin');
    expect(principalFromArn(`arn:aws:iam::${ACCOUNT}:user/alice2`, ADMINS, PREFIX)).toBeUndefined();
    // A role session called "alice" is not the user alice.
    expect(principalFromArn(session('alice'), ADMINS, PREFIX)).toBeUndefined();
  });

  it('the admin role name in another account is not an admin', () => {
    expect(principalFromArn(session('VmmigAdmin', '999999999999'), ADMINS, PREFIX)).toBeUndefined();
  });

  it('a role named <prefix><data center> is that data center’s agent', () => {
    expect(principalFromArn(session('vmmig-agent-dc-gz'), ADMINS, PREFIX)).toEqual({
      kind: 'agent',
      dataCenterId: 'dc-gz',
      id: session('vmmig-agent-dc-gz'),
    });
  });

  it.each([
    ['an invalid data center id', session('vmmig-agent-DC_GZ')],
    ['an empty data center id', session('vmmig-agent-')],
    ['another prefix', session('other-agent-dc-gz')],
    ['a user', `arn:aws:iam::${ACCOUNT}:user/vmmig-agent-dc-gz`],
    ['junk', 'vmmig-agent-dc-gz'],
  ])('%s is nobody', (_name, arn) => {
    expect(principalFromArn(arn, ADMINS, PREFIX)).toBeUndefined();
  });

  it('without a configured prefix there are no agents', () => {
    expect(principalFromArn(session('vmmig-agent-dc-gz'), ADMINS, undefined)).toBeUndefined();
  });
});

describe('iamAuthenticate', () => {
  const env = { ADMIN_PRINCIPAL_ARNS: ` ${ADMINS[0]} ,, ${ADMINS[1]}`, AGENT_ROLE_PREFIX: PREFIX };
  const auth = iamAuthenticate(env);
  const req = new Request('https://api.example/v1/data-centers');
  const bindings = (userArn?: string) => ({
    event: { requestContext: { authorizer: { iam: { userArn } } } },
  });

  it('reads the caller from the API Gateway v2 event, trimming the configured list', async () => {
    expect(await auth(req, bindings(session('VmmigAdmin')))).toMatchObject({ kind: 'admin' });
    expect(await auth(req, bindings(`arn:aws:iam::${ACCOUNT}:user/alice`))).toMatchObject({ kind: 'admin' });
    expect(await auth(req, bindings(session('vmmig-agent-dc-sh')))).toMatchObject({ dataCenterId: 'dc-sh' });
  });

  it('no event, no authorizer or no ARN is unauthenticated', async () => {
    expect(await auth(req, undefined)).toBeUndefined();
    expect(await auth(req, { event: { requestContext: {} } })).toBeUndefined();
    expect(await auth(req, bindings(undefined))).toBeUndefined();
  });

  it('with nothing configured nobody is admitted', async () => {
    expect(await iamAuthenticate({})(req, bindings(session('VmmigAdmin')))).toBeUndefined();
  });
});
