// Pre-flight estimate: before any upload, how much of an image the cache nodes already hold.
import { z } from '@hono/zod-openapi';
import { errorResponses, json, NodeId, route } from './common.ts';

export const MAX_ESTIMATE_CHUNKS = 5000;

const Amount = z.object({ chunks: z.int(), bytes: z.int() });

export const EstimateRequest = z
  .strictObject({
    destinationDataCenterId: NodeId,
    sourceDataCenterId: NodeId.optional(),
    chunks: z
      .array(
        z.strictObject({
          sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters'),
          length: z
            .int()
            .min(1)
            .max(8 * 1024 * 1024),
        }),
      )
      .min(1)
      .max(MAX_ESTIMATE_CHUNKS)
      .describe(
        'distinct non-zero chunks of the image (page larger images over several calls and add the answers)',
      ),
  })
  .openapi('EstimateRequest');

export const Estimate = z
  .object({
    chunks: z.int(),
    bytes: z.int(),
    source: z.object({ cacheNodeId: NodeId, cached: Amount }).optional(),
    destination: z.object({ cacheNodeId: NodeId, cached: Amount }),
    cachedAnywhere: Amount,
    toUpload: Amount.describe('held by no cache node: the source would upload these'),
    toCopy: Amount.describe(
      'missing at the destination cache node: copied between cache nodes (chunks held elsewhere, and, when the ' +
        "source's cache node is given and is another node, the chunks uploaded there)",
    ),
  })
  .openapi('Estimate');
export type Estimate = z.infer<typeof Estimate>;

export const createEstimate = route({
  operationId: 'createEstimate',
  method: 'post',
  path: '/v1/estimates',
  tags: ['migrations'],
  summary: 'How many bytes of an image the cache nodes already hold, per end, before any upload',
  request: { body: { content: { 'application/json': { schema: EstimateRequest } }, required: true } },
  responses: { 200: json(Estimate, 'The estimate'), ...errorResponses(404) },
});
