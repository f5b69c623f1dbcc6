// The CMN's alternative for a congested destination (draft §3.1 step 4): the data center nearest the congested
// one whose cache node — the one Resolve would really route it through — is active and has a free slot.
import { describe, expect, it } from 'vitest';
import { suggestAlternative } from '../../../lambdas/domain/congestion.ts';
import type { CacheNodeRecord, CacheNodeStatus, DataCenterRecord } from '../../../lambdas/domain/registry.ts';

const AT = '2026-01-01T00:00:00.000Z';
const node = (
  id: string,
  lat: number,
  lon: number,
  o: { capacity?: number; used?: number; status?: CacheNodeStatus } = {},
): CacheNodeRecord => ({
  id,
  name: id.toUpperCase(),
  region: 'ap-east-1',
  location: { lat, lon },
  capacity: o.capacity ?? 2,
  status: o.status ?? 'active',
  bucket: `b-${id}`,
  reservations: Array.from({ length: o.used ?? 0 }, (_, i) => `mig-${id}${i}`),
  spaceReservations: {},
  homedDataCenters: [],
  createdAt: AT,
  updatedAt: AT,
});
const dc = (id: string, name: string, lat: number, lon: number, home?: string): DataCenterRecord => ({
  id,
  name,
  address: '10.0.0.1',
  location: { lat, lon },
  ...(home ? { homeCacheNode: home } : {}),
  activeMigrations: [],
  createdAt: AT,
  updatedAt: AT,
});

const GZ = dc('dc-gz', 'Guangzhou DC', 23.13, 113.26, 'hkg');
const SH = dc('dc-sh', 'Shanghai DC', 31.23, 121.47);
const OSA = dc('dc-osa', 'Osaka DC', 34.69, 135.5);
const JKT = dc('dc-jkt', 'Jakarta DC', -6.2, 106.85);
const DCS = [GZ, SH, OSA, JKT];
const nodes = (o: Record<string, Parameters<typeof node>[3]> = {}) => [
  node('hkg', 22.32, 114.17, o['hkg']),
  node('nrt', 35.68, 139.69, o['nrt']),
  node('sin', 1.35, 103.82, o['sin']),
];
const congestedAt = (all: CacheNodeRecord[], dataCenter: DataCenterRecord, id: string) => ({
  dataCenter,
  cacheNode: all.find((n) => n.id === id) as CacheNodeRecord,
});

describe('suggestAlternative', () => {
  it('suggests the nearest other data center whose cache node has room, and says why', () => {
    const all = nodes({ nrt: { used: 2 } });
    const alt = suggestAlternative(congestedAt(all, OSA, 'nrt'), new Set(['dc-gz', 'dc-osa']), DCS, all);
    expect(alt).toMatchObject({ dataCenterId: 'dc-sh', cacheNodeId: 'hkg' });
    expect(alt?.distanceKm).toBeGreaterThan(1200);
    expect(alt?.distanceKm).toBeLessThan(1500);
    expect(alt?.reason).toBe(
      `cache node nrt is at capacity (2/2 transfers); dc-sh (Shanghai DC) via hkg has room (0/2), ${alt?.distanceKm} km from dc-osa`,
    );
  });

  it('never suggests a data center already in the migration (its source or another destination)', () => {
    const all = nodes({ nrt: { used: 2 } });
    const alt = suggestAlternative(
      congestedAt(all, OSA, 'nrt'),
      new Set(['dc-gz', 'dc-osa', 'dc-sh']),
      DCS,
      all,
    );
    expect(alt).toMatchObject({ dataCenterId: 'dc-jkt', cacheNodeId: 'sin' });
  });

  it('skips data centers whose cache node is full, draining or down', () => {
    for (const state of [{ used: 2 }, { status: 'draining' as const }, { status: 'down' as const }]) {
      const all = nodes({ nrt: { used: 2 }, hkg: state });
      const alt = suggestAlternative(congestedAt(all, OSA, 'nrt'), new Set(['dc-osa']), DCS, all);
      if (state.used) {
        // Guangzhou and Shanghai both go through the full hkg: Jakarta via sin is the one with room.
        expect(alt).toMatchObject({ dataCenterId: 'dc-jkt', cacheNodeId: 'sin' });
      } else {
        // hkg takes no new work: Shanghai would go through its next nearest node, the congested nrt, so it is no
        // way around; Guangzhou would go through sin, which has room.
        expect(alt).toMatchObject({ dataCenterId: 'dc-gz', cacheNodeId: 'sin' });
      }
    }
  });

  it('judges a data center by the node Resolve would route it through: a full home is not swapped for a roomy far node', () => {
    // hkg (home of Guangzhou, nearest to Shanghai) is full and active: Resolve would still send both through hkg,
    // so neither is an alternative, although sin has room. Jakarta is the source: nothing is left.
    const all = nodes({ nrt: { used: 2 }, hkg: { used: 2 } });
    const alt = suggestAlternative(congestedAt(all, OSA, 'nrt'), new Set(['dc-jkt', 'dc-osa']), DCS, all);
    expect(alt).toBeUndefined();
  });

  it('never suggests another data center behind the congested node itself', () => {
    // A data center near Osaka would use nrt as well: it is no way around nrt.
    const kobe = dc('dc-kobe', 'Kobe DC', 34.69, 135.19);
    const all = nodes({ nrt: { used: 2 } });
    const alt = suggestAlternative(
      congestedAt(all, OSA, 'nrt'),
      new Set(['dc-osa', 'dc-gz']),
      [...DCS, kobe],
      all,
    );
    expect(alt?.dataCenterId).toBe('dc-sh');
  });

  it('has no alternative when no other data center can be reached through a node with room', () => {
    const all = nodes({ nrt: { used: 2 }, hkg: { status: 'down' }, sin: { used: 2 } });
    expect(suggestAlternative(congestedAt(all, OSA, 'nrt'), new Set(['dc-osa']), DCS, all)).toBeUndefined();
    expect(
      suggestAlternative(congestedAt(all, OSA, 'nrt'), new Set(['dc-osa']), [OSA], nodes()),
    ).toBeUndefined();
  });

  it('breaks distance ties by data center id, so the suggestion is stable', () => {
    const twinA = dc('dc-b', 'B', 31.23, 121.47);
    const twinB = dc('dc-a', 'A', 31.23, 121.47);
    const all = nodes({ nrt: { used: 2 } });
    const alt = suggestAlternative(congestedAt(all, OSA, 'nrt'), new Set(['dc-osa']), [twinA, twinB], all);
    expect(alt?.dataCenterId).toBe('dc-a');
  });
});
