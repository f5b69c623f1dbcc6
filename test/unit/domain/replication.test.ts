import { describe, expect, it } from 'vitest';
import type { CopyItem } from '../../../lambdas/domain/control-keys.ts';
import { batchCopies, planReplication } from '../../../lambdas/domain/replication.ts';

const nodes = [
  { id: 'hkg', location: { lat: 22.32, lon: 114.17 } },
  { id: 'nrt', location: { lat: 35.68, lon: 139.69 } },
  { id: 'sin', location: { lat: 1.35, lon: 103.82 } },
];
const c = (n: number) => ({ sha256: n.toString(16).padStart(64, '0'), length: 1000 + n });

describe('planReplication', () => {
  it('copies each missing chunk from the nearest node that holds it', () => {
    const holders = new Map([
      [c(1).sha256, new Set(['hkg', 'nrt'])], // sin: hkg is nearer than nrt
      [c(2).sha256, new Set(['nrt'])], // only nrt has it
      [c(3).sha256, new Set(['sin', 'hkg'])], // sin has it already
    ]);
    const plan = planReplication([c(1), c(2), c(3)], ['sin'], holders, nodes);
    expect(plan.copies).toEqual([
      { ...c(1), from: 'hkg', to: 'sin' },
      { ...c(2), from: 'nrt', to: 'sin' },
      // The index places c(3) at sin already: looked at there, not copied.
      { ...c(3), from: 'sin', to: 'sin', verify: true },
    ]);
    expect(plan.perTarget.get('sin')).toEqual({
      total: { chunks: 3, bytes: c(1).length + c(2).length + c(3).length },
      toCopy: { chunks: 2, bytes: c(1).length + c(2).length },
    });
  });

  it('plans each destination node separately (fan-out: one upload, copies per node)', () => {
    const holders = new Map([[c(1).sha256, new Set(['hkg'])]]);
    const plan = planReplication([c(1)], ['nrt', 'sin'], holders, nodes);
    expect(plan.copies.map((x) => `${x.from}->${x.to}`)).toEqual(['hkg->nrt', 'hkg->sin']);
  });

  it('copies nothing to a node that holds everything, only checks that it does', () => {
    const holders = new Map([[c(1).sha256, new Set(['nrt'])]]);
    const plan = planReplication([c(1)], ['nrt'], holders, nodes);
    expect(plan.copies).toEqual([{ ...c(1), from: 'nrt', to: 'nrt', verify: true }]);
    expect(plan.perTarget.get('nrt')?.toCopy).toEqual({ chunks: 0, bytes: 0 });
  });

  it('reports a chunk no usable node holds as lost (the source uploads it again), once for all targets', () => {
    const holders = new Map([[c(1).sha256, new Set(['hkg'])]]);
    const plan = planReplication([c(1), c(9)], ['nrt', 'sin'], holders, nodes);
    expect(plan.lost).toEqual([c(9)]);
    expect(plan.copies.map((x) => `${x.sha256 === c(1).sha256 ? 1 : 9} ${x.from}->${x.to}`)).toEqual([
      '1 hkg->nrt',
      '1 hkg->sin',
    ]);
  });

  it('ignores holders that are not usable nodes (down nodes are filtered out by the caller)', () => {
    const holders = new Map([[c(1).sha256, new Set(['gone', 'sin'])]]);
    expect(planReplication([c(1)], ['hkg'], holders, nodes).copies).toEqual([
      { ...c(1), from: 'sin', to: 'hkg' },
    ]);
  });
});

describe('batchCopies', () => {
  const copy = (n: number, from = 'hkg', to = 'nrt'): CopyItem => ({ ...c(n), from, to });
  const packName = (p: number) => p.toString(16).padStart(64, 'a');

  it('keeps the chunks of one pack at one source together, in pack order, whatever the plan order', () => {
    // Chunks 1-6: 1, 3 and 5 in pack A at hkg (offsets 5, 3, 1); 2, 4 and 6 in pack B.
    const place = (_: string, sha256: string) => {
      const n = Number.parseInt(sha256, 16);
      return { pack: packName(n % 2 === 1 ? 0xa : 0xb), offset: 10 - n };
    };
    const batches = batchCopies(
      [1, 2, 3, 4, 5, 6].map((n) => copy(n)),
      place,
      2,
    );
    const numbers = batches.map((b) => b.map((i) => Number.parseInt(i.sha256, 16)));
    // A batch reaches its size only at the end of a pack: three chunks each.
    expect(numbers).toEqual([
      [5, 3, 1],
      [6, 4, 2],
    ]);
  });

  it('cuts chunks stored alone (the format before packs) at the batch size, and each destination apart', () => {
    const batches = batchCopies(
      [copy(1), copy(2, 'hkg', 'sin'), copy(3), copy(4), copy(5)],
      () => undefined,
      2,
    );
    expect(batches.map((b) => b.map((i) => `${Number.parseInt(i.sha256, 16)}>${i.to}`))).toEqual([
      ['1>nrt', '3>nrt'],
      ['4>nrt', '5>nrt'],
      ['2>sin'],
    ]);
  });

  it('closes a batch at four times its size even inside a pack', () => {
    const place = () => ({ pack: packName(0xa), offset: 0 });
    const batches = batchCopies(
      Array.from({ length: 10 }, (_, n) => copy(n + 1)),
      place,
      2,
    );
    expect(batches.map((b) => b.length)).toEqual([8, 2]);
  });
});
