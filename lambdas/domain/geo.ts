// Great-circle distance and nearest-node choice: how a data center finds its cache node (draft §3.1 step 3).
import type { Location } from '../../protocol/topology.ts';

const EARTH_RADIUS_KM = 6371.0088;
const rad = (deg: number) => (deg * Math.PI) / 180;

/** Haversine distance in kilometres. */
export function greatCircleKm(a: Location, b: Location): number {
  const dLat = rad(b.lat - a.lat);
  const dLon = rad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

export interface Placed {
  readonly id: string;
  readonly location: Location;
}

/** Candidates sorted by distance from `from`, nearest first; ties broken by id so the choice is stable. */
export function byDistance<T extends Placed>(
  from: Location,
  candidates: readonly T[],
): { node: T; distanceKm: number }[] {
  return candidates
    .map((node) => ({ node, distanceKm: greatCircleKm(from, node.location) }))
    .sort((x, y) => x.distanceKm - y.distanceKm || x.node.id.localeCompare(y.node.id));
}
