// The cache collector (DESIGN §3 "cache space"): one pass over each cache node's index entries that
//   1. counts what the node holds (the usage item is reconciled with its entries),
//   2. sweeps: a chunk marked by an earlier pass at least the grace period ago, and unreferenced now, stops counting
//      as held (`deleting`); then what is referenced is read again, and only what is still unreferenced is deleted,
//      object first and its entry last; whatever became referenced meanwhile is reverted,
//   3. marks (`condemnedAt`) the candidates this pass chooses (lambdas/domain/cache-space.ts): least recently used
//      first above the high-water mark, and those unused past the retention period.
// A chunk stays when a live migration's manifest, a pinned image or a backup policy's kept runs name it.
//
// Why nothing in use is lost (docs/architecture.md, "Eviction"): every use of an index entry is a conditional write
// on it (record, touch) or happens while the user is a live migration whose manifest the collector reads. A mark
// is cleared by any use; `deleting` is set only on an entry still carrying the mark it saw; and the references are
// read after `deleting` is set, so a migration that saw the entry as held before that moment is live and referenced
// when they are read (it holds transfer slots from before its first look at the index until it ends), and one that
// looks after it sees the chunk absent and brings it again, which the entry refuses until the collector is done.
// A crash leaves at worst an entry in `deleting` (finished by the next pass) or, between the object's deletion and
// the entry's, the same; `cache verify` finds objects no entry names.
//
// Chunks are stored in packs (protocol/pack.ts), and what is deleted is an object: a pack goes only when every entry
// that names it at the node is being deleted; its deletions begin all or none, and are all taken back when one of
// them is referenced again. A pack of which any chunk is still referenced, used since its mark, or not marked is kept
// whole, its other chunks with it: there is no repacking yet, so a partly live pack costs its dead chunks' bytes
// (still counted in the node's usage, as their entries stay) until its last live chunk is evicted too. Before a pack
// is deleted its table of contents is read and its chunks looked up at the node, so that an entry recorded since the
// pass read them, or one a pass cut at its limit did not read, keeps the pack (a pass that read only part of a
// node's entries thus deletes only packs whose entries it all read).

import { objectKeyOf } from '../../protocol/chunk-key.ts';
import { PackFormatError } from '../../protocol/pack.ts';
import { bucketRef } from '../aws/cache-nodes.ts';
import type { BucketRef } from '../aws/chunk-storage.ts';
import { type IndexEntry, type NodeUsage, storedBytes } from '../aws/content-index.ts';
import type { Uses } from '../aws/deps.ts';
import { type CacheSettings, type EvictionPlan, graceOver, planEviction } from '../domain/cache-space.ts';
import { distinctNonZeroChunks } from '../domain/chunks.ts';
import { mapLimit } from '../domain/concurrency.ts';
import type { CacheNodeRecord } from '../domain/registry.ts';
import { byObject } from '../domain/stored-objects.ts';
import { loadManifest } from './manifest.ts';
import { wakeSpaceWaiters, wakeSpaceWaitersThatFit } from './wake.ts';

export type CollectDeps = Uses<
  | 'registry'
  | 'slots'
  | 'migrations'
  | 'policies'
  | 'waiters'
  | 'sfn'
  | 'contentIndex'
  | 'storage'
  | 'control'
>;

/** Entries one pass reads at a node at most; a larger node is collected over several passes (`partial`). */
export const MAX_ENTRIES_PER_PASS = 2_000_000;
const DELETE_CONCURRENCY = 16;
/** Entries of one object whose deletion begins at once (objects are swept DELETE_CONCURRENCY at a time). */
const BEGIN_CONCURRENCY = 4;

export interface CollectOptions {
  /** Report what a pass would do; change nothing. */
  readonly dryRun?: boolean;
  /** Only these nodes (default: every registered node). */
  readonly nodes?: readonly string[];
  readonly now?: () => Date;
  readonly maxEntries?: number;
  /** Epoch ms: stop sweeping and marking then (the next pass goes on); for callers with a time limit (the API). */
  readonly deadline?: number;
  /** Test seams: run between the steps of the sweep (another migration acting meanwhile). */
  readonly hooks?: {
    readonly afterBeginDelete?: (cacheNodeId: string, digests: readonly string[]) => Promise<void>;
    /** Once per object, with the first entry that names it. */
    readonly beforeObjectDelete?: (cacheNodeId: string, sha256: string, objectKey: string) => Promise<void>;
  };
}

export interface Amount {
  readonly chunks: number;
  readonly bytes: number;
}

