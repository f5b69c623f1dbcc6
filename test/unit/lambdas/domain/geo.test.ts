// Great-circle distance (how a data center finds its nearest cache node, draft §3.1 step 3), against distances
// anyone can look up.
import { describe, expect, it } from 'vitest';
import { byDistance, greatCircleKm } from '../../../../lambdas/domain/geo.ts';

const GUANGZHOU = { lat: 23.13, lon: 113.26 };
const HONG_KONG = { lat: 22.32, lon: 114.17 };
const LONDON = { lat: 51.5074, lon: -0.1278 };
const PARIS = { lat: 48.8566, lon: 2.3522 };
const NEW_YORK = { lat: 40.7128, lon: -74.006 };
const LOS_ANGELES = { lat: 34.0522, lon: -118.2437 };
const SYDNEY = { lat: -33.8688, lon: 151.2093 };
const TOKYO = { lat: 35.6762, lon: 139.6503 };

describe('greatCircleKm', () => {
  it.each([
    ['Guangzhou – Hong Kong', GUANGZHOU, HONG_KONG, 130, 2],
    ['London – Paris', LONDON, PARIS, 344, 2],
    ['New York – Los Angeles', NEW_YORK, LOS_ANGELES, 3936, 5],
    ['Sydney – Tokyo', SYDNEY, TOKYO, 7823, 10],
    ['equator to pole', { lat: 0, lon: 0 }, { lat: 90, lon: 0 }, 10_008, 5],
    ['antipodes', { lat: 0, lon: 0 }, { lat: 0, lon: 180 }, 20_015, 5],
    ['one degree across the antimeridian', { lat: 0, lon: 179.5 }, { lat: 0, lon: -179.5 }, 111.2, 0.5],
    ['two points on a pole', { lat: 90, lon: 0 }, { lat: 90, lon: 120 }, 0, 0.001],
  ])('%s ≈ %d km', (_name, a, b, km, tolerance) => {
    expect(Math.abs(greatCircleKm(a, b) - km)).toBeLessThanOrEqual(tolerance);
  });

  it('is zero from a point to itself and symmetric', () => {
    expect(greatCircleKm(TOKYO, TOKYO)).toBe(0);
    expect(greatCircleKm(LONDON, SYDNEY)).toBeCloseTo(greatCircleKm(SYDNEY, LONDON), 9);
  });
});

describe('byDistance', () => {
  it('sorts nearest first and breaks ties by id', () => {
    const from = { lat: 0, lon: 0 };
    const nodes = [
      { id: 'far', location: { lat: 0, lon: 10 } },
      { id: 'b-east', location: { lat: 0, lon: 1 } },
      { id: 'a-west', location: { lat: 0, lon: -1 } },
    ];
    expect(byDistance(from, nodes).map((x) => x.node.id)).toEqual(['a-west', 'b-east', 'far']);
    expect(byDistance(from, [])).toEqual([]);
  });
});
