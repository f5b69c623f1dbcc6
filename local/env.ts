// The environment the local cloud gives its in-process Lambda code: the same variables the CDK stacks set,
// pointing at the local servers.
import { ENV } from '../lambdas/config.ts';
import type { Topology } from '../protocol/topology.ts';
import type { EdgeKeys } from './edge-keys.ts';
import { localTableEnv } from './tables.ts';

export const LOCAL_NAMES = {
  controlBucket: 'vmmig-control',
  cacheBucketPrefix: 'vmmig-cache-',
  cacheBucket: (cacheNodeId: string) => `vmmig-cache-${cacheNodeId}`,
  stateMachine: 'migration',
} as const;

export function localEnv(args: {
  readonly topology: Topology;
  readonly dynamodb: string;
  readonly s3: string;
  readonly stepFunctions: string;
  readonly edge: string;
  readonly keys: EdgeKeys;
}): Record<string, string> {
  return {
    AWS_REGION: args.topology.homeRegion,
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: args.dynamodb,
    AWS_ENDPOINT_URL_S3: args.s3,
    AWS_ENDPOINT_URL_SFN: args.stepFunctions,
    [ENV.s3ForcePathStyle]: 'true',
    ...localTableEnv(),
    [ENV.controlBucket]: LOCAL_NAMES.controlBucket,
    [ENV.controlBucketRegion]: args.topology.homeRegion,
    [ENV.cacheBucketPrefix]: LOCAL_NAMES.cacheBucketPrefix,
    [ENV.edgeBaseUrl]: args.edge,
    [ENV.edgeKeyPairId]: args.keys.keyPairId,
    [ENV.edgePrivateKeyPem]: args.keys.privateKeyPem,
  };
}
