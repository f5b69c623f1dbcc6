// Chunk repair (agent protocol): a destination agent that received a chunk failing verification asks the API to
// look at the copy its cache node holds. A corrupt copy is deleted and copied again from another cache node that
// holds an intact one; the agent gets a fresh signed URL, or a 409 naming why no intact copy exists.
import { z } from '@hono/zod-openapi';
import { StoredPart } from './agent.ts';
import { errorResponses, json, NodeId, pathId, route, Timestamp } from './common.ts';
import { MigrationId } from './migrations.ts';

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');

export const ChunkRepairRequest = z
  .strictObject({ sha256: Sha256.describe('the chunk that failed verification (or was not found)') })
  .openapi('ChunkRepairRequest');

export const ChunkRepair = z
  .object({
    sha256: Sha256,
    cacheNodeId: NodeId.describe("the destination's cache node"),
    status: z
      .enum(['intact', 'repaired'])
      .describe(
        'intact: the stored copy hashes right (the bytes were damaged on the way; fetch again); repaired: it was ' +
          'corrupt or missing and has been copied again from another cache node',
      ),
    repairedFrom: NodeId.optional().describe('repaired: the cache node the intact copy came from'),
    url: z.string().describe('a fresh signed edge URL for the chunk'),
    part: StoredPart.optional().describe(
      'the chunk is this range of the object at url (a pack); absent: the whole object, raw',
    ),
    expiresAt: Timestamp,
  })
  .openapi('ChunkRepair');
export type ChunkRepair = z.infer<typeof ChunkRepair>;

export const repairChunk = route({
  operationId: 'repairChunk',
  method: 'post',
  path: '/v1/migrations/{migrationId}/destinations/{dataCenterId}/repair',
  tags: ['agent'],
  summary: 'Check and repair a chunk at the destination cache node (destination agent)',
  description:
    "Reads the chunk at the destination's cache node and hashes it (a HEAD only sees the checksum recorded at " +
    'upload, not a flipped bit). A corrupt or missing copy is deleted and dropped from the content index, then ' +
    'copied again from the nearest cache node whose copy reads back intact (corrupt copies found on the way are ' +
    'deleted too), and checked by reading it back. 409 when no cache node holds an intact copy: the migration ' +
    'fails that destination, and a retry uploads the chunk again.',
  request: {
    params: z.object({
      migrationId: MigrationId.openapi({ param: { name: 'migrationId', in: 'path' } }),
      dataCenterId: pathId('dataCenterId', 'dc-osa'),
    }),
    body: { content: { 'application/json': { schema: ChunkRepairRequest } }, required: true },
  },
  responses: {
    200: json(ChunkRepair, 'The chunk is intact at the cache node: fetch it again with this URL'),
    ...errorResponses(404, 409),
  },
});
