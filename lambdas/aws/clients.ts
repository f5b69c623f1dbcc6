// AWS SDK clients, created once per process from the environment. Endpoints come from the standard
// AWS_ENDPOINT_URL_<SERVICE> variables, so the same code talks to AWS or to the local cloud.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ENV, optionalEnv } from '../config.ts';

let documentClient: DynamoDBDocumentClient | undefined;
let sfnClient: SFNClient | undefined;
const s3Clients = new Map<string, S3Client>();

export function dynamo(): DynamoDBDocumentClient {
  documentClient ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return documentClient;
}

/** One S3 client per region: each cache node bucket lives in its own region. */
export function s3(region: string): S3Client {
  let client = s3Clients.get(region);
  if (!client) {
    client = new S3Client({ region, forcePathStyle: optionalEnv(ENV.s3ForcePathStyle) === 'true' });
    s3Clients.set(region, client);
  }
  return client;
}

export function sfn(): SFNClient {
  sfnClient ??= new SFNClient({});
  return sfnClient;
}
