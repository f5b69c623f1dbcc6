// Which cache node a data center uses: its home while active, else the nearest active one; never a draining or
// down node; null when none is active.
import { describe, expect, it } from 'vitest';
import { greatCircleKm } from '../../../../lambdas/domain/geo.ts';
import { type CacheNodeStatus, chooseCacheNode } from '../../../../lambdas/domain/registry.ts';

const node = (id: string, lat: number, lon: number, status: CacheNodeStatus = 'active') => ({
  id,
  location: { lat, lon },
  status,
});
const HKG = node('hkg', 22.32, 114.17);
const NRT = node('nrt', 35.68, 139.69);
const SIN = node('sin', 1.35, 103.82);
const NODES = [HKG, NRT, SIN];
const GUANGZHOU = { location: { lat: 23.13, lon: 113.26 } };
const SHANGHAI = { location: { lat: 31.23, lon: 121.47 } };
const OSAKA = { location: { lat: 34.69, lon: 135.5 } };
const JAKARTA = { location: { lat: -6.2, lon: 106.85 } };

const with_ = (id: string, status: CacheNodeStatus) => NODES.map((n) => (n.id === id ? { ...n, status } : n));

describe('chooseCacheNode', () => {
  it('uses an active home, with its distance rounded to 0.1 km', () => {
    const choice = chooseCacheNode({ ...GUANGZHOU, homeCacheNode: 'hkg' }, NODES);
    expect(choice).toEqual({ id: 'hkg', reason: 'home', distanceKm: 129.7 });
    expect(choice?.distanceKm).toBeCloseTo(greatCircleKm(GUANGZHOU.location, HKG.location), 1);
  });

  it('uses a home even when another node is nearer', () => {
    expect(chooseCacheNode({ ...OSAKA, homeCacheNode: 'sin' }, NODES)).toMatchObject({
      id: 'sin',
      reason: 'home',
    });
  });

  it.each([
    ['Shanghai', SHANGHAI, 'hkg'],
    ['Osaka', OSAKA, 'nrt'],
    ['Jakarta', JAKARTA, 'sin'],
  ])('without a home, %s uses the nearest active node (%s)', (_name, dc, id) => {
    expect(chooseCacheNode(dc, NODES)).toMatchObject({ id, reason: 'nearest' });
  });

  it.each<CacheNodeStatus>(['draining', 'down'])(
    'a %s home is passed over for the nearest active node',
    (s) => {
      expect(chooseCacheNode({ ...GUANGZHOU, homeCacheNode: 'hkg' }, with_('hkg', s))).toMatchObject({
        id: 'sin',
        reason: 'nearest',
      });
      expect(chooseCacheNode(SHANGHAI, with_('hkg', s))).toMatchObject({ id: 'nrt', reason: 'nearest' });
    },
  );

  it('a home that is not registered (removed) falls back to the nearest', () => {
    expect(chooseCacheNode({ ...SHANGHAI, homeCacheNode: 'gone' }, NODES)).toMatchObject({
      id: 'hkg',
      reason: 'nearest',
    });
  });

  it('honours exclusions, for home and nearest alike', () => {
    expect(chooseCacheNode({ ...GUANGZHOU, homeCacheNode: 'hkg' }, NODES, new Set(['hkg']))?.id).toBe('sin');
    expect(chooseCacheNode(OSAKA, NODES, new Set(['nrt']))?.id).toBe('hkg');
  });

  it('is null when no node is active', () => {
    const none = NODES.map((n) => ({ ...n, status: 'down' as const }));
    expect(chooseCacheNode({ ...GUANGZHOU, homeCacheNode: 'hkg' }, none)).toBeNull();
    expect(chooseCacheNode(SHANGHAI, [])).toBeNull();
  });
});
