// The Lambda bundle as `cdk synth` builds it (esbuild, ESM, Node 24, source maps) really loads and answers: the API
// entry is bundled through BaseFunction and its handler is called with API Gateway HTTP API (v2) events.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_DEFINITIONS } from '../../lambdas/aws/tables.ts';
import { ENV } from '../../lambdas/config.ts';
import { API_FUNCTION } from '../../lambdas/functions.ts';
import { environmentFor, type ResourceValues } from '../../lambdas/needs.ts';
import { BaseFunction } from '../../lib/constructs/base-function.ts';

const outdir = mkdtempSync(join(tmpdir(), 'vmmig-bundle-'));
let handler: (event: unknown, context: unknown) => Promise<{ statusCode: number; body: string }>;
let bundleDir = '';
let savedEnv: NodeJS.ProcessEnv = {};

function event(path: string, userArn?: string) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'api.example.com' },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.com',
      http: { method: 'GET', path, protocol: 'HTTP/1.1', sourceIp: '192.0.2.1', userAgent: 'test' },
      requestId: 'r',
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2026:00:00:00 +0000',
      timeEpoch: 0,
      ...(userArn ? { authorizer: { iam: { userArn } } } : {}),
    },
    isBase64Encoded: false,
  };
}

beforeAll(async () => {
  const app = new App({ outdir });
  const stack = new Stack(app, 'Bundle', { env: { region: 'ap-northeast-1' } });
  new BaseFunction(stack, 'Api', {
    entry: 'lambdas/api/lambda.ts',
    description: 'bundle test',
    logRetention: 1,
  });
  app.synth();
  const code = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'))[0] as {
    Properties: { Handler: string; Code: { S3Key: string } };
  };
  expect(code.Properties.Handler).toBe('index.handler');
  bundleDir = join(outdir, `asset.${code.Properties.Code.S3Key.replace(/\.zip$/, '')}`);
  // What the Lambda runtime would see at start: the variables the stack sets.
  savedEnv = { ...process.env };
  // Exactly what the API function's declaration gives it (lambdas/needs.ts), as the stack does.
  Object.assign(
    process.env,
    environmentFor(API_FUNCTION.needs, {
      region: 'ap-northeast-1',
      tableNames: Object.fromEntries(
        TABLE_DEFINITIONS.map((d) => [d.id, `${d.id}-table`]),
      ) as ResourceValues['tableNames'],
      controlBucket: 'control',
      controlBucketRegion: 'ap-northeast-1',
      cacheBucketPrefix: 'vmmig-cn-123456789012-',
      edgeBaseUrl: 'https://d111.cloudfront.net',
      stateMachineArn: 'arn:aws:states:ap-northeast-1:123456789012:stateMachine:m',
      edgeKeyPairId: 'K2JCJMDEHXQW5F',
      edgePrivateKey: { secretArn: 'arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:k' },
      workQueuePrefix: 'vmmig-work-',
    }),
    { AWS_REGION: 'ap-northeast-1', [ENV.agentRolePrefix]: 'vmmig-agent-' },
  );
  ({ handler } = (await import(pathToFileURL(join(bundleDir, 'index.mjs')).href)) as {
    handler: typeof handler;
  });
}, 120_000);

afterAll(() => {
  process.env = savedEnv;
  rmSync(outdir, { recursive: true, force: true });
});

describe('API bundle', () => {
  it('is one ESM file with its source map, no node_modules', () => {
    expect(readdirSync(bundleDir).sort()).toEqual(['index.mjs', 'index.mjs.map']);
    expect(readFileSync(join(bundleDir, 'index.mjs'), 'utf8')).toMatch(/sourceMappingURL=index\.mjs\.map/);
  });

  it('answers GET /health without credentials', async () => {
    const res = await handler(event('/health'), {});
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ok' });
  });

  it('answers 401 when API Gateway passes no IAM caller', async () => {
    const res = await handler(event('/v1/cache-nodes'), {});
    expect(res.statusCode).toBe(401);
  });

  it('maps an agent role session to its data center (a foreign data center is refused)', async () => {
    const arn = 'arn:aws:sts::123456789012:assumed-role/vmmig-agent-dc-gz/agent-session';
    const res = await handler(event('/v1/data-centers/dc-sh', arn), {});
    expect(res.statusCode).toBe(403);
  });
});
