// The CDN's cache of chunks. Chunks are immutable, so CloudFront caches them for a year; when a chunk had to be
// repaired (its bytes damaged in storage or in a cache) its cached copy is invalidated. The local edge has no
// cache, so without a distribution id this does nothing.
import { CloudFrontClient, CreateInvalidationCommand } from '@aws-sdk/client-cloudfront';

export interface EdgeCache {
  invalidate(cacheNodeId: string, key: string): Promise<void>;
}

export function edgeCache(distributionId: string | undefined): EdgeCache {
  if (!distributionId) return { invalidate: async () => {} };
  const client = new CloudFrontClient({});
  return {
    async invalidate(cacheNodeId, key) {
      await client.send(
        new CreateInvalidationCommand({
          DistributionId: distributionId,
          InvalidationBatch: {
            CallerReference: `${cacheNodeId}/${key}@${Date.now()}`,
            Paths: { Quantity: 1, Items: [`/${cacheNodeId}/${key}`] },
          },
        }),
      );
    },
  };
}
