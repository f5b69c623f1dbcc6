// `vmmig cache verify`: one bounded page of the walk that holds a cache node's content index against its bucket.
// An entry whose object (its pack, or the chunk stored alone) is missing or wrong is dropped (migrations would
// otherwise rely on it); a stored chunk no entry names is indexed when S3 vouches for its bytes, deleted when not; a
// pack some of whose chunks no entry names has its intact chunks indexed (read back whole, every chunk decoded and
// hashed), and one no entry needs is deleted. Entries being deleted by the collector, and packs they name, are its
// business: counted, never touched.
import * as api from '../../../protocol/api/cache-verify.ts';
import { type PackEntry, PackFormatError } from '../../../protocol/pack.ts';
import { bucketRef } from '../../aws/cache-nodes.ts';
import type { ListedChunk, PackRead } from '../../aws/chunk-storage.ts';
import type { IndexEntry } from '../../aws/content-index.ts';
import { packVerdict, pageRange, splitPage } from '../../domain/cache-verify.ts';
import { mapLimit } from '../../domain/concurrency.ts';
import { byObject, objectStates } from '../../domain/stored-objects.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { requireAdmin } from '../principal.ts';

const HEAD_CONCURRENCY = 16;
/**
 * A pack holds 64 chunks or more (several MiB of chunks of tens to hundreds of KiB): a page lists this many times
 * fewer packs than entries, so that the walk over packs keeps pace with the walk over entries, and a page reads at
 * most a few hundred MiB of packs back when it repairs (API Gateway's 29 seconds).
 */