export interface NodeCollection {
  readonly cacheNodeId: string;
  readonly at: string;
  readonly dryRun: boolean;
  readonly budgetBytes?: number;
  /** After the pass (dry run: as now). */
  readonly bytesHeld: number;
  readonly chunksHeld: number;
  /** Held by nothing live, pinned or kept: what eviction could free. */
  readonly evictableBytes: number;
  /** Marked by this pass (dry run: would be). */
  readonly marked: Amount;
  /** Deleted by this pass (dry run: would be, if still unreferenced then). */
  readonly freed: Amount;
  /** Marked earlier, not yet past the grace period. */
  readonly pending: Amount;
  /** Marks taken back because the chunk is referenced again, and deletions reverted for the same reason. */
  readonly pardoned: number;
  readonly reverted: number;
  readonly targetBytes?: number;
  readonly reason: string;
  /** The node has more entries than a pass reads, or the pass stopped at its deadline: run again. */
  readonly partial: boolean;
}

export interface CollectReport {
  readonly at: string;
  readonly settings: CacheSettings;
  readonly nodes: readonly NodeCollection[];
}

/** What must stay where: chunks of live migrations (everywhere), of pinned images and kept backups (at nodes). */
export interface References {
  readonly liveMigrations: readonly string[];
  isReferenced(cacheNodeId: string, sha256: string): boolean;
}

const add = (a: Amount, length: number): Amount => ({ chunks: a.chunks + 1, bytes: a.bytes + length });
const NONE: Amount = { chunks: 0, bytes: 0 };

export async function collectGarbage(
  deps: CollectDeps,
  options: CollectOptions = {},
): Promise<CollectReport> {
  const now = options.now ?? (() => new Date());
  const settings = await deps.registry.cacheSettings();
  const all = await deps.registry.allCacheNodes();
  const nodes = options.nodes ? all.filter((n) => options.nodes?.includes(n.id)) : all;
  const manifests = new Map<string, Set<string>>();
  const reports: NodeCollection[] = [];
  for (const node of nodes) {
    reports.push(await collectNode(deps, node, settings, manifests, options, now));
  }
  return { at: now().toISOString(), settings, nodes: reports };
}

