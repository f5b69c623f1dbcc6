// Sizes as `vmmig node set --budget` reads them, and the `vmmig node ls` line that shows them back.
import { describe, expect, it } from 'vitest';
import { nodeLine } from '../../../cli/commands/registry.ts';
import { parseBudget, parseSize } from '../../../cli/size.ts';
import type { CacheNode } from '../../../protocol/api/registry.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('parseSize', () => {
  it.each([
    ['1048576', MiB],
    ['1048576B', MiB],
    ['64MiB', 64 * MiB],
    ['64mib', 64 * MiB],
    ['10GiB', 10 * GiB],
    ['10 GiB', 10 * GiB],
    ['10G', 10 * GiB],
    ['1.5GiB', 1.5 * GiB],
    ['2TiB', 2 * 1024 ** 4],
    ['512K', 512 * 1024],
    ['1TB', 1e12],
    ['250GB', 250e9],
    ['4.35MB', 4_350_000],
    ['  8MiB ', 8 * MiB],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'ten', '-5MiB', '10XB', '10 GiBs', '1e9', 'MiB', '1,5GiB'])('refuses "%s"', (text) => {
    expect(() => parseSize(text)).toThrow(/is not a size: use e\.g\. 64MiB, 10GiB, 1TB/);
  });

  it('refuses a size beyond whole-number precision', () => {
    expect(() => parseSize('9000PiB')).toThrow(/too large/);
  });
});

describe('parseBudget', () => {
  it('reads none (or unlimited) as no budget, anything else as a size', () => {
    expect(parseBudget('none')).toBe('none');
    expect(parseBudget('Unlimited')).toBe('none');
    expect(parseBudget('64MiB')).toBe(64 * MiB);
    expect(() => parseBudget('nothing')).toThrow(/not a size/);
  });
});

describe('nodeLine', () => {
  const node: CacheNode = {
    id: 'hkg',
    name: 'Hong Kong',
    region: 'ap-east-1',
    location: { lat: 22.32, lon: 114.17 },
    capacity: 8,
    status: 'active',
    bucket: 'b',
    address: 'http://127.0.0.1:7701/hkg/',
    activeTransfers: 2,
    reservations: [],
    bytesHeld: 3 * GiB,
    chunksHeld: 700,
    bytesReserved: 512 * MiB,
    homedDataCenters: [],
    createdAt: '2026-11-25T08:00:00.000Z',
    updatedAt: '2026-11-25T08:00:00.000Z',
  };

  it('shows slots, held of the budget, reserved and evictable', () => {
    const line = nodeLine({
      ...node,
      budgetBytes: 10 * GiB,
      collection: {
        at: '2026-11-25T09:00:00.000Z',
        evictableBytes: 1.5 * GiB,
        marked: { chunks: 0, bytes: 0 },
        freed: { chunks: 0, bytes: 0 },
        pending: { chunks: 0, bytes: 0 },
        reason: 'within budget',
      },
    });
    expect(line).toMatch(
      /^hkg +Hong Kong +ap-east-1 +active +2\/8 transfers +held +3\.0 GiB \/ 10\.0 GiB +reserved +512\.0 MiB +evictable +1\.5 GiB +http:\/\/127\.0\.0\.1:7701\/hkg\/$/,
    );
  });

  it('says unlimited without a budget and "-" before any collection', () => {
    expect(nodeLine(node)).toMatch(/held +3\.0 GiB \/ unlimited +reserved +512\.0 MiB +evictable +- +http/);
  });
});
