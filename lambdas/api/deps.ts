// What the API needs from the outside world, and how to build it from the environment.
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { dynamo, s3 } from '../aws/clients.ts';
import { MappingStore } from '../aws/mapping-store.ts';
import { RegistryStore } from '../aws/registry-store.ts';
import { ENV, requireEnv, tableNamesFromEnv } from '../config.ts';
import type { Authenticate } from './principal.ts';

export interface CacheNodeLocator {
  /** The bucket that holds a cache node's chunks (deterministic from the id). */
  bucketFor(cacheNodeId: string): string;
  /** The edge base URL of a cache node (draft Table 1 "CCN IP addr."). */
  address(cacheNodeId: string): string;
  bucketExists(bucket: string, region: string): Promise<boolean>;
}

export interface ApiDeps {
  readonly registry: RegistryStore;
  readonly mapping: MappingStore;
  readonly cacheNodes: CacheNodeLocator;
  readonly authenticate: Authenticate;
}

export function cacheNodeLocatorFromEnv(env: NodeJS.ProcessEnv = process.env): CacheNodeLocator {
  const prefix = requireEnv(ENV.cacheBucketPrefix, env);
  const edge = requireEnv(ENV.edgeBaseUrl, env).replace(/\/+$/, '');
  return {
    bucketFor: (id) => `${prefix}${id}`,
    address: (id) => `${edge}/${id}/`,
    async bucketExists(bucket, region) {
      try {
        await s3(region).send(new HeadBucketCommand({ Bucket: bucket }));
        return true;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404 || (err as Error).name === 'NotFound' || (err as Error).name === 'NoSuchBucket')
          return false;
        throw err;
      }
    },
  };
}

export function apiDepsFromEnv(authenticate: Authenticate, env: NodeJS.ProcessEnv = process.env): ApiDeps {
  const tables = tableNamesFromEnv(env);
  return {
    registry: new RegistryStore(dynamo(), tables.registry),
    mapping: new MappingStore(dynamo(), tables),
    cacheNodes: cacheNodeLocatorFromEnv(env),
    authenticate,
  };
}
