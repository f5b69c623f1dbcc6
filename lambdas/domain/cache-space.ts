// Cache space (draft §2: the RMG applies to the CMN "for data channel and cache space"; DESIGN §3), as pure
// rules: what a cache node has free for a migration, and which chunks the collector marks for eviction.
//
// A node may have a storage budget in bytes. What it holds is the sum of its index entries' stored (compressed)
// bytes (the usage item); what admitted migrations may still add is their space reservation. A migration fits when
// held + reserved by others + what it brings that the node lacks stays within the budget.
//
// Eviction: a chunk referenced by no live migration, pinned image or backup policy's kept runs is a candidate; what
// goes is an object (a pack, or a chunk stored alone) all of whose chunks are candidates, in stored bytes.
// Over the high-water mark, candidates go least recently used first until the node is down to the low-water mark
// (lower still when a queued migration needs more room). Whatever the space, a candidate unused for longer than
// the retention period goes too. Marked chunks are deleted only by a later pass, after the grace period, and only
// if nothing used them meanwhile (lambdas/workflow/collect-garbage.ts).
import { formatBytes } from '../../protocol/bytes.ts';
import type { StoredChunk } from '../../protocol/pack.ts';
import { byObject } from './stored-objects.ts';

export interface CacheSettings {
  /** Between marking a chunk and deleting it: a use in between saves it. */
  readonly graceSeconds: number;
  /** Unreferenced chunks unused this long go whatever the space (absent: only space makes room). */
  readonly retentionDays?: number;
  /** Fractions of a node's budget: eviction starts above `highWater` and stops at `lowWater`. */
  readonly highWater: number;
  readonly lowWater: number;
}

export const DEFAULT_CACHE_SETTINGS: CacheSettings = {
  graceSeconds: 3600,
  highWater: 0.9,
  lowWater: 0.75,
};

export interface NodeSpace {
  readonly id: string;
  /** Absent: the node has no budget (space is never a reason to refuse). */
  readonly budgetBytes?: number;
  readonly bytesHeld: number;
  /** Space reservations of admitted migrations, by migration. */
  readonly spaceReservations: Readonly<Record<string, number>>;
}

export interface SpaceVerdict {
  readonly fits: boolean;
  /** The budget less what is held and reserved by other migrations (may be negative). */
  readonly freeBytes: number;
  /** Over budget even empty: waiting cannot help. */
  readonly never: boolean;
  /** Space other admitted migrations hold at the node. */
  readonly reservedByOthers: number;
  readonly message: string;
}

/** Does a migration that brings `needBytes` new to the node fit within its budget? */
export function spaceFor(node: NodeSpace, migrationId: string, needBytes: number): SpaceVerdict {
  const reservedByOthers = Object.entries(node.spaceReservations)
    .filter(([id]) => id !== migrationId)
    .reduce((n, [, b]) => n + b, 0);
  if (node.budgetBytes === undefined) {
    return {
      fits: true,
      freeBytes: Number.POSITIVE_INFINITY,
      never: false,
      reservedByOthers,
      message: 'no budget',
    };
  }
  const freeBytes = node.budgetBytes - node.bytesHeld - reservedByOthers;
  const fits = needBytes <= freeBytes;
  const never = needBytes > node.budgetBytes;
  const message = fits
    ? `${formatBytes(needBytes)} new at cache node ${node.id}, ${formatBytes(freeBytes)} free of its ${formatBytes(node.budgetBytes)} budget`
    : `cache node ${node.id} has ${formatBytes(Math.max(0, freeBytes))} free of its ${formatBytes(node.budgetBytes)} ` +
      `budget (${formatBytes(node.bytesHeld)} held, ${formatBytes(reservedByOthers)} reserved by other migrations); ` +
      `this migration brings ${formatBytes(needBytes)} it does not hold` +
      (never ? ': more than the whole budget' : '');
  return { fits, freeBytes, never, reservedByOthers, message };
}

export interface EvictionEntry extends StoredChunk {
  readonly storedAt: string;
  /** Last time a migration relied on the chunk at this node (absent on entries older than usage tracking). */
  readonly usedAt?: string;
  /** Marked by the collector (a candidate since then); any use or new record clears it. */
  readonly condemnedAt?: string;
  /** The collector is deleting the object: the entry no longer counts as held. */
  readonly deleting?: string;
}

export const lastUse = (e: EvictionEntry): string => e.usedAt ?? e.storedAt;
/** What an entry takes at its node: what usage counts. */
export const storedBytesOf = (e: Pick<EvictionEntry, 'length' | 'stored'>): number => e.stored ?? e.length;

