// The local cloud's IAM evaluation: the decisions AWS documents for one account (explicit deny wins, then an allow
// from the identity or the resource policy, else implicit deny), on the policy shapes CDK synthesizes.
import { describe, expect, it } from 'vitest';
import { evaluate, type Statement } from '../../../local/iam/evaluate.ts';
import { dynamodbRequests, s3Requests, sqsRequests } from '../../../local/iam/requests.ts';

const role = { arn: 'arn:aws:iam::000000000000:role/fn' };
const chunks: Statement = {
  Effect: 'Allow',
  Action: ['s3:GetObject', 's3:PutObject'],
  Resource: ['arn:aws:s3:::vmmig-cn-000000000000-hkg/chunks/*'],
};
const tlsOnly: Statement = {
  Effect: 'Deny',
  Principal: { AWS: '*' },
  Action: 's3:*',
  Resource: ['arn:aws:s3:::b', 'arn:aws:s3:::b/*'],
  Condition: { Bool: { 'aws:SecureTransport': 'false' } },
};

describe('IAM evaluation', () => {
  it('allows what a statement names, wildcards spanning slashes, and nothing else', () => {
    const get = { action: 's3:GetObject', resource: 'arn:aws:s3:::vmmig-cn-000000000000-hkg/chunks/ab/cd' };
    expect(evaluate(role, get, [chunks])).toBe('Allowed');
    expect(evaluate(role, { ...get, action: 'S3:getobject' }, [chunks])).toBe('Allowed');
    expect(evaluate(role, { ...get, action: 's3:DeleteObject' }, [chunks])).toBe('ImplicitlyDenied');
    expect(
      evaluate(role, { action: 's3:ListBucket', resource: 'arn:aws:s3:::vmmig-cn-000000000000-hkg' }, [
        chunks,
      ]),
    ).toBe('ImplicitlyDenied');
    expect(
      evaluate(role, { ...get, resource: 'arn:aws:s3:::vmmig-cn-000000000000-hkg/other' }, [chunks]),
    ).toBe('ImplicitlyDenied');
  });

  it('lets an explicit deny of a resource policy win over an identity allow, by its condition', () => {
    const allow: Statement = { Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' };
    const get = { action: 's3:GetObject', resource: 'arn:aws:s3:::b/k' };
    expect(evaluate(role, { ...get, context: { 'aws:SecureTransport': 'true' } }, [allow], [tlsOnly])).toBe(
      'Allowed',
    );
    expect(evaluate(role, { ...get, context: { 'aws:securetransport': 'false' } }, [allow], [tlsOnly])).toBe(
      'ExplicitlyDenied',
    );
  });

  it('grants a service principal through the resource policy only with the right source', () => {
    const cloudfront: Statement = {
      Effect: 'Allow',
      Principal: { Service: 'cloudfront.amazonaws.com' },
      Action: 's3:GetObject',
      Resource: 'arn:aws:s3:::b/chunks/*',
      Condition: { StringEquals: { 'AWS:SourceArn': 'arn:aws:cloudfront::000000000000:distribution/D' } },
    };
    const caller = { service: 'cloudfront.amazonaws.com' };
    const get = { action: 's3:GetObject', resource: 'arn:aws:s3:::b/chunks/x' };
    const from = (arn: string) => ({ ...get, context: { 'aws:SourceArn': arn } });
    expect(evaluate(caller, from('arn:aws:cloudfront::000000000000:distribution/D'), [], [cloudfront])).toBe(
      'Allowed',
    );
    expect(evaluate(caller, from('arn:aws:cloudfront::000000000000:distribution/E'), [], [cloudfront])).toBe(
      'ImplicitlyDenied',
    );
    expect(evaluate(caller, get, [], [cloudfront])).toBe('ImplicitlyDenied');
    expect(evaluate(role, from('arn:aws:cloudfront::000000000000:distribution/D'), [], [cloudfront])).toBe(
      'ImplicitlyDenied',
    );
  });

  it('refuses to guess at a condition operator it does not understand', () => {
    const odd: Statement = { ...chunks, Condition: { DateGreaterThan: { 'aws:CurrentTime': '2020-01-01' } } };
    expect(() =>
      evaluate(
        role,
        { action: 's3:GetObject', resource: 'arn:aws:s3:::vmmig-cn-000000000000-hkg/chunks/x' },
        [odd],
      ),
    ).toThrow(/DateGreaterThan/);
  });
});

describe('what a request asks IAM for', () => {
  it('S3: object reads, writes, copies (both ends), deletes and bucket listings', () => {
    expect(s3Requests('HEAD', '/b/chunks/ab/cd', {}, {})).toEqual([
      { action: 's3:GetObject', resource: 'arn:aws:s3:::b/chunks/ab/cd' },
    ]);
    expect(
      s3Requests('PUT', '/to/chunks/x', {}, { 'x-amz-copy-source': '/from/chunks/x?versionId=1' }),
    ).toEqual([
      { action: 's3:PutObject', resource: 'arn:aws:s3:::to/chunks/x' },
      { action: 's3:GetObject', resource: 'arn:aws:s3:::from/chunks/x' },
    ]);
    expect(s3Requests('GET', '/b', { 'list-type': '2' }, {})).toEqual([
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::b' },
    ]);
    expect(s3Requests('DELETE', '/b/k', {}, {})).toEqual([
      { action: 's3:DeleteObject', resource: 'arn:aws:s3:::b/k' },
    ]);
  });

  it('DynamoDB: the table or index of each item, per operation of a transaction', () => {
    expect(dynamodbRequests('Query', { TableName: 'T', IndexName: 'byX' }, 'r', '1')).toEqual([
      { action: 'dynamodb:Query', resource: 'arn:aws:dynamodb:r:1:table/T/index/byX' },
    ]);
    expect(
      dynamodbRequests(
        'TransactWriteItems',
        { TransactItems: [{ Put: { TableName: 'A' } }, { ConditionCheck: { TableName: 'B' } }] },
        'r',
        '1',
      ),
    ).toEqual([
      { action: 'dynamodb:PutItem', resource: 'arn:aws:dynamodb:r:1:table/A' },
      { action: 'dynamodb:ConditionCheckItem', resource: 'arn:aws:dynamodb:r:1:table/B' },
    ]);
    expect(
      dynamodbRequests('BatchGetItem', { RequestItems: { A: {}, B: {} } }, 'r', '1').map((r) => r.resource),
    ).toEqual(['arn:aws:dynamodb:r:1:table/A', 'arn:aws:dynamodb:r:1:table/B']);
  });

  it('SQS: the queue by name or URL', () => {
    expect(sqsRequests('ReceiveMessage', { QueueUrl: 'http://h:1/000000000000/q-1' }, 'r', '1')).toEqual([
      { action: 'sqs:ReceiveMessage', resource: 'arn:aws:sqs:r:1:q-1' },
    ]);
    expect(sqsRequests('CreateQueue', { QueueName: 'q-2' }, 'r', '1')).toEqual([
      { action: 'sqs:CreateQueue', resource: 'arn:aws:sqs:r:1:q-2' },
    ]);
  });
});
