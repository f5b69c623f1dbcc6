// AWS SDK clients of one function, created lazily from its client configuration. On Lambda the configuration is
// empty: the SDK takes region, credentials and endpoints from the environment. The local cloud gives each function
// its own credentials (the local servers know the function by them and enforce its IAM policy) and endpoints.
import { CloudFrontClient } from '@aws-sdk/client-cloudfront';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export interface ClientConfig {
  /** Default: AWS_REGION. */
  readonly region?: string;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Per service; default: the SDK's (AWS_ENDPOINT_URL_<SERVICE>, or AWS). */
  readonly endpoints?: {
    readonly dynamodb?: string;
    readonly s3?: string;
    readonly sfn?: string;
    readonly sqs?: string;
  };
  readonly s3ForcePathStyle?: boolean;
}

export class AwsClients {
  #dynamo: DynamoDBDocumentClient | undefined;
  #sfn: SFNClient | undefined;
  #sqs: SQSClient | undefined;
  #secrets: SecretsManagerClient | undefined;
  #cloudfront: CloudFrontClient | undefined;
  readonly #s3 = new Map<string, S3Client>();

  constructor(readonly config: ClientConfig = {}) {}

  #common(endpoint: string | undefined, region = this.config.region) {
    return {
      ...(region ? { region } : {}),
      ...(this.config.credentials ? { credentials: { ...this.config.credentials } } : {}),
      ...(endpoint ? { endpoint } : {}),
    };
  }

  dynamo(): DynamoDBDocumentClient {
    this.#dynamo ??= DynamoDBDocumentClient.from(
      new DynamoDBClient(this.#common(this.config.endpoints?.dynamodb)),
      { marshallOptions: { removeUndefinedValues: true } },
    );
    return this.#dynamo;
  }

  /** One S3 client per region: each cache node bucket lives in its own region. */
  s3(region: string): S3Client {
    let client = this.#s3.get(region);
    if (!client) {
      client = new S3Client({
        ...this.#common(this.config.endpoints?.s3, region),
        forcePathStyle: this.config.s3ForcePathStyle ?? false,
      });
      this.#s3.set(region, client);
    }
    return client;
  }

  sfn(): SFNClient {
    this.#sfn ??= new SFNClient(this.#common(this.config.endpoints?.sfn));
    return this.#sfn;
  }

  sqs(): SQSClient {
    this.#sqs ??= new SQSClient(this.#common(this.config.endpoints?.sqs));
    return this.#sqs;
  }

  secrets(): SecretsManagerClient {
    this.#secrets ??= new SecretsManagerClient(this.#common(undefined));
    return this.#secrets;
  }

  cloudfront(): CloudFrontClient {
    this.#cloudfront ??= new CloudFrontClient(this.#common(undefined, 'us-east-1'));
    return this.#cloudfront;
  }
}
