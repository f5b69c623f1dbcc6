// Where a cache node's chunks live (bucket) and how the outside reaches it (edge address).
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { ENV, requireEnv } from '../config.ts';
import type { BucketRef } from './chunk-storage.ts';
import { s3 } from './clients.ts';

export interface CacheNodeLocator {
  /** The bucket that holds a cache node's chunks (deterministic from the id). */
  bucketFor(cacheNodeId: string): string;
  /** The edge base URL of a cache node (draft Table 1 "CCN IP addr."). */
  address(cacheNodeId: string): string;
  bucketExists(bucket: string, region: string): Promise<boolean>;
}

export const bucketRef = (node: { readonly bucket: string; readonly region: string }): BucketRef => ({
  bucket: node.bucket,
  region: node.region,
});

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
        if (status === 404 || ['NotFound', 'NoSuchBucket'].includes((err as Error).name)) return false;
        throw err;
      }
    },
  };
}
