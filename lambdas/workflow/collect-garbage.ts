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
import { bucketRef } from '../aws/cache-nodes.ts';
import type { IndexEntry, NodeUsage } from '../aws/content-index.ts';
import type { Uses } from '../aws/deps.ts';
import { type CacheSettings, type EvictionPlan, graceOver, planEviction } from '../domain/cache-space.ts';
import { distinctNonZeroChunks } from '../domain/chunks.ts';
import { mapLimit } from '../domain/concurrency.ts';
import type { CacheNodeRecord } from '../domain/registry.ts';
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
    readonly beforeObjectDelete?: (cacheNodeId: string, sha256: string) => Promise<void>;
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
    bytesHeld: entries.reduce((n, e) => n + e.length, 0),
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

  // Sweep: marks past their grace period, and deletions a crashed pass left unfinished.
  const due: IndexEntry[] = [];
  for (const e of entries) {
    if (e.deleting) due.push(e);
    else if (e.condemnedAt && graceOver(e.condemnedAt, settings, now())) due.push(e);
    else if (e.condemnedAt) pending = add(pending, e.length);
  }
  if (dryRun) {
    for (const e of due) {
      if (!refs.isReferenced(node.id, e.sha256)) {
        freed = add(freed, e.length);
        gone.add(e.sha256);
      }
    }
  } else if (due.length > 0) {
    const deleting: IndexEntry[] = [];
    // Past the deadline the rest waits for the next pass (every step is conditional: nothing is half-done).
    const sweepable = due.slice(0, overDeadline() ? 0 : due.length);
    const at = now().toISOString();
    await mapLimit(sweepable, DELETE_CONCURRENCY, async (e) => {
      if (overDeadline()) {
        cut = true;
        return;
      }
      if (e.deleting) deleting.push(e);
      else if (refs.isReferenced(node.id, e.sha256)) {
        if (await contentIndex.pardon(node.id, e.sha256, e.condemnedAt as string)) pardoned++;
      } else if (await contentIndex.beginDelete(node.id, e.sha256, e.condemnedAt as string, at))
        deleting.push(e);
    });
    await options.hooks?.afterBeginDelete?.(
      node.id,
      deleting.map((e) => e.sha256),
    );
    if (deleting.length > 0) {
      // Read again now that these entries no longer count as held: whoever saw one as held before is in here.
      refs = await gatherReferences(deps, manifests);
      const freedNow = await mapLimit(deleting, DELETE_CONCURRENCY, async (e) => {
        if (refs.isReferenced(node.id, e.sha256)) {
          if (await contentIndex.revertDelete(node.id, e.sha256)) reverted++;
          return 0;
        }
        await options.hooks?.beforeObjectDelete?.(node.id, e.sha256);
        await deps.storage.deleteChunk(bucketRef(node), e.sha256);
        gone.add(e.sha256);
        return contentIndex.finishDelete(node.id, e.sha256);
      });
      for (const [n, bytes] of freedNow.entries()) {
        if (gone.has((deleting[n] as IndexEntry).sha256)) freed = add(freed, bytes);
      }
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
    for (const e of plan.condemn) marked = add(marked, e.length);
  } else {
    const results = await mapLimit(plan.condemn, DELETE_CONCURRENCY, async (e) => {
      if (overDeadline()) {
        cut = true;
        return false;
      }
      return contentIndex.condemn(node.id, e, at);
    });
    plan.condemn.forEach((e, n) => {
      if (results[n]) marked = add(marked, e.length);
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