async function collectNode(
  deps: CollectDeps,
  node: CacheNodeRecord,
  settings: CacheSettings,
  manifests: Map<string, Set<string>>,
  options: CollectOptions,
  now: () => Date,
): Promise<NodeCollection> {
  const dryRun = options.dryRun === true;
  const { contentIndex } = deps;
  const seen = await contentIndex.usage(node.id);
  const { entries, partial } = await contentIndex.allEntries(
    node.id,
    options.maxEntries ?? MAX_ENTRIES_PER_PASS,
  );
  // Every entry counts until its deletion finishes (finishDelete takes it off the usage), `deleting` ones too.
  const counted: NodeUsage = {
    bytesHeld: entries.reduce((n, e) => n + storedBytes(e), 0),
    chunksHeld: entries.length,
  };
  // A partial read cannot say what the node holds in all.
  let usage = partial || dryRun ? seen : await contentIndex.reconcileUsage(node.id, counted, seen);

  let refs = await gatherReferences(deps, manifests);
  /** Stopped at the deadline: the rest is for the next pass. */
  let cut = false;
  const overDeadline = () => options.deadline !== undefined && Date.now() >= options.deadline;
  let freed = NONE;
  let pending = NONE;
  let pardoned = 0;
  let reverted = 0;
  const gone = new Set<string>();

  // Sweep: marks past their grace period, and deletions a crashed pass left unfinished. An object goes only with
  // every entry that names it at the node (a pack holds many chunks): one any of whose entries is not due (unmarked,
  // used since its mark, marked too recently) or is referenced stays whole, and so do its due entries.
  const due = new Set<IndexEntry>();
  for (const e of entries) {
    if (e.deleting) due.add(e);
    else if (e.condemnedAt && graceOver(e.condemnedAt, settings, now())) due.add(e);
    else if (e.condemnedAt) pending = add(pending, storedBytes(e));
  }
  const objects = [...byObject(entries).values()].filter((group) => group.some((e) => due.has(e)));
  const goes = (group: readonly IndexEntry[]) =>
    group.every((e) => due.has(e)) && !group.some((e) => refs.isReferenced(node.id, e.sha256));
  if (dryRun) {
    for (const group of objects.filter(goes)) {
      for (const e of group) {
        freed = add(freed, storedBytes(e));
        gone.add(e.sha256);
      }
    }
  } else if (objects.length > 0) {
    /** Objects every entry of which is now `deleting`. */
    const deleting: IndexEntry[][] = [];
    const at = now().toISOString();
    const revert = async (list: readonly IndexEntry[]) => {
      for (const e of list) if (await contentIndex.revertDelete(node.id, e.sha256)) reverted++;
    };
    // Past the deadline the rest waits for the next pass (every step is conditional: nothing is half-done).
    await mapLimit(objects, DELETE_CONCURRENCY, async (group) => {
      if (overDeadline()) {
        cut = true;
        return;
      }
      if (!goes(group)) {
        // It stays: a referenced marked chunk is pardoned, deletions a crashed pass began are taken back, and the
        // other marks stay (those chunks go with the object, once all of it is due and unreferenced).
        await revert(group.filter((e) => e.deleting));
        for (const e of group) {
          if (e.deleting || !due.has(e) || !refs.isReferenced(node.id, e.sha256)) continue;
          if (await contentIndex.pardon(node.id, e.sha256, e.condemnedAt as string)) pardoned++;
        }
        return;
      }
      const begun = await mapLimit(group, BEGIN_CONCURRENCY, async (e) =>
        e.deleting ? true : contentIndex.beginDelete(node.id, e.sha256, e.condemnedAt as string, at),
      );
      // One entry used (or recorded) since the mark: the object stays, so every deletion begun on it is taken back.
      if (begun.every(Boolean)) deleting.push(group);
      else await revert(group.filter((_, n) => begun[n]));
    });
    await options.hooks?.afterBeginDelete?.(
      node.id,
      deleting.flat().map((e) => e.sha256),
    );
    if (deleting.length > 0) {
      // Read again now that these entries no longer count as held: whoever saw one as held before is in here.
      refs = await gatherReferences(deps, manifests);
      const bucket = bucketRef(node);
      await mapLimit(deleting, DELETE_CONCURRENCY, async (group) => {
        const first = group[0] as IndexEntry;
        if (
          group.some((e) => refs.isReferenced(node.id, e.sha256)) ||
          (await namedByOthers(deps, node.id, bucket, group))
        ) {
          await revert(group);
          return;
        }
        await options.hooks?.beforeObjectDelete?.(node.id, first.sha256, objectKeyOf(first));
        await deps.storage.deleteObject(bucket, first);
        for (const e of group) {
          gone.add(e.sha256);
          const bytes = await contentIndex.finishDelete(node.id, e.sha256);
          freed = add(freed, bytes);
        }
      });
      usage = await contentIndex.usage(node.id);
    }
  }

  // Mark: what this pass chooses to go after the grace period.
  const left = entries.filter((e) => !gone.has(e.sha256));
  const held = dryRun ? Math.max(0, usage.bytesHeld - freed.bytes) : usage.bytesHeld;
  const plan: EvictionPlan = planEviction(
    left,
    (sha) => refs.isReferenced(node.id, sha),
    {
      ...(node.budgetBytes !== undefined ? { budgetBytes: node.budgetBytes } : {}),
      bytesHeld: held,
      ...(node.spaceWanted !== undefined ? { wantedBytes: node.spaceWanted } : {}),
    },
    settings,
    now(),
  );
  let marked = NONE;
  const at = now().toISOString();
  if (dryRun) {
    for (const e of plan.condemn) marked = add(marked, storedBytes(e));
  } else {
    const results = await mapLimit(plan.condemn, DELETE_CONCURRENCY, async (e) => {
      if (overDeadline()) {
        cut = true;
        return false;
      }
      return contentIndex.condemn(node.id, e, at);
    });
    plan.condemn.forEach((e, n) => {
      if (results[n]) marked = add(marked, storedBytes(e));
    });
  }

  const report: NodeCollection = {
    cacheNodeId: node.id,
    at,
    dryRun,
    ...(node.budgetBytes !== undefined ? { budgetBytes: node.budgetBytes } : {}),
    bytesHeld: held,
    chunksHeld: dryRun ? Math.max(0, usage.chunksHeld - freed.chunks) : usage.chunksHeld,
    evictableBytes: plan.evictableBytes,
    marked,
    freed,
    pending,
    pardoned,
    reverted,
    ...(plan.targetBytes !== undefined ? { targetBytes: plan.targetBytes } : {}),
    reason: plan.reason,
    partial: partial || cut,
  };
  if (!dryRun) {
    await contentIndex.noteCollection(node.id, report);
    // Room was made: migrations queued for space at this node look again. Otherwise those that fit now do (a
    // wake-up lost to a crash is found again here, on every pass).
    if (freed.bytes > 0) await wakeSpaceWaiters(deps, node.id);
    else await wakeSpaceWaitersThatFit(deps, node.id);
  }
  return report;
}

