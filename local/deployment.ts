// The local cloud as a deployment: the names its resources carry (the same scheme CDK names them by, in account
// 000000000000, so the IAM policies CDK synthesizes talk about them), and the runtime of each declared function —
// the variables environmentFor derives from its needs, and SDK clients signed with the function's own local
// credentials, by which the local servers know it and enforce its policy.
import { buildDeps, type DepsOf, type Runtime } from '../lambdas/aws/deps.ts';
import { TABLE_DEFINITIONS, type TableId } from '../lambdas/aws/tables.ts';
import { ENV } from '../lambdas/config.ts';
import {
  environmentFor,
  type FunctionDefinition,
  type Needs,
  type ResourceValues,
} from '../lambdas/needs.ts';
import { DeploymentNames } from '../protocol/deployment-names.ts';
import type { EdgeKeys } from './edge-keys.ts';
import { credentialsOf, type LocalPrincipal } from './iam/principals.ts';
import { localTableName } from './tables.ts';

export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_DEPLOYMENT = new DeploymentNames();

export const LOCAL_NAMES = {
  controlBucket: `${LOCAL_DEPLOYMENT.prefix}-control`,
  cacheBucketPrefix: LOCAL_DEPLOYMENT.cacheBucketPrefix(LOCAL_ACCOUNT),
  cacheBucket: (cacheNodeId: string) => LOCAL_DEPLOYMENT.cacheBucketName(LOCAL_ACCOUNT, cacheNodeId),
  stateMachine: LOCAL_DEPLOYMENT.stateMachineName,
  collectorStateMachine: LOCAL_DEPLOYMENT.collectorStateMachineName,
  workQueuePrefix: LOCAL_DEPLOYMENT.workQueuePrefix,
} as const;

export { credentialsOf, type LocalPrincipal, principalOfKey } from './iam/principals.ts';

export interface LocalServices {
  readonly region: string;
  readonly dynamodb: string;
  readonly s3: string;
  readonly stepFunctions: string;
  readonly sqs: string;
  readonly edge: string;
  readonly keys: EdgeKeys;
  readonly stateMachineArn: string;
}

export function localResourceValues(services: LocalServices): ResourceValues {
  return {
    region: services.region,
    tableNames: Object.fromEntries(TABLE_DEFINITIONS.map((d) => [d.id, localTableName(d)])) as Record<
      TableId,
      string
    >,
    controlBucket: LOCAL_NAMES.controlBucket,
    controlBucketRegion: services.region,
    cacheBucketPrefix: LOCAL_NAMES.cacheBucketPrefix,
    edgeBaseUrl: services.edge,
    stateMachineArn: services.stateMachineArn,
    edgeKeyPairId: services.keys.keyPairId,
    edgePrivateKey: { pem: services.keys.privateKeyPem },
    workQueuePrefix: LOCAL_NAMES.workQueuePrefix,
  };
}

function runtime(needs: Needs, principal: LocalPrincipal, services: LocalServices): Runtime {
  return {
    env: { AWS_REGION: services.region, ...environmentFor(needs, localResourceValues(services)) },
    clients: {
      region: services.region,
      credentials: credentialsOf(principal),
      endpoints: {
        dynamodb: services.dynamodb,
        s3: services.s3,
        sfn: services.stepFunctions,
        sqs: services.sqs,
      },
      s3ForcePathStyle: true,
    },
  };
}

/** The runtime of a declared function: its variables, its credentials. */
export function functionRuntime(definition: FunctionDefinition, services: LocalServices): Runtime {
  return runtime(definition.needs, { kind: 'function', name: definition.name }, services);
}

/** Everything there is to touch: what the local cloud itself may do (CloudFormation's and an administrator's part). */
const EVERYTHING = {
  tables: {
    Registry: 'readWrite',
    ContentMap: 'readWrite',
    LocationMap: 'readWrite',
    Migrations: 'readWrite',
    ContentIndex: 'readWrite',
  },
  control: { read: true, write: true, delete: true },
  chunks: { read: true, write: true, delete: true, list: true },
  executions: { start: true, stop: true, taskResponse: true },
  edge: { sign: true, invalidate: true },
  workQueues: { send: true, manage: true },
} as const satisfies Needs;

export type RootDeps = DepsOf<typeof EVERYTHING>;

/** Every adapter, as the local cloud itself (seeding the registry, tests looking inside). */
export function rootDeps(services: LocalServices): RootDeps {
  return buildDeps(EVERYTHING, runtime(EVERYTHING, { kind: 'root' }, services));
}

/**
 * The whole environment a declared function would see as a Lambda: its variables plus credentials and endpoints
 * in the SDK's standard variables (for running a Lambda entry module unchanged, as lambdas/api/lambda.ts).
 */
export function lambdaEnvironment(
  definition: FunctionDefinition,
  services: LocalServices,
): Record<string, string> {
  const { env, clients } = functionRuntime(definition, services);
  return {
    ...(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>),
    AWS_ACCESS_KEY_ID: clients.credentials?.accessKeyId ?? '',
    AWS_SECRET_ACCESS_KEY: clients.credentials?.secretAccessKey ?? '',
    AWS_ENDPOINT_URL_DYNAMODB: services.dynamodb,
    AWS_ENDPOINT_URL_S3: services.s3,
    AWS_ENDPOINT_URL_SFN: services.stepFunctions,
    AWS_ENDPOINT_URL_SQS: services.sqs,
    [ENV.s3ForcePathStyle]: 'true',
  };
}

/** Environment of a process (the S3 server, an agent) that must reach the local services as `principal`. */
export function principalEnvironment(principal: LocalPrincipal): Record<string, string> {
  const { accessKeyId, secretAccessKey } = credentialsOf(principal);
  return {
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    [ENV.s3ForcePathStyle]: 'true',
  };
}
