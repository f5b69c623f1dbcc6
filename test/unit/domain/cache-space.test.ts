// Cache space rules (lambdas/domain/cache-space.ts): what a node has free for a migration, and which chunks the
// collector marks — least recently used unreferenced chunks from above the high-water mark down to the low-water
// mark (lower when a queued migration wants room), and those unused past the retention period whatever the space.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CACHE_SETTINGS,
  type EvictionEntry,
  graceOver,
  planEviction,
  spaceFor,
} from '../../../lambdas/domain/cache-space.ts';

const MiB = 1 << 20;
const NOW = new Date('2026-12-06T00:00:00Z');
const day = (n: number) => new Date(NOW.getTime() - n * 86_400_000).toISOString();
const sha = (n: number) => n.toString(16).padStart(64, '0');
const entry = (n: number, usedDaysAgo: number, extra: Partial<EvictionEntry> = {}): EvictionEntry => ({
  sha256: sha(n),
  length: 1 * MiB,
  storedAt: day(100),
  usedAt: day(usedDaysAgo),
  ...extra,
});
const none = () => false;

describe('spaceFor', () => {
  const node = {
    id: 'sin',
    budgetBytes: 10 * MiB,
    bytesHeld: 6 * MiB,
    spaceReservations: { 'mig-a': 2 * MiB },
  };

  it('fits within budget − held − reserved by others; its own reservation does not count against it', () => {
    expect(spaceFor(node, 'mig-b', 2 * MiB)).toMatchObject({ fits: true, freeBytes: 2 * MiB, never: false });
    expect(spaceFor(node, 'mig-a', 4 * MiB)).toMatchObject({ fits: true, freeBytes: 4 * MiB });
  });

  it('names the bytes when it does not fit, and says when even an empty node could not hold it', () => {
    const short = spaceFor(node, 'mig-b', 3 * MiB);
    expect(short.fits).toBe(false);
    expect(short.message).toBe(
      'cache node sin has 2.0 MiB free of its 10.0 MiB budget (6.0 MiB held, 2.0 MiB reserved by other ' +
        'migrations); this migration brings 3.0 MiB it does not hold',
    );
    expect(spaceFor(node, 'mig-b', 11 * MiB)).toMatchObject({ fits: false, never: true });
    expect(spaceFor(node, 'mig-b', 11 * MiB).message).toMatch(/more than the whole budget$/);
  });

  it('a node without a budget always fits', () => {
    expect(spaceFor({ id: 'x', bytesHeld: 1e15, spaceReservations: {} }, 'm', 1e15).fits).toBe(true);
  });
});

describe('planEviction', () => {
  const settings = DEFAULT_CACHE_SETTINGS;

  it('does nothing within budget or below the high-water mark', () => {
    const entries = [entry(1, 10), entry(2, 5)];
    expect(planEviction(entries, none, { bytesHeld: 2 * MiB }, settings, NOW).condemn).toEqual([]);
    expect(
      planEviction(entries, none, { budgetBytes: 10 * MiB, bytesHeld: 9 * MiB }, settings, NOW).condemn,
    ).toEqual([]);
  });

  it('above the high-water mark, marks least recently used first down to the low-water mark', () => {
    const entries = [entry(1, 1), entry(2, 30), entry(3, 10), entry(4, 20), entry(5, 2)];
    // 10 MiB budget: high 9 MiB, low 7.5 MiB; 10 held → 3 MiB must go (10 → 7 ≤ 7.5).
    const plan = planEviction(entries, none, { budgetBytes: 10 * MiB, bytesHeld: 10 * MiB }, settings, NOW);
    expect(plan.condemn.map((e) => e.sha256)).toEqual([sha(2), sha(4), sha(3)]);
    expect(plan.targetBytes).toBe(7.5 * MiB);
    expect(plan.evictableBytes).toBe(5 * MiB);
    expect(plan.reason).toMatch(
      /10\.0 MiB held of a 10\.0 MiB budget: 3 least recently used chunks down to 7\.5 MiB/,
    );
  });

  it('never marks a referenced chunk; counts marked and deleting entries as leaving', () => {
    const entries = [
      entry(1, 40),
      entry(2, 30, { condemnedAt: day(0) }),
      entry(3, 20, { deleting: day(0) }),
      entry(4, 10),
      entry(5, 5),
    ];
    const referenced = (s: string) => s === sha(1);
    const plan = planEviction(
      entries,
      referenced,
      { budgetBytes: 10 * MiB, bytesHeld: 10 * MiB },
      settings,
      NOW,
    );
    // 2 MiB already leaving; 10 − 2 = 8 > 7.5: one more, the oldest unreferenced unmarked one.
    expect(plan.condemn.map((e) => e.sha256)).toEqual([sha(4)]);
    // Referenced and deleting entries are not evictable.
    expect(plan.evictableBytes).toBe(3 * MiB);
  });

  it('a queued migration wanting room lowers the target below the low-water mark', () => {
    const entries = [entry(1, 4), entry(2, 3), entry(3, 2), entry(4, 1)];
    // 5 MiB held of 10: under the high-water mark, but a migration wants 7 MiB: down to 3 MiB.
    const plan = planEviction(
      entries,
      none,
      { budgetBytes: 10 * MiB, bytesHeld: 5 * MiB, wantedBytes: 7 * MiB },
      settings,
      NOW,
    );
    expect(plan.targetBytes).toBe(3 * MiB);
    expect(plan.condemn.map((e) => e.sha256)).toEqual([sha(1), sha(2)]);
    expect(plan.reason).toMatch(/7\.0 MiB wanted by a queued migration/);
  });

  it('past the retention period, unreferenced chunks go whatever the space; storedAt stands in for usedAt', () => {
    const entries = [
      entry(1, 40),
      { sha256: sha(2), length: MiB, storedAt: day(50) },
      entry(3, 5),
      entry(4, 45),
    ];
    const plan = planEviction(
      entries,
      (s) => s === sha(4),
      { bytesHeld: 4 * MiB },
      { ...settings, retentionDays: 30 },
      NOW,
    );
    expect(plan.condemn.map((e) => e.sha256)).toEqual([sha(2), sha(1)]);
    expect(plan.reason).toBe('2 unused for over 30 days');
  });
});

