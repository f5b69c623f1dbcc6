// When a destination cache node is congested, the CMN suggests another destination (draft §3.1 step 4): the
// data center nearest to the congested one whose cache node (the one Resolve would choose for it) is active,
// has a free slot (and, when the congestion is cache space, the space the migration needs), and is not already
// part of the migration.
import { greatCircleKm } from './geo.ts';
import { type CacheNodeRecord, chooseCacheNode, type DataCenterRecord } from './registry.ts';

export interface Alternative {
  readonly dataCenterId: string;
  readonly cacheNodeId: string;
  readonly distanceKm: number;
  readonly reason: string;
}

export function suggestAlternative(
  congested: { readonly dataCenter: DataCenterRecord; readonly cacheNode: CacheNodeRecord },
  excluded: ReadonlySet<string>,
  dataCenters: readonly DataCenterRecord[],
  nodes: readonly CacheNodeRecord[],
  space?: {
    readonly needBytes: number;
    readonly shortage: string;
    /** Bytes each node holds (its usage); a node absent here is taken as holding nothing. */
    readonly held?: ReadonlyMap<string, number>;
  },
): Alternative | undefined {
  const hasSpace = (n: CacheNodeRecord) => {
    if (!space || n.budgetBytes === undefined) return true;
    const reserved = Object.values(n.spaceReservations).reduce((a, b) => a + b, 0);
    return n.budgetBytes - (space.held?.get(n.id) ?? 0) - reserved >= space.needBytes;
  };
  const roomy = nodes.filter(
    (n) =>
      n.status === 'active' &&
      n.reservations.length < n.capacity &&
      n.id !== congested.cacheNode.id &&
      hasSpace(n),
  );
  const candidates = dataCenters
    .filter((dc) => !excluded.has(dc.id))
    .flatMap((dc) => {
      // The node Resolve will route this data center through (home while active, else nearest active), not
      // the nearest roomy one: suggesting a node the migration will not use would only meet congestion again.
      const choice = chooseCacheNode(dc, nodes);
      return choice && roomy.some((n) => n.id === choice.id)
        ? [{ dc, node: choice.id, km: greatCircleKm(congested.dataCenter.location, dc.location) }]
        : [];
    })
    .sort((a, b) => a.km - b.km || a.dc.id.localeCompare(b.dc.id));
  const best = candidates[0];
  if (!best) return undefined;
  const node = nodes.find((n) => n.id === best.node) as CacheNodeRecord;
  const full = congested.cacheNode;
  return {
    dataCenterId: best.dc.id,
    cacheNodeId: best.node,
    distanceKm: Math.round(best.km),
    reason: space
      ? `${space.shortage}; ${best.dc.id} (${best.dc.name}) via ${node.id} has room for it, ` +
        `${Math.round(best.km)} km from ${congested.dataCenter.id}`
      : `cache node ${full.id} is at capacity (${full.reservations.length}/${full.capacity} transfers); ` +
        `${best.dc.id} (${best.dc.name}) via ${node.id} has room (${node.reservations.length}/${node.capacity}), ` +
        `${Math.round(best.km)} km from ${congested.dataCenter.id}`,
  };
}
