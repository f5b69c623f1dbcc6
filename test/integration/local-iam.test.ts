// The local cloud refuses what AWS refuses: every request to its S3, DynamoDB, SQS and Step Functions servers is
// authorized against the signer's policy as CDK synthesizes it, and a missing key answers 403 where the caller may
// not list the bucket (S3 directly, and through the edge as CloudFront with origin access control does).
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendTaskSuccessCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { CreateQueueCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsClients } from '../../lambdas/aws/clients.ts';
import { EdgeSigner } from '../../lambdas/aws/edge-signer.ts';
import { TASK_FUNCTIONS } from '../../lambdas/functions.ts';
import { credentialsOf, LOCAL_NAMES, type LocalPrincipal } from '../../local/deployment.ts';
import { loadOrCreateEdgeKeys } from '../../local/edge-keys.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';

let t: TestCloud;
beforeAll(async () => {
  t = await startTestCloud({ agents: false });
});
afterAll(() => t?.dispose());

const REGION = 'ap-northeast-1';
const as = (principal: LocalPrincipal) =>
  new AwsClients({
    region: REGION,
    credentials: credentialsOf(principal),
    endpoints: {
      dynamodb: t.cloud.endpoints.dynamodb,
      s3: t.cloud.endpoints.s3,
      sfn: t.cloud.endpoints.stepFunctions,
      sqs: t.cloud.endpoints.s3,
    },
    s3ForcePathStyle: true,
  });
const fn = (name: string): LocalPrincipal => ({ kind: 'function', name });
const statusOf = async (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode,
  );
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: Error) => err,
  );
const missing = 'chunks/00/'.concat('0'.repeat(64));

describe('S3', () => {
  const hkg = LOCAL_NAMES.cacheBucket('hkg');
  const head = (principal: LocalPrincipal, key: string) =>
    statusOf(
      as(principal)
        .s3(REGION)
        .send(new HeadObjectCommand({ Bucket: hkg, Key: key })),
    );

  it('answers a missing chunk 404 to a caller with s3:ListBucket (copy-batch) and 403 to one without (CloudFront)', async () => {
    expect(await head(fn(TASK_FUNCTIONS.copyBatch.name), missing)).toBe(404);
    expect(await head({ kind: 'cloudfront' }, missing)).toBe(403);
    const present = 'chunks/11/'.concat('1'.repeat(64));
    await t.cloud.root.clients
      .s3(REGION)
      .send(new PutObjectCommand({ Bucket: hkg, Key: present, Body: 'x' }));
    expect(await head({ kind: 'cloudfront' }, present)).toBe(200);
  });

  it('refuses a function its undeclared actions and an unknown key everything', async () => {
    const put = (principal: LocalPrincipal) =>
      statusOf(
        as(principal)
          .s3(REGION)
          .send(new PutObjectCommand({ Bucket: hkg, Key: missing, Body: 'x' })),
      );
    expect(await put(fn(TASK_FUNCTIONS.checkCache.name))).toBe(403);
    expect(await head(fn(TASK_FUNCTIONS.checkCache.name), missing)).toBe(403);
    const stranger = new AwsClients({
      region: REGION,
      credentials: { accessKeyId: 'AKIASTRANGER', secretAccessKey: 'x' },
      endpoints: { s3: t.cloud.endpoints.s3 },
      s3ForcePathStyle: true,
    });
    expect(
      await statusOf(stranger.s3(REGION).send(new HeadObjectCommand({ Bucket: hkg, Key: missing }))),
    ).toBe(403);
  });

  it('the edge answers a missing chunk 403, as CloudFront with origin access control does', async () => {
    const keys = loadOrCreateEdgeKeys(t.dataDir);
    const signer = new EdgeSigner(t.cloud.endpoints.edge, keys.keyPairId, async () => keys.privateKeyPem);
    const url = await signer.sign('hkg', missing, new Date(Date.now() + 60_000));
    expect((await fetch(url)).status).toBe(403);
  });
});

describe('DynamoDB', () => {
  it('refuses a table a function did not declare, and a write to a table it declared read-only', async () => {
    const get = (principal: LocalPrincipal, table: string) =>
      errorOf(
        as(principal)
          .dynamo()
          .send(
            new GetItemCommand({ TableName: table, Key: { cacheNodeId: { S: 'x' }, sha256: { S: 'y' } } }),
          ),
      );
    expect((await get(fn(TASK_FUNCTIONS.resolve.name), 'ContentIndex'))?.name).toBe('AccessDeniedException');
    expect(await get(fn(TASK_FUNCTIONS.copyBatch.name), 'ContentIndex')).toBeUndefined();
    const put = await errorOf(
      as(fn(TASK_FUNCTIONS.checkCache.name))
        .dynamo()
        .send(new PutItemCommand({ TableName: 'Registry', Item: { kind: { S: 'x' }, id: { S: 'y' } } })),
    );
    expect(put?.name).toBe('AccessDeniedException');
    expect(put?.message).toMatch(
      /dynamodb:PutItem on resource: arn:aws:dynamodb:ap-northeast-1:000000000000:table\/Registry/,
    );
  });
});

describe('Step Functions', () => {
  it('refuses StartExecution to a function without it, and answers tasks only for those that may', async () => {
    const start = (principal: LocalPrincipal) =>
      errorOf(
        as(principal)
          .sfn()
          .send(
            new StartExecutionCommand({
              stateMachineArn: t.cloud.stateMachineArn,
              name: 'iam-probe',
              input: '{}',
            }),
          ),
      );
    expect((await start(fn(TASK_FUNCTIONS.checkCache.name)))?.name).toBe('AccessDeniedException');
    // A well-formed token of a finished execution: who may answer gets the service's own answer, others are refused.
    const token = `sfnlocal.${Buffer.from(`${t.cloud.stateMachineArn.replace(':stateMachine:', ':execution:')}:gone`).toString('base64url')}.${'a'.repeat(64)}`;
    const answer = (principal: LocalPrincipal) =>
      errorOf(
        as(principal)
          .sfn()
          .send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' })),
      );
    expect((await answer(fn(TASK_FUNCTIONS.requestWork.name)))?.name).toBe('TaskDoesNotExist');
    expect((await answer(fn(TASK_FUNCTIONS.checkCache.name)))?.name).toBe('AccessDeniedException');
  });
});

describe('SQS', () => {
  it('refuses queue management to functions that did not declare it', async () => {
    const create = await errorOf(
      as(fn(TASK_FUNCTIONS.complete.name))
        .sqs()
        .send(new CreateQueueCommand({ QueueName: 'vmmig-work-x' })),
    );
    expect(create?.name).toBe('AccessDeniedException');
  });
});