export interface EvictionPlan {
  /** Unmarked candidates to mark now, least recently used first. */
  readonly condemn: readonly EvictionEntry[];
  /** Bytes of every candidate (referenced by nothing), marked or not. */
  readonly evictableBytes: number;
  /** The level this pass evicts down to (absent: no space pressure). */
  readonly targetBytes?: number;
  /** Why this pass marks what it marks. */
  readonly reason: string;
}

/** The entries that name one object at a node (a pack, or a chunk stored alone), as eviction sees them. */
interface EvictionObject {
  readonly key: string;
  readonly entries: readonly EvictionEntry[];
  readonly bytes: number;
  /** The latest use of any chunk in it. */
  readonly lastUse: string;
}

/**
 * Which chunks to mark at a node. `referenced` says whether a chunk must stay there; `wantedBytes` is room a
 * queued migration needs beyond the budget's free space. Entries already marked or being deleted count as
 * leaving.
 *
 * Space is freed by objects, not chunks: a pack goes only with every chunk in it (the collector keeps a pack whole
 * while any chunk in it is referenced, used or unmarked). So candidates are objects none of whose chunks is
 * referenced or being deleted, ordered by their latest use, and choosing one marks all its chunks.
 */
export function planEviction(
  entries: readonly EvictionEntry[],
  referenced: (sha256: string) => boolean,
  node: { readonly budgetBytes?: number; readonly bytesHeld: number; readonly wantedBytes?: number },
  settings: CacheSettings,
  now: Date,
): EvictionPlan {
  const objects: EvictionObject[] = [...byObject(entries)].map(([key, list]) => ({
    key,
    entries: list,
    bytes: list.reduce((n, e) => n + storedBytesOf(e), 0),
    lastUse: list.map(lastUse).sort().at(-1) ?? '',
  }));
  const candidates = objects.filter((o) =>
    o.entries.every((e) => e.deleting === undefined && !referenced(e.sha256)),
  );
  const evictableBytes = candidates.reduce((n, o) => n + o.bytes, 0);
  const isLeaving = (o: EvictionObject) =>
    o.entries.every((e) => e.deleting !== undefined || e.condemnedAt !== undefined);
  const leaving = objects.filter(isLeaving).reduce((n, o) => n + o.bytes, 0);
  const unmarked = candidates
    .filter((o) => !isLeaving(o))
    .sort((a, b) => a.lastUse.localeCompare(b.lastUse) || a.key.localeCompare(b.key));

  const chosen = new Set<EvictionObject>();
  const reasons: string[] = [];
  const chunksOf = (list: Iterable<EvictionObject>) =>
    [...list].reduce((n, o) => n + o.entries.filter((e) => e.condemnedAt === undefined).length, 0);
  if (settings.retentionDays !== undefined) {
    const cutoff = new Date(now.getTime() - settings.retentionDays * 86_400_000).toISOString();
    const old = unmarked.filter((o) => o.lastUse < cutoff);
    for (const o of old) chosen.add(o);
    if (old.length > 0) reasons.push(`${chunksOf(old)} unused for over ${settings.retentionDays} days`);
  }
  let targetBytes: number | undefined;
  const budget = node.budgetBytes;
  if (budget !== undefined) {
    const wanted = node.wantedBytes ?? 0;
    const overHigh = node.bytesHeld > budget * settings.highWater;
    const short = wanted > 0 && node.bytesHeld + wanted > budget;
    if (overHigh || short) {
      targetBytes = Math.max(0, Math.min(budget * settings.lowWater, budget - wanted));
      let remaining = node.bytesHeld - leaving - [...chosen].reduce((n, o) => n + o.bytes, 0);
      const more: EvictionObject[] = [];
      for (const o of unmarked) {
        if (remaining <= targetBytes) break;
        if (chosen.has(o)) continue;
        chosen.add(o);
        more.push(o);
        remaining -= o.bytes;
      }
      reasons.push(
        `${formatBytes(node.bytesHeld)} held of a ${formatBytes(budget)} budget` +
          (short ? ` and ${formatBytes(wanted)} wanted by a queued migration` : '') +
          `: ${chunksOf(more)} least recently used chunks down to ${formatBytes(targetBytes)}`,
      );
    }
  }
  const condemn = unmarked
    .filter((o) => chosen.has(o))
    .flatMap((o) => o.entries.filter((e) => e.condemnedAt === undefined));
  return {
    condemn,
    evictableBytes,
    ...(targetBytes !== undefined ? { targetBytes } : {}),
    reason: reasons.join('; ') || 'within budget',
  };
}

/** Marked at least `graceSeconds` ago: the sweep may delete it, if it is still unreferenced. */
export function graceOver(condemnedAt: string, settings: CacheSettings, now: Date): boolean {
  return Date.parse(condemnedAt) + settings.graceSeconds * 1000 <= now.getTime();
}
