// `vmmig cache verify`: one bounded page of the walk that holds a cache node's content index against its bucket.
// An entry whose chunk is missing or wrong is dropped (migrations would otherwise rely on it); a stored chunk no
// entry names is indexed when S3 vouches for its bytes, deleted when not. Entries being deleted by the collector are
// its business: counted, never touched.
import * as api from '../../../protocol/api/cache-verify.ts';
import { bucketRef } from '../../aws/cache-nodes.ts';
import type { ListedChunk } from '../../aws/chunk-storage.ts';
import type { IndexEntry } from '../../aws/content-index.ts';
import { pageRange, splitPage } from '../../domain/cache-verify.ts';
import { mapLimit } from '../../domain/concurrency.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { requireAdmin } from '../principal.ts';

const HEAD_CONCURRENCY = 16;

type IndexedMissing = api.CacheVerifyPage['indexedMissing'][number];
type Unindexed = api.CacheVerifyPage['unindexed'][number];

export function cacheVerifyRoutes(deps: ApiDeps) {
  const { registry, storage, contentIndex } = deps;

  /** Index entries after `after` (up to `upTo`), at most `limit`, over as many queries as DynamoDB needs. */
  const readEntries = async (
    cacheNodeId: string,
    after: string | undefined,
    upTo: string | undefined,
    limit: number,
  ) => {
    const items: IndexEntry[] = [];
    let from = after;
    while (items.length < limit) {
      const page = await contentIndex.entries(cacheNodeId, {
        limit: limit - items.length,
        ...(from ? { after: from } : {}),
        ...(upTo ? { upTo } : {}),
      });
      items.push(...page.items);
      if (!page.last) return { items, truncated: false };
      from = page.last;
    }
    return { items, truncated: true };
  };

  return router().openapi(api.verifyCacheNode, async (c) => {
    requireAdmin(c.get('principal'));
    const { cacheNodeId } = c.req.valid('param');
    const { repair, cursor, limit } = c.req.valid('json');
    const node = await registry.requireCacheNode(cacheNodeId);
    const bucket = bucketRef(node);

    // Objects first, then entries: an entry recorded in between names an object that exists (it is HEADed, not
    // judged by the listing), and an object the collector deleted in between answers its HEAD with 404.
    const listed = await storage.listChunks(bucket, { ...(cursor ? { after: cursor } : {}), limit });
    const lastListed = listed.truncated ? listed.chunks.at(-1)?.sha256 : undefined;
    const read = await readEntries(cacheNodeId, cursor, lastListed, limit);
    const range = pageRange({ items: listed.chunks, truncated: listed.truncated }, read);
    const { check, deleting, unindexed } = splitPage(range.objects, range.entries);

    const repaired = { dropped: 0, indexed: 0, deleted: 0 };
    /** A stored object no entry names (any more): indexed when it is the chunk its key names, else deleted. */
    const settleObject = async (sha256: string, length: number, checksumMatches: boolean) => {
      if (!checksumMatches) {
        await storage.deleteChunk(bucket, sha256);
        repaired.deleted++;
        return true;
      }
      // Refused: the collector began deleting it meanwhile, and finishes that.
      const out = await contentIndex.record(cacheNodeId, [{ sha256, length }]);
      if (out.refused.length > 0) return false;
      repaired.indexed++;
      return true;
    };

    const checkEntry = async (e: IndexEntry): Promise<IndexedMissing | undefined> => {
      const head = await storage.headChunk(bucket, e.sha256);
      if (head?.checksumMatches && head.length === e.length) return undefined;
      const reason = head ? ('mismatch' as const) : ('missing' as const);
      if (!repair) return { sha256: e.sha256, length: e.length, reason, repaired: false };
      const dropped = await contentIndex.remove(cacheNodeId, e.sha256);
      // Already gone (the collector finished it since the read) and nothing stored: nothing was wrong.
      if (!dropped && !head) return undefined;
      if (dropped) repaired.dropped++;
      const done = head ? await settleObject(e.sha256, head.length, head.checksumMatches) : true;
      return { sha256: e.sha256, length: e.length, reason, repaired: done };
    };

    const checkObject = async (o: ListedChunk): Promise<Unindexed | undefined> => {
      const head = await storage.headChunk(bucket, o.sha256);
      // Gone since the listing (the collector finished it): nothing is wrong.
      if (!head) return undefined;
      const action = head.checksumMatches ? ('index' as const) : ('delete' as const);
      const done = repair ? await settleObject(o.sha256, head.length, head.checksumMatches) : false;
      return { sha256: o.sha256, length: head.length, action, repaired: done };
    };

    // One pool for both kinds of HEAD: a page takes about (its HEADs / 16) round trips. Results keep digest order.
    const missing: (IndexedMissing | undefined)[] = [];
    const stray: (Unindexed | undefined)[] = [];
    const checks = [
      ...check.map((e, i) => async () => {
        missing[i] = await checkEntry(e);
      }),
      ...unindexed.map((o, i) => async () => {
        stray[i] = await checkObject(o);
      }),
    ];
    await mapLimit(checks, HEAD_CONCURRENCY, (run) => run());
    const body: api.CacheVerifyPage = {
      cacheNodeId,
      repair,
      checked: { entries: range.entries.length, objects: range.objects.length },
      indexedMissing: missing.filter((x) => x !== undefined),
      unindexed: stray.filter((x) => x !== undefined),
      deleting: deleting.length,
      repaired,
      ...(range.end ? { nextCursor: range.end } : {}),
    };
    return c.json(body, 200);
  });
}