/**
 * Whether an entry this pass did not begin deleting names the same pack: recorded since the pass read the entries
 * (a copy or an upload that found the pack there), or not read by a pass cut at its limit. The pack's table of
 * contents says which chunks it holds; their entries at the node say where each is stored (entries being deleted
 * are not returned). A chunk stored alone is named by its own entry only.
 */
async function namedByOthers(
  deps: Uses<'storage' | 'contentIndex'>,
  cacheNodeId: string,
  bucket: BucketRef,
  group: readonly IndexEntry[],
): Promise<boolean> {
  const pack = group[0]?.pack;
  if (pack === undefined) return false;
  let toc: readonly { readonly sha256: string }[] | undefined;
  try {
    toc = await deps.storage.packToc(bucket, pack);
  } catch (err) {
    // Not a pack at all: nothing can be read from it, whatever names it.
    if (err instanceof PackFormatError) return false;
    throw err;
  }
  const ours = new Set(group.map((e) => e.sha256));
  const others = (toc ?? []).map((e) => e.sha256).filter((d) => !ours.has(d));
  if (others.length === 0) return false;
  const held = await deps.contentIndex.locate(cacheNodeId, others);
  return [...held.values()].some((e) => e.pack === pack);
}

/**
 * What is referenced now. Live migrations are those holding a transfer slot at any cache node: a migration takes
 * its slots before it first looks at the content index and keeps them until it ends. `manifests` caches the
 * chunks of a manifest by migration id (manifests never change once accepted).
 */
export async function gatherReferences(
  deps: Uses<'registry' | 'migrations' | 'policies' | 'storage' | 'control'>,
  manifests: Map<string, Set<string>>,
): Promise<References> {
  const nodes = await deps.registry.allCacheNodes();
  const live = [...new Set(nodes.flatMap((n) => n.reservations))].sort();
  const chunksOf = async (migrationId: string): Promise<Set<string>> => {
    const cached = manifests.get(migrationId);
    if (cached) return cached;
    let set: Set<string>;
    try {
      set = new Set(distinctNonZeroChunks(await loadManifest(deps, migrationId)).map((c) => c.sha256));
    } catch (err) {
      // No manifest yet: the migration has not looked at the index yet either.
      if ((err as Error).name !== 'ManifestMissing') throw err;
      return new Set();
    }
    manifests.set(migrationId, set);
    return set;
  };
  const everywhere = new Set<string>();
  for (const id of live) for (const sha of await chunksOf(id)) everywhere.add(sha);

  const atNode = new Map<string, Set<string>>();
  const keep = async (migrationId: string, cacheNodeIds: readonly string[]) => {
    const chunks = await chunksOf(migrationId);
    for (const node of cacheNodeIds) {
      const set = atNode.get(node) ?? new Set<string>();
      for (const sha of chunks) set.add(sha);
      atNode.set(node, set);
    }
  };
  for (const pin of await deps.registry.allPins()) await keep(pin.migrationId, pin.cacheNodeIds);
  for (const kept of await keptBackups(deps)) await keep(kept.migrationId, kept.cacheNodeIds);
  return {
    liveMigrations: live,
    isReferenced: (node, sha) => everywhere.has(sha) || atNode.get(node)?.has(sha) === true,
  };
}

/** Each backup policy's latest `keepRuns` completed runs, at the cache nodes their destinations fetched from. */
async function keptBackups(
  deps: Uses<'migrations' | 'policies'>,
): Promise<{ migrationId: string; cacheNodeIds: string[] }[]> {
  const out: { migrationId: string; cacheNodeIds: string[] }[] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.policies.list(100, cursor);
    for (const policy of page.items) {
      const runs = (policy.recentRuns ?? []).map((r) => r.migrationId);
      const records = await deps.migrations.getMany(runs);
      const completed = records.filter((m) => m.status === 'COMPLETED');
      for (const m of completed.slice(0, policy.keepRuns ?? 1)) {
        const nodes = Object.values(m.legs)
          .map((l) => l.cacheNodeId)
          .filter((n): n is string => n !== undefined);
        out.push({ migrationId: m.id, cacheNodeIds: nodes });
      }
    }
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}
