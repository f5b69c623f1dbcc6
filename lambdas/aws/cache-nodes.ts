// Where a cache node's chunks live (bucket) and how the outside reaches it (edge address).
import { HeadBucketCommand, NotFound, type S3Client } from '@aws-sdk/client-s3';
import { ENV, type Env, requireEnv } from '../config.ts';
import type { BucketRef } from './chunk-storage.ts';

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

export function cacheNodeLocator(env: Env, s3: (region: string) => S3Client): CacheNodeLocator {
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
        // HeadBucket has no body, so S3's 404 arrives as the SDK's NotFound; 403 (no ListBucket) is thrown.
        if (err instanceof NotFound) return false;
        throw err;
      }
    },
  };
}
