// CMN content routing as a pure function: for every destination cache node, each chunk it lacks comes from
// the nearest node that holds it (great-circle distance between cache nodes).
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
  readonly copies: CopyItem[];
  /** Per destination node: what the image needs there in all, and what must still be copied. */
  readonly perTarget: ReadonlyMap<
    string,
    { total: { chunks: number; bytes: number }; toCopy: { chunks: number; bytes: number } }
  >;
}

export class UnreachableChunkError extends Error {
  override readonly name = 'ChunkNotCached';
}

export function planReplication(
  chunks: readonly PlannedChunk[],
  targets: readonly string[],
  holders: ReadonlyMap<string, ReadonlySet<string>>,
  nodes: readonly NodeOnMap[],
): ReplicationPlan {
  const copies: CopyItem[] = [];
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
      if (held?.has(to)) continue;
      const from = nearestFirst.find((id) => held?.has(id));
      if (!from) throw new UnreachableChunkError(`chunk ${c.sha256} is held by no usable cache node`);
      copies.push({ sha256: c.sha256, length: c.length, from, to });
      stats.toCopy.chunks++;
      stats.toCopy.bytes += c.length;
    }
    perTarget.set(to, stats);
  }
  return { copies, perTarget };
}
