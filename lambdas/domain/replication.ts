// CMN content routing as a pure function: for every destination cache node, each chunk it lacks comes from
// the nearest node that holds it (great-circle distance between cache nodes), and each chunk the index places
// there already is checked (the index is a cache of the truth: an object deleted behind its back is found
// before a destination asks for it). A chunk held by no usable node is reported lost: the source uploads it
// again.
import type { Location } from '../../protocol/topology.ts';
import type { CopyItem } from './control-keys.ts';
import { byDistance } from './geo.ts';

export interface PlannedChunk {
  readonly sha256: string;
  readonly length: number;
}

export interface NodeOnMap {
  readonly id: string;
  readonly location: Location;
}

export interface ReplicationPlan {
  /** Copies to make, and checks (`verify`) of chunks the index already places at their destination node. */
  readonly copies: CopyItem[];
  /** Chunks no usable node holds (the index lost them): to be uploaded again. */
  readonly lost: PlannedChunk[];
  /** Per destination node: what the image needs there in all, and what must still be copied. */
  readonly perTarget: ReadonlyMap<
    string,
    { total: { chunks: number; bytes: number }; toCopy: { chunks: number; bytes: number } }
  >;
}

export function planReplication(
  chunks: readonly PlannedChunk[],
  targets: readonly string[],
  holders: ReadonlyMap<string, ReadonlySet<string>>,
  nodes: readonly NodeOnMap[],
): ReplicationPlan {
  const copies: CopyItem[] = [];
  const lost = new Map<string, PlannedChunk>();
  const perTarget = new Map<
    string,
    { total: { chunks: number; bytes: number }; toCopy: { chunks: number; bytes: number } }
  >();
  for (const to of targets) {
    const target = nodes.find((n) => n.id === to);
    if (!target) throw new Error(`destination cache node ${to} is not usable`);
    // Sources sorted once per target: the nearest holder is the first in this order that holds the chunk.
    const nearestFirst = byDistance(
      target.location,
      nodes.filter((n) => n.id !== to),
    ).map((d) => d.node.id);
    const stats = { total: { chunks: 0, bytes: 0 }, toCopy: { chunks: 0, bytes: 0 } };
    for (const c of chunks) {
      stats.total.chunks++;
      stats.total.bytes += c.length;
      const held = holders.get(c.sha256);
      if (held?.has(to)) {
        copies.push({ sha256: c.sha256, length: c.length, from: to, to, verify: true });
        continue;
      }
      const from = nearestFirst.find((id) => held?.has(id));
      if (!from) {
        lost.set(c.sha256, c);
        continue;
      }
      copies.push({ sha256: c.sha256, length: c.length, from, to });
      stats.toCopy.chunks++;
      stats.toCopy.bytes += c.length;
    }
    perTarget.set(to, stats);
  }
  return { copies, lost: [...lost.values()], perTarget };
}

/** Where a chunk is stored at a node, as far as batching copies cares: its pack there (none: stored alone). */
export interface SourcePlace {
  readonly pack?: string | undefined;
  readonly offset?: number | undefined;
}

/**
 * Cuts the plan into batches of about `size` items, keeping the items that copy the same pack into the same node
 * together: a copy brings the whole pack, so a pack split over two batches (run in parallel) would be copied twice.
 * Items are ordered by destination, source, pack and offset; a batch closes at `size` items where the next item is
 * in another pack, and at `4 × size` in any case (a pack of more chunks than that is copied by each batch holding
 * some: rare, and only a cost).
 */
export function batchCopies(
  copies: readonly CopyItem[],
  placeAt: (node: string, sha256: string) => SourcePlace | undefined,
  size: number,
): CopyItem[][] {
  const keyed = copies.map((item, n) => {
    const place = placeAt(item.from, item.sha256);
    return {
      item,
      n,
      group: `${item.to} ${item.from} ${place?.pack ?? `-${item.sha256}`}`,
      offset: place?.offset ?? 0,
    };
  });
  keyed.sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : a.offset - b.offset || a.n - b.n));
  const batches: CopyItem[][] = [];
  let batch: CopyItem[] = [];
  let group: string | undefined;
  for (const k of keyed) {
    if (batch.length >= 4 * size || (batch.length >= size && k.group !== group)) {
      batches.push(batch);
      batch = [];
    }
    batch.push(k.item);
    group = k.group;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
