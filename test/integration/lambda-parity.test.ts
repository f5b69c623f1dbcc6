// The Lambda entry (lambdas/api/lambda.ts, API Gateway HTTP API v2 events with IAM callers) and the local server
// are the same app: the same request gives the same status and JSON body through both, against the same tables.
import type { APIGatewayProxyEventV2WithIAMAuthorizer, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_FUNCTION } from '../../lambdas/functions.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';

const ACCOUNT = '123456789012';
const ADMIN_ROLE = `arn:aws:iam::${ACCOUNT}:role/ops/VmmigAdmin`;
const ADMIN_USER = `arn:aws:iam::${ACCOUNT}:user/alice`;
const adminSession = `arn:aws:sts::${ACCOUNT}:assumed-role/VmmigAdmin/alice-laptop`;
const agentSession = (dc: string) =>
  `arn:aws:sts::${ACCOUNT}:assumed-role/vmmig-agent-${dc}/i-0123456789abcdef0`;

type Handler = (event: APIGatewayProxyEventV2WithIAMAuthorizer, context: Context) => Promise<unknown>;
let t: TestCloud;
let handler: Handler;
let saved: NodeJS.ProcessEnv;

beforeAll(async () => {
  t = await startTestCloud({ agents: false });
  // The Lambda entry builds its app (and reads these) when imported: the environment the API has as a Lambda here.
  saved = { ...process.env };
  Object.assign(process.env, t.cloud.lambdaEnvironment(API_FUNCTION));
  process.env['ADMIN_PRINCIPAL_ARNS'] = `${ADMIN_ROLE}, ${ADMIN_USER}`;
  process.env['AGENT_ROLE_PREFIX'] = 'vmmig-agent-';
  ({ handler } = (await import('../../lambdas/api/lambda.ts')) as unknown as { handler: Handler });
});
afterAll(async () => {
  process.env = saved;
  await t?.dispose();
});

interface Req {
  readonly method: string;
  readonly path: string;
  readonly query?: string;
  readonly body?: string;
}
interface Answer {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

function event(req: Req, arn: string | undefined): APIGatewayProxyEventV2WithIAMAuthorizer {
  const host = `abc123.execute-api.ap-northeast-1.amazonaws.com`;
  const iam = arn && {
    accessKey: 'ASIAEXAMPLE',
    accountId: ACCOUNT,
    callerId: 'AROAEXAMPLE:session',
    cognitoIdentity: null,
    principalOrgId: 'o-exampleorgid',
    userArn: arn,
    userId: 'AROAEXAMPLE:session',
  };
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: req.path,
    rawQueryString: req.query ?? '',
    headers: {
      host,
      'user-agent': 'parity-test',
      ...(req.body ? { 'content-type': 'application/json' } : {}),
    },
    requestContext: {
      accountId: ACCOUNT,
      apiId: 'abc123',
      domainName: host,
      domainPrefix: 'abc123',
      http: {
        method: req.method,
        path: req.path,
        protocol: 'HTTP/1.1',
        sourceIp: '203.0.113.7',
        userAgent: 'parity-test',
      },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '25/Nov/2026:08:00:00 +0000',
      timeEpoch: 1_795_680_000_000,
      ...(iam ? { authorizer: { iam } } : {}),
    },
    ...(req.body ? { body: req.body } : {}),
    isBase64Encoded: false,
  } as APIGatewayProxyEventV2WithIAMAuthorizer;
}

async function viaLambda(req: Req, arn: string | undefined): Promise<Answer> {
  const out = (await handler(event(req, arn), {} as Context)) as Exclude<APIGatewayProxyResultV2, string>;
  const headers = (out.headers ?? {}) as Record<string, string>;
  return {
    status: out.statusCode ?? 0,
    contentType: headers['content-type'],
    body: out.body
      ? JSON.parse(out.isBase64Encoded ? Buffer.from(out.body, 'base64').toString() : out.body)
      : null,
  };
}

