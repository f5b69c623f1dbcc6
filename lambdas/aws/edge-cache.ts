// The CDN's cache of chunks. Chunks are immutable, so CloudFront caches them for a year; when a chunk had to be
// repaired (its bytes damaged in storage or in a cache) its cached copy is invalidated. The local edge has no
// cache, so without a distribution id this does nothing.
import { CreateInvalidationCommand } from '@aws-sdk/client-cloudfront';
import type { AwsClients } from './clients.ts';

export interface EdgeCache {
  invalidate(cacheNodeId: string, key: string): Promise<void>;
}

export function edgeCache(distributionId: string | undefined, clients: AwsClients): EdgeCache {
  if (!distributionId) return { invalidate: async () => {} };
  const client = clients.cloudfront();
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