describe('planEviction with packs', () => {
  const settings = DEFAULT_CACHE_SETTINGS;
  const pack = (p: number) => p.toString(16).padStart(64, 'a');
  /** A chunk of 1 MiB stored as 0.5 MiB in pack `p`. */
  const inPack = (n: number, p: number, usedDaysAgo: number, extra: Partial<EvictionEntry> = {}) =>
    entry(n, usedDaysAgo, { stored: MiB / 2, pack: pack(p), ...extra });

  it('counts stored bytes, and marks whole packs by their latest use', () => {
    // Pack A (chunks 1, 2) last used 10 days ago, pack B (3, 4) 20 days ago, chunk 5 stored alone 15 days ago.
    const entries = [
      inPack(1, 0xa, 30),
      inPack(2, 0xa, 10),
      inPack(3, 0xb, 20),
      inPack(4, 0xb, 25),
      entry(5, 15),
    ];
    // 3 MiB stored of a 3 MiB budget: down to 2.25 MiB, so 1 MiB must go: pack B (its latest use is the oldest).
    const plan = planEviction(entries, none, { budgetBytes: 3 * MiB, bytesHeld: 3 * MiB }, settings, NOW);
    expect(plan.evictableBytes).toBe(3 * MiB);
    expect(plan.condemn.map((e) => e.sha256)).toEqual([sha(3), sha(4)]);
    expect(plan.reason).toMatch(/2 least recently used chunks down to/);
  });

  it('a pack with a referenced chunk is neither evictable nor marked, none of its chunks', () => {
    const entries = [inPack(1, 0xa, 30), inPack(2, 0xa, 30), inPack(3, 0xb, 1), inPack(4, 0xb, 1)];
    const plan = planEviction(
      entries,
      (s) => s === sha(1),
      { budgetBytes: 2 * MiB, bytesHeld: 2 * MiB },
      settings,
      NOW,
    );
    expect(plan.evictableBytes).toBe(1 * MiB);
    expect(plan.condemn.map((e) => e.sha256)).toEqual([sha(3), sha(4)]);
  });

  it('a pack partly marked is not leaving: its unmarked chunks are marked with it', () => {
    const entries = [inPack(1, 0xa, 30, { condemnedAt: day(0) }), inPack(2, 0xa, 1), inPack(3, 0xb, 20)];
    const plan = planEviction(
      entries,
      none,
      { budgetBytes: 1.5 * MiB, bytesHeld: 1.5 * MiB },
      { ...settings, lowWater: 0.5 },
      NOW,
    );
    // Down to 0.75 MiB: pack B (used 20 days ago) and then pack A (used a day ago), whose chunk 1 is marked already.
    expect(plan.condemn.map((e) => e.sha256)).toEqual([sha(3), sha(2)]);
  });
});

describe('graceOver', () => {
  it('is over once graceSeconds have passed since the mark', () => {
    const s = { ...DEFAULT_CACHE_SETTINGS, graceSeconds: 3600 };
    expect(graceOver(new Date(NOW.getTime() - 3_599_000).toISOString(), s, NOW)).toBe(false);
    expect(graceOver(new Date(NOW.getTime() - 3_600_000).toISOString(), s, NOW)).toBe(true);
  });
});
