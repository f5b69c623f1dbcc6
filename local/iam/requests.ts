// What an AWS request asks IAM for: the action(s) and resource ARN(s) of an S3, DynamoDB, SQS or Step Functions
// request, as the Service Authorization Reference defines them for the operations our code and tests make. The
// Gate puts it together: who signed (principals.ts), what is asked (here), what the policy says (policies.ts).
import { type Authorizer, type AuthPrincipal, type AuthRequest, accessDeniedMessage } from './policies.ts';
import { principalOfKey, signedCredential } from './principals.ts';

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;
type Query = Readonly<Record<string, string | undefined>>;

const header = (headers: Headers, name: string): string | undefined => {
  const v = headers[name];
  return typeof v === 'string' ? v : v?.[0];
};

/** S3, path style (`/<bucket>/<key>`). */
export function s3Requests(method: string, path: string, query: Query, headers: Headers): AuthRequest[] {
  const [rawBucket = '', ...rest] = path.replace(/^\//, '').split('?')[0]?.split('/') ?? [];
  const bucket = decodeURIComponent(rawBucket);
  const key = rest.length > 0 ? decodeURIComponent(rest.join('/')) : '';
  const object = `arn:aws:s3:::${bucket}/${key}`;
  const bucketArn = `arn:aws:s3:::${bucket}`;
  if (bucket === '') return [{ action: 's3:ListAllMyBuckets', resource: '*' }];
  if (key === '') {
    switch (method) {
      case 'GET':
      case 'HEAD':
        return [{ action: 's3:ListBucket', resource: bucketArn }];
      case 'PUT':
        return [{ action: 's3:CreateBucket', resource: bucketArn }];
      case 'DELETE':
        return [{ action: 's3:DeleteBucket', resource: bucketArn }];
      case 'POST':
        // DeleteObjects: each key needs DeleteObject; without reading the body, ask for all of them.
        if ('delete' in query) return [{ action: 's3:DeleteObject', resource: `${bucketArn}/*` }];
        return [{ action: 's3:PostObject', resource: bucketArn }];
    }
    return [{ action: `s3:${method}Bucket`, resource: bucketArn }];
  }
  switch (method) {
    case 'GET':
    case 'HEAD':
      return [{ action: 's3:GetObject', resource: object }];
    case 'PUT': {
      const source = header(headers, 'x-amz-copy-source');
      if (source === undefined) return [{ action: 's3:PutObject', resource: object }];
      const from = decodeURIComponent(source.split('?')[0] ?? '').replace(/^\//, '');
      return [
        { action: 's3:PutObject', resource: object },
        { action: 's3:GetObject', resource: `arn:aws:s3:::${from}` },
      ];
    }
    case 'POST':
      return [{ action: 's3:PutObject', resource: object }];
    case 'DELETE':
      if ('uploadId' in query) return [{ action: 's3:AbortMultipartUpload', resource: object }];
      return [{ action: 's3:DeleteObject', resource: object }];
  }
  return [{ action: `s3:${method}Object`, resource: object }];
}

type Body = Readonly<Record<string, unknown>>;

/** DynamoDB JSON 1.0 (`X-Amz-Target: DynamoDB_20120810.<Operation>`). */
export function dynamodbRequests(
  operation: string,
  body: Body,
  region: string,
  account: string,
): AuthRequest[] {
  const table = (name: unknown, index?: unknown) =>
    `arn:aws:dynamodb:${region}:${account}:table/${String(name)}${index ? `/index/${String(index)}` : ''}`;
  switch (operation) {
    case 'ListTables':
      return [{ action: 'dynamodb:ListTables', resource: '*' }];
    case 'BatchGetItem':
    case 'BatchWriteItem':
      return Object.keys((body['RequestItems'] as object | undefined) ?? {}).map((name) => ({
        action: `dynamodb:${operation}`,
        resource: table(name),
      }));
    case 'TransactWriteItems': {
      const kinds = {
        ConditionCheck: 'ConditionCheckItem',
        Put: 'PutItem',
        Update: 'UpdateItem',
        Delete: 'DeleteItem',
      };
      return ((body['TransactItems'] as Record<string, { TableName?: string }>[] | undefined) ?? []).flatMap(
        (item) =>
          Object.entries(kinds)
            .filter(([k]) => item[k] !== undefined)
            .map(([k, action]) => ({ action: `dynamodb:${action}`, resource: table(item[k]?.TableName) })),
      );
    }
    case 'TransactGetItems':
      return ((body['TransactItems'] as { Get?: { TableName?: string } }[] | undefined) ?? []).map(
        (item) => ({
          action: 'dynamodb:GetItem',
          resource: table(item.Get?.TableName),
        }),
      );
    default:
      return [{ action: `dynamodb:${operation}`, resource: table(body['TableName'], body['IndexName']) }];
  }
}

/** SQS JSON 1.0 (`X-Amz-Target: AmazonSQS.<Operation>`). */
export function sqsRequests(operation: string, body: Body, region: string, account: string): AuthRequest[] {
  const queue = (name: string) => `arn:aws:sqs:${region}:${account}:${name}`;
  if (operation === 'ListQueues') return [{ action: 'sqs:ListQueues', resource: '*' }];
  const name =
    typeof body['QueueName'] === 'string'
      ? body['QueueName']
      : typeof body['QueueUrl'] === 'string'
        ? (body['QueueUrl'].split('/').pop() ?? '')
        : '';
  // Batch operations are authorized as their single forms.
  const action = operation.replace(/Batch$/, '');
  return [{ action: `sqs:${action}`, resource: queue(name) }];
}

export type GateVerdict =
  | { readonly ok: true; readonly principal: AuthPrincipal }
  | { readonly ok: false; readonly status: 400 | 403; readonly code: string; readonly message: string };

/** Identifies the signer of a request and checks each of its authorization requests. */
export class Gate {
  constructor(readonly authorizer: Authorizer) {}

  check(headers: Headers, query: Query, requests: (region: string) => AuthRequest[]): GateVerdict {
    const credential = signedCredential(headers, query);
    const principal = credential ? principalOfKey(credential.accessKeyId) : undefined;
    if (!credential || !principal) {
      return {
        ok: false,
        status: 403,
        code: 'InvalidClientTokenId',
        message: `The security token included in the request is invalid (access key ${credential?.accessKeyId ?? 'none'}).`,
      };
    }
    for (const request of requests(credential.region ?? 'us-east-1')) {
      const decision = this.authorizer.decide(principal, request);
      if (decision !== 'Allowed') {
        return {
          ok: false,
          status: 403,
          code: 'AccessDenied',
          message: accessDeniedMessage(this.authorizer.describe(principal), request, decision),
        };
      }
    }
    return { ok: true, principal };
  }
}
