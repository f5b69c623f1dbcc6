// Runtime configuration from the environment, read through one helper that names what is missing.
// The same variables are set by the CDK stacks (lib/) and by the local cloud (local/).

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** An environment: process.env on Lambda, the function's own variables in the local cloud. */
export type Env = Readonly<Record<string, string | undefined>>;

export function requireEnv(name: string, env: Env = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new ConfigError(`environment variable ${name} is not set`);
  }
  return value;
}

export function optionalEnv(name: string, env: Env = process.env): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Environment variable names, one place: the stacks and the local cloud set exactly these. */
export const ENV = {
  tableRegistry: 'TABLE_REGISTRY',
  tableContentMap: 'TABLE_CONTENT_MAP',
  tableLocationMap: 'TABLE_LOCATION_MAP',
  tableMigrations: 'TABLE_MIGRATIONS',
  tableContentIndex: 'TABLE_CONTENT_INDEX',
  controlBucket: 'CONTROL_BUCKET',
  controlBucketRegion: 'CONTROL_BUCKET_REGION',
  cacheBucketPrefix: 'CACHE_BUCKET_PREFIX',
  stateMachineArn: 'STATE_MACHINE_ARN',
  edgeBaseUrl: 'EDGE_BASE_URL',
  edgeKeyPairId: 'EDGE_KEY_PAIR_ID',
  edgePrivateKeyPem: 'EDGE_PRIVATE_KEY_PEM',
  edgePrivateKeySecretArn: 'EDGE_PRIVATE_KEY_SECRET_ARN',
  /** CloudFront distribution whose cached chunks a repair invalidates (absent locally). */
  edgeDistributionId: 'EDGE_DISTRIBUTION_ID',
  s3ForcePathStyle: 'S3_FORCE_PATH_STYLE',
  /** The work queue (SQS) of data center X is named this + X. */
  workQueuePrefix: 'WORK_QUEUE_PREFIX',
  adminPrincipalArns: 'ADMIN_PRINCIPAL_ARNS',
  agentRolePrefix: 'AGENT_ROLE_PREFIX',
  /** Agent roles are accepted only from this account (set by the stack to its own account). */
  agentAccountId: 'AGENT_ACCOUNT_ID',
} as const;
