// Node registry rules: which cache node a data center uses, and what blocks a removal.
import type { Location } from '../../protocol/topology.ts';
import { byDistance, greatCircleKm } from './geo.ts';

export type CacheNodeStatus = 'active' | 'draining' | 'down';

export interface CacheNodeRecord {
  readonly id: string;
  readonly name: string;
  readonly region: string;
  readonly location: Location;
  readonly capacity: number;
  readonly status: CacheNodeStatus;
  readonly bucket: string;
  /** Migrations holding a transfer slot (DESIGN §4 reservation set). */
  readonly reservations: readonly string[];
  /** Storage budget in bytes (draft §2 "cache space"); absent: unlimited. */
  readonly budgetBytes?: number;
  /** Bytes admitted migrations may still bring to the node, by migration. */
  readonly spaceReservations: Readonly<Record<string, number>>;
  /** The most room a migration queued for space here lacks (the collector makes at least that much). */
  readonly spaceWanted?: number;
  /** Data centers naming this node as home. */
  readonly homedDataCenters: readonly string[];
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** An image whose chunks the collector keeps at named cache nodes (`vmmig image pin`). */
export interface PinRecord {
  readonly imageId: string;
  /** The migration whose manifest is the pinned version of the image. */
  readonly migrationId: string;
  readonly cacheNodeIds: readonly string[];
  readonly pinnedAt: string;
}

export interface DataCenterRecord {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly location: Location;
  readonly homeCacheNode?: string;
  readonly activeMigrations: readonly string[];
  /** What the data center's agent last said about itself (on its work polls). */
  readonly agent?: AgentInfo;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface AgentInfo {
  readonly version: string;
  /** qemu-img version; absent: the agent cannot convert image formats. */
  readonly qemuImg?: string;
  readonly seenAt: string;
}

export interface CacheNodeChoice {
  readonly id: string;
  readonly reason: 'home' | 'nearest';
  readonly distanceKm: number;
}

/**
 * The cache node a data center uses now: its home node while that is active, otherwise the nearest active node
 * (great-circle distance). Draining and down nodes take no new work. Null when no node is active.
 */
export function chooseCacheNode(
  dc: Pick<DataCenterRecord, 'location' | 'homeCacheNode'>,
  nodes: readonly Pick<CacheNodeRecord, 'id' | 'location' | 'status'>[],
  exclude: ReadonlySet<string> = new Set(),
): CacheNodeChoice | null {
  const home = nodes.find((n) => n.id === dc.homeCacheNode);
  if (home && home.status === 'active' && !exclude.has(home.id)) {
    return { id: home.id, reason: 'home', distanceKm: round(greatCircleKm(dc.location, home.location)) };
  }
  const nearest = byDistance(
    dc.location,
    nodes.filter((n) => n.status === 'active' && !exclude.has(n.id)),
  )[0];
  return nearest ? { id: nearest.node.id, reason: 'nearest', distanceKm: round(nearest.distanceKm) } : null;
}

const round = (km: number) => Math.round(km * 10) / 10;
