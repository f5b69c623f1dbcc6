import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTopology, parseTopology, TopologyError } from '../../protocol/topology.ts';

const cdkJson = fileURLToPath(new URL('../../cdk.json', import.meta.url));

describe('topology', () => {
  it('loads the default topology from cdk.json: 3+ cache nodes in 3+ regions, 4+ data centers', () => {
    const t = loadTopology(cdkJson);
    expect(new Set(t.cacheNodes.map((n) => n.region)).size).toBeGreaterThanOrEqual(3);
    expect(new Set(t.dataCenters.map((d) => d.name)).size).toBeGreaterThanOrEqual(4);
  });

  it('names the bad field and the reason', () => {
    const t = structuredClone(loadTopology(cdkJson)) as unknown as {
      cacheNodes: { capacity: unknown }[];
      dataCenters: { homeCacheNode?: string }[];
    };
    (t.cacheNodes[1] as { capacity: unknown }).capacity = 0;
    (t.dataCenters[2] as { homeCacheNode?: string }).homeCacheNode = 'nowhere';
    expect(() => parseTopology(t)).toThrow(TopologyError);
    try {
      parseTopology(t);
    } catch (err) {
      expect((err as Error).message).toMatch(/topology\.cacheNodes\[1\]\.capacity: .*>=\s*1/);
      expect((err as Error).message).toMatch(
        /topology\.dataCenters\[2\]\.homeCacheNode: unknown cache node "nowhere"/,
      );
    }
  });

  it('takes an optional storage budget per cache node: absent, or whole bytes of at least 1 MiB', () => {
    const t = structuredClone(loadTopology(cdkJson));
    expect(t.cacheNodes.every((n) => n.budgetBytes === undefined)).toBe(true);
    (t.cacheNodes[0] as { budgetBytes?: number }).budgetBytes = 10 * 1024 ** 3;
    expect(parseTopology(t).cacheNodes[0]?.budgetBytes).toBe(10 * 1024 ** 3);
    for (const bad of [0, 1024, 1024 ** 2 + 0.5, 2 ** 53, '10GiB']) {
      (t.cacheNodes[0] as { budgetBytes?: unknown }).budgetBytes = bad;
      expect(() => parseTopology(t), String(bad)).toThrow(/topology\.cacheNodes\[0\]\.budgetBytes: /);
    }
  });

  it('refuses duplicate ids and replication pairs to unknown nodes', () => {
    const t = structuredClone(loadTopology(cdkJson));
    t.cacheNodes.push({ ...(t.cacheNodes[0] as (typeof t.cacheNodes)[number]), region: 'eu-west-1' });
    t.replicationPairs.push({ from: 'hkg', to: 'mars' });
    expect(() => parseTopology(t)).toThrow(
      /cacheNodes\[3\]\.id: duplicate cache node id "hkg"[\s\S]*replicationPairs\[1\]\.to: unknown cache node "mars"/,
    );
  });
});