export const CHUNKS_PER_PACK = 64;

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
    const after = cursor ? { after: cursor } : {};
    const [listed, packs] = await Promise.all([
      storage.listChunks(bucket, { ...after, limit }),
      storage.listPacks(bucket, { ...after, limit: Math.max(1, Math.ceil(limit / CHUNKS_PER_PACK)) }),
    ]);
    const cutAt = [
      listed.truncated ? listed.chunks.at(-1)?.sha256 : undefined,
      packs.truncated ? packs.packs.at(-1)?.sha256 : undefined,
    ]
      .filter((d): d is string => d !== undefined)
      .sort()[0];
    const read = await readEntries(cacheNodeId, cursor, cutAt, limit);
    const range = pageRange({ items: listed.chunks, truncated: listed.truncated }, read, {
      items: packs.packs,
      truncated: packs.truncated,
    });
    const { check, deleting, unindexed, superseded } = splitPage(range.objects, range.entries);

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
    /** Packs read back whole in this page (each at most once, whoever asks). */
    const reads = new Map<string, Promise<PackRead>>();
    const readPack = (pack: string) => {
      let r = reads.get(pack);
      if (!r) {
        r = storage.readPack(bucket, pack);
        reads.set(pack, r);
      }
      return r;
    };
    /** Packs deleted in this page (whoever found them first). */
    const deletedPacks = new Set<string>();
    /** Deletes a pack that is not one, or that nothing needs: the entries naming it go first. */
    const deletePack = async (pack: string, naming: readonly string[]) => {
      for (const sha256 of naming) if (await contentIndex.remove(cacheNodeId, sha256)) repaired.dropped++;
      if (deletedPacks.has(pack)) return true;
      deletedPacks.add(pack);
      await storage.deleteObject(bucket, { sha256: pack, length: 0, pack });
      repaired.deleted++;
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

    /**
     * Entries naming one pack: the pack is HEADed once for them all. An entry whose pack is missing is dropped; one
     * whose pack is not what its key names is dropped and the pack deleted; one that names the wrong place in a
     * good pack is dropped and indexed again where the pack's table of contents puts the chunk, if it holds it intact.
     */
    const checkPackEntries = async (
      entries: readonly IndexEntry[],
    ): Promise<(IndexedMissing | undefined)[]> => {
      const states = await objectStates(entries, 1, (e) => storage.objectState(bucket, e));
      return mapLimit(entries, 1, async (e, n) => {
        const state = states[n];
        if (state === 'present') return undefined;
        const reason = state === 'missing' ? ('missing' as const) : ('mismatch' as const);
        if (!repair) return { sha256: e.sha256, length: e.length, reason, repaired: false };
        const dropped = await contentIndex.remove(cacheNodeId, e.sha256);
        if (!dropped && state === 'missing') return undefined;
        if (dropped) repaired.dropped++;
        if (state === 'missing') return { sha256: e.sha256, length: e.length, reason, repaired: true };
        const pack = e.pack as string;
        const read = await readPack(pack);
        if (read.state === 'corrupt') {
          // Not the pack its key names: every entry naming it is as wrong as this one (each is dropped when checked).
          await deletePack(pack, []);
          return { sha256: e.sha256, length: e.length, reason, repaired: true };
        }
        const intact: PackEntry | undefined =
          read.state === 'read' ? read.intact.find((x) => x.sha256 === e.sha256) : undefined;
        if (intact === undefined) return { sha256: e.sha256, length: e.length, reason, repaired: true };
        const out = await contentIndex.record(cacheNodeId, [intact]);
        if (out.refused.length === 0) repaired.indexed++;
        return { sha256: e.sha256, length: e.length, reason, repaired: out.refused.length === 0 };
      });
    };

    const checkObject = async (o: ListedChunk): Promise<Unindexed | undefined> => {
      const head = await storage.headChunk(bucket, o.sha256);
      // Gone since the listing (the collector finished it): nothing is wrong.
      if (!head) return undefined;
      const action = head.checksumMatches ? ('index' as const) : ('delete' as const);
      const done = repair ? await settleObject(o.sha256, head.length, head.checksumMatches) : false;
      return { sha256: o.sha256, length: head.length, action, repaired: done };
    };

    /**
     * A chunk stored alone whose entry names a pack: a spare copy, deleted unless that pack turns out missing (then
     * it is indexed in its place) or it is not the chunk its key names.
     */
    const checkSpare = async (o: ListedChunk, entry: IndexEntry): Promise<Unindexed | undefined> => {
      const head = await storage.headChunk(bucket, o.sha256);
      if (!head) return undefined;
      const needed =
        head.checksumMatches &&
        entry.deleting === undefined &&
        (await storage.objectState(bucket, entry)) !== 'present';
      const action = needed ? ('index' as const) : ('delete' as const);
      if (!repair) return { sha256: o.sha256, length: head.length, action, repaired: false };
      if (needed)
        return {
          sha256: o.sha256,
          length: head.length,
          action,
          repaired: await settleObject(o.sha256, head.length, true),
        };
      await storage.deleteChunk(bucket, o.sha256);
      repaired.deleted++;
      return { sha256: o.sha256, length: head.length, action, repaired: true };
    };

    /** A stored pack: are all its chunks indexed at the node, and does an entry name it? */
    const checkPack = async (p: ListedChunk): Promise<Unindexed | undefined> => {
      let toc: PackEntry[] | undefined;
      try {
        toc = await storage.packToc(bucket, p.sha256);
      } catch (err) {
        if (!(err instanceof PackFormatError)) throw err;
        // Not a pack at all: bytes nothing can use.
        const done = repair ? await deletePack(p.sha256, []) : false;
        return { sha256: p.sha256, length: p.size, action: 'delete', repaired: done };
      }
      // Gone since the listing (the collector deleted it): nothing is wrong.
      if (toc === undefined) return undefined;
      const there = await contentIndex.locate(
        cacheNodeId,
        toc.map((e) => e.sha256),
        { includeDeleting: true },
      );
      const verdict = packVerdict(p.sha256, toc, there);
      if (verdict.action === 'none' || verdict.action === 'collector') return undefined;
      const item = { sha256: p.sha256, length: p.size, chunks: verdict.loose };
      if (!repair) return { ...item, action: verdict.action, repaired: false };
      if (verdict.action === 'delete')
        return { ...item, action: 'delete', repaired: await deletePack(p.sha256, []) };
      const read = await readPack(p.sha256);
      if (read.state === 'missing') return undefined;
      const naming = [...there.values()].filter((e) => e.pack === p.sha256).map((e) => e.sha256);
      if (read.state === 'corrupt')
        return { ...item, action: 'delete', repaired: await deletePack(p.sha256, naming) };
      const fresh = read.intact.filter((e) => !there.has(e.sha256));
      // Its chunks no entry names are all corrupt, and nothing else names it: nothing needs it.
      if (fresh.length === 0 && naming.length === 0)
        return { ...item, action: 'delete', repaired: await deletePack(p.sha256, []) };
      const out = fresh.length > 0 ? await contentIndex.record(cacheNodeId, fresh) : { refused: [] };
      repaired.indexed += fresh.length - out.refused.length;
      return { ...item, action: 'index', repaired: out.refused.length === 0 };
    };

    // One pool for every kind of look: a page takes about (its requests / 16) round trips. Results keep digest
    // order (chunks stored alone, then packs).
    const missing: (IndexedMissing | undefined)[] = [];
    const stray: (Unindexed | undefined)[] = [];
    const packStray: (Unindexed | undefined)[] = [];
    const position = new Map(check.map((e, i) => [e, i]));
    const alone = check.filter((e) => e.pack === undefined);
    const inPacks = [...byObject(check.filter((e) => e.pack !== undefined)).values()];
    const checks = [
      ...alone.map((e) => async () => {
        missing[position.get(e) as number] = await checkEntry(e);
      }),
      ...inPacks.map((group) => async () => {
        const found = await checkPackEntries(group);
        group.forEach((e, n) => {
          missing[position.get(e) as number] = found[n];
        });
      }),
      ...unindexed.map((o, i) => async () => {
        stray[i] = await checkObject(o);
      }),
      ...superseded.map(({ object, entry }, i) => async () => {
        stray[unindexed.length + i] = await checkSpare(object, entry);
      }),
      ...range.packs.map((p, i) => async () => {
        packStray[i] = await checkPack(p);
      }),
    ];
    await mapLimit(checks, HEAD_CONCURRENCY, (run) => run());
    const body: api.CacheVerifyPage = {
      cacheNodeId,
      repair,
      checked: { entries: range.entries.length, objects: range.objects.length + range.packs.length },
      indexedMissing: missing.filter((x) => x !== undefined),
      unindexed: [...stray, ...packStray].filter((x) => x !== undefined),
      deleting: deleting.length,
      repaired,
      ...(range.end ? { nextCursor: range.end } : {}),
    };
    return c.json(body, 200);
  });
}
