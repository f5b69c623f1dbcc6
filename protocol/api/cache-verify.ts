// `vmmig cache verify`: one bounded page of the walk that holds a cache node's content index against its bucket,
// in digest order, both ways (entries whose chunk is not stored right, stored chunks and packs no entry names).
import { z } from '@hono/zod-openapi';
import { errorResponses, json, pathId, route } from './common.ts';

export const MAX_VERIFY_LIMIT = 5000;
export const DEFAULT_VERIFY_LIMIT = 1000;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');

export const CacheVerifyRequest = z
  .strictObject({
    repair: z
      .boolean()
      .describe(
        'false: only report; true: also repair what this page finds (drop, index or delete, as each item says)',
      ),
    cursor: Sha256.optional().describe('nextCursor of the previous page; absent: from the first digest'),
    limit: z
      .int()
      .min(1)
      .max(MAX_VERIFY_LIMIT)
      .default(DEFAULT_VERIFY_LIMIT)
      .describe(
        'at most this many chunks stored alone and this many index entries are checked in this page, and a 64th ' +
          'as many packs (at least one)',
      ),
  })
  .openapi('CacheVerifyRequest');
export type CacheVerifyRequest = z.input<typeof CacheVerifyRequest>;

export const IndexedMissing = z
  .object({
    sha256: Sha256,
    length: z.int().describe("the entry's length"),
    reason: z
      .enum(['missing', 'mismatch'])
      .describe(
        'missing: the bucket does not hold the object the entry names (its pack, or the chunk stored alone); ' +
          'mismatch: it holds an object under its key whose length or SHA-256 checksum is not what the entry says',
      ),
    repaired: z
      .boolean()
      .describe(
        'the entry was dropped; on a mismatch the object was then deleted (bytes that are not the chunk, or not ' +
          'the pack) or, when it is the chunk after all (only the length was wrong), indexed again with its real ' +
          'length; a chunk a good pack holds intact is indexed again where the pack’s table of contents puts it',
      ),
  })
  .openapi('CacheVerifyIndexedMissing');

export const Unindexed = z
  .object({
    sha256: Sha256.describe('the digest of the chunk stored alone, or of the pack (`chunks` present)'),
    length: z.int().describe('the stored object’s size'),
    chunks: z.int().optional().describe('a pack: how many of its chunks no index entry at the node names'),
    action: z
      .enum(['index', 'delete'])
      .describe(
        'what repair does (or did): index an object whose S3 SHA-256 checksum is the digest of its key (a pack: ' +
          'the chunks it holds intact that no entry names, read back and hashed); delete any other (wrong bytes ' +
          'for its key, or no checksum; a pack that is not one, or every chunk of which is indexed in another ' +
          'object; a chunk stored alone whose entry names a pack that is there)',
      ),
    repaired: z.boolean(),
  })
  .openapi('CacheVerifyUnindexed');

export const CacheVerifyPage = z
  .object({
    cacheNodeId: z.string(),
    repair: z.boolean(),
    checked: z
      .object({
        entries: z.int().describe('index entries of the range, those being deleted included'),
        objects: z.int().describe('objects under chunks/ of the range: chunks stored alone and packs'),
      })
      .describe('what this page covered: digests after the cursor up to nextCursor (or the last digest)'),
    indexedMissing: z.array(IndexedMissing).describe('entries naming a chunk the bucket does not hold right'),
    unindexed: z
      .array(Unindexed)
      .describe('chunks stored alone that no entry names, and packs holding chunks no entry names'),
    deleting: z
      .int()
      .describe(
        'entries the cache collector is deleting right now: reported, never repaired (the collector finishes them)',
      ),
    repaired: z.object({
      dropped: z.int().describe('index entries removed'),
      indexed: z.int().describe('stored chunks recorded in the index (chunks of packs each counted)'),
      deleted: z.int().describe('objects deleted from the bucket'),
    }),
    nextCursor: Sha256.optional().describe('absent: this was the last page'),
  })
  .openapi('CacheVerifyPage');
export type CacheVerifyPage = z.infer<typeof CacheVerifyPage>;

export const verifyCacheNode = route({
  operationId: 'verifyCacheNode',
  method: 'post',
  path: '/v1/cache-nodes/{cacheNodeId}/verify',
  tags: ['cache'],
  summary: "Check (and repair) one page of a cache node's content index against its bucket (admin)",
  description:
    'Lists up to `limit` chunks stored alone and a 64th as many packs after the cursor (chunks by their digest, ' +
    'packs by theirs) and reads the index entries of the same digest range (up to `limit`; the range ends where ' +
    'the first list was cut off, and the last page runs to the last digest), then HEADs every entry’s object (a ' +
    'pack once for its entries) and every chunk stored alone no entry names, and reads each pack’s table of ' +
    'contents to look its chunks up. Entries whose object is missing or wrong are `indexedMissing`; chunks stored ' +
    'alone no entry names, and packs holding chunks no entry names, are `unindexed`; entries with `deleting` ' +
    'belong to the cache collector and are only counted (packs they name are left to it). With `repair`, each ' +
    "item is repaired as it says. Pages are bounded to stay within API Gateway's 29 seconds: call again with " +
    '`nextCursor` until it is absent.',
  request: {
    params: z.object({ cacheNodeId: pathId('cacheNodeId', 'hkg') }),
    body: { content: { 'application/json': { schema: CacheVerifyRequest } }, required: true },
  },
  responses: {
    200: json(CacheVerifyPage, 'What this page found and, with repair, did'),
    ...errorResponses(404),
  },
});