async function viaHttp(req: Req, token: string | undefined): Promise<Answer> {
  const res = await fetch(`${t.cloud.endpoints.api}${req.path}${req.query ? `?${req.query}` : ''}`, {
    method: req.method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(req.body ? { 'content-type': 'application/json' } : {}),
    },
    ...(req.body ? { body: req.body } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? undefined,
    body: text ? JSON.parse(text) : null,
  };
}

type Caller = 'admin' | 'admin-user' | 'none' | 'stranger' | { agent: string };
const arnOf = (c: Caller) =>
  c === 'admin'
    ? adminSession
    : c === 'admin-user'
      ? ADMIN_USER
      : c === 'none'
        ? undefined
        : c === 'stranger'
          ? `arn:aws:iam::${ACCOUNT}:user/mallory`
          : agentSession(c.agent);
const tokenOf = (c: Caller) =>
  c === 'admin' || c === 'admin-user'
    ? t.cloud.tokens.adminToken
    : c === 'none'
      ? undefined
      : c === 'stranger'
        ? 'vmmig-admin.not-the-token'
        : t.cloud.agentToken(c.agent);

const bad = JSON.stringify({ name: 5, address: '10.0.0.1', location: { lat: 100, lon: 0 }, extra: true });
const good = JSON.stringify({ name: 'Parity DC', address: '10.8.0.1', location: { lat: 13.75, lon: 100.5 } });

describe('Lambda entry and local server give the same answer', () => {
  it.each<[string, Req, Caller, number]>([
    ['/health', { method: 'GET', path: '/health' }, 'none', 200],
    ['a registry list (admin role session)', { method: 'GET', path: '/v1/data-centers' }, 'admin', 200],
    [
      'a registry list (admin user)',
      { method: 'GET', path: '/v1/cache-nodes', query: 'limit=2' },
      'admin-user',
      200,
    ],
    ['a registry get', { method: 'GET', path: '/v1/cache-nodes/hkg' }, 'admin', 200],
    [
      'an agent listing its own data center',
      { method: 'GET', path: '/v1/data-centers' },
      { agent: 'dc-sh' },
      200,
    ],
    ['a mapping table read', { method: 'GET', path: '/v1/content-map' }, { agent: 'dc-gz' }, 200],
    ['an unknown data center (404)', { method: 'GET', path: '/v1/data-centers/dc-nowhere' }, 'admin', 404],
    ['an unknown route (404)', { method: 'GET', path: '/v1/nothing-here' }, 'admin', 404],
    ['a bad body (400)', { method: 'PUT', path: '/v1/data-centers/dc-x', body: bad }, 'admin', 400],
    ['a bad cursor (400)', { method: 'GET', path: '/v1/data-centers', query: 'cursor=zzz' }, 'admin', 400],
    ['no credentials (401)', { method: 'GET', path: '/v1/data-centers' }, 'none', 401],
    ['an unknown caller (401)', { method: 'GET', path: '/v1/data-centers' }, 'stranger', 401],
    [
      'an agent reading another (403)',
      { method: 'GET', path: '/v1/data-centers/dc-gz' },
      { agent: 'dc-sh' },
      403,
    ],
    [
      'an agent writing (403)',
      { method: 'PUT', path: '/v1/data-centers/dc-sh', body: good },
      { agent: 'dc-sh' },
      403,
    ],
  ])('%s', async (_name, req, caller, status) => {
    const [lambda, http] = await Promise.all([viaLambda(req, arnOf(caller)), viaHttp(req, tokenOf(caller))]);
    expect(http.status).toBe(status);
    expect(lambda).toEqual(http);
    expect(lambda.contentType).toMatch(/^application\/json/);
  });

  it('a data center registered through the Lambda entry reads back the same over HTTP, and vice versa', async () => {
    const put = await viaLambda({ method: 'PUT', path: '/v1/data-centers/dc-bkk', body: good }, adminSession);
    expect(put.status).toBe(201);
    expect(
      await viaHttp({ method: 'GET', path: '/v1/data-centers/dc-bkk' }, t.cloud.tokens.adminToken),
    ).toEqual({
      ...put,
      status: 200,
    });
    const del = await viaHttp(
      { method: 'DELETE', path: '/v1/data-centers/dc-bkk' },
      t.cloud.tokens.adminToken,
    );
    expect(del.status).toBe(204);
    expect((await viaLambda({ method: 'GET', path: '/v1/data-centers/dc-bkk' }, adminSession)).status).toBe(
      404,
    );
  });
});
