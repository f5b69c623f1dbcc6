// The stacks come from the topology in cdk.json: which exist, in which region, and an order `cdk deploy --all`
// can follow across regions.
import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDeployment, replicationOrder } from '../../lib/app.ts';
import { deploymentSettings } from '../../lib/settings.ts';
import { parseTopology, TOPOLOGY_CONTEXT_KEY, type Topology } from '../../protocol/topology.ts';
import { CDK_JSON, cdkJsonContext, defaultDeployment, SKIP_BUNDLING } from './synth.ts';

const synth = defaultDeployment();
afterAll(() => synth.cleanup());
const topology = parseTopology(cdkJsonContext()[TOPOLOGY_CONTEXT_KEY]);

/** Stacks that must be deployed before `stackName`, transitively. */
function prerequisites(stackName: string): Set<string> {
  const stack = synth.deployment.ordered.find((s) => s.stackName === stackName);
  const seen = new Set<string>();
  const walk = (deps: readonly { stackName: string; dependencies: readonly unknown[] }[]) => {
    for (const d of deps) {
      if (seen.has(d.stackName)) continue;
      seen.add(d.stackName);
      walk(d.dependencies as never);
    }
  };
  walk((stack?.dependencies ?? []) as never);
  return seen;
}

describe('stacks from the topology', () => {
  it('has the edge and control plane in the home region and one cache-node stack per cache node region', () => {
    const stacks = synth.deployment.ordered.map((s) => [s.stackName, s.region]);
    expect(stacks).toEqual(
      expect.arrayContaining([
        ['vmmig-edge', topology.homeRegion],
        ['vmmig-control-plane', topology.homeRegion],
        ...topology.cacheNodes.map((n) => [`vmmig-cache-node-${n.id}`, n.region]),
      ]),
    );
    expect(stacks).toHaveLength(2 + topology.cacheNodes.length);
  });

  it('orders deployment: edge, then cache nodes (replication targets first), then the control plane', () => {
    const control = prerequisites('vmmig-control-plane');
    expect(control).toEqual(
      new Set(['vmmig-edge', ...topology.cacheNodes.map((n) => `vmmig-cache-node-${n.id}`)]),
    );
    for (const n of topology.cacheNodes)
      expect(prerequisites(`vmmig-cache-node-${n.id}`)).toContain('vmmig-edge');
    for (const pair of topology.replicationPairs) {
      expect(prerequisites(`vmmig-cache-node-${pair.from}`)).toContain(`vmmig-cache-node-${pair.to}`);
    }
    // `ordered` itself is a valid order: every stack after its prerequisites.
    const position = new Map(synth.deployment.ordered.map((s, i) => [s.stackName, i]));
    for (const s of synth.deployment.ordered) {
      for (const p of prerequisites(s.stackName))
        expect(position.get(p)).toBeLessThan(position.get(s.stackName) ?? -1);
    }
  });

  it('resolves cross-region references without lookups or custom resources (Fn::GetStackOutput)', () => {
    const hkg = JSON.stringify(synth.template('vmmig-cache-node-hkg').toJSON());
    expect(hkg).toContain('"Fn::GetStackOutput"');
    expect(hkg).toContain(`"Region":"${topology.homeRegion}"`);
    for (const s of synth.deployment.ordered) {
      const t = synth.template(s.stackName).toJSON() as { Resources: Record<string, { Type: string }> };
      const types = Object.values(t.Resources).map((r) => r.Type);
      expect(types.filter((type) => /CrossRegion|ExportsWriter|ExportsReader/.test(type))).toEqual([]);
    }
  });

  it('synthesizes offline: no context lookups', () => {
    expect(synth.missingContext).toEqual([]);
  });

  it('keeps cdk.json runnable as `npx tsx bin/app.ts`', () => {
    expect((JSON.parse(readFileSync(CDK_JSON, 'utf8')) as { app: string }).app).toBe('npx tsx bin/app.ts');
  });
});

describe('replication order', () => {
  const node = (id: string) => ({
    id,
    name: id,
    region: `ap-test-${id.length}`,
    location: { lat: 0, lon: 0 },
    capacity: 1,
  });
  const nodes = ['a', 'b', 'c'].map(node);

  it('puts every replication target before its sources', () => {
    const order = replicationOrder(nodes, [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
    ]).map((n) => n.id);
    expect(order).toEqual(['c', 'b', 'a']);
  });

  it('refuses a replication cycle, naming it', () => {
    expect(() =>
      replicationOrder(nodes, [
        { from: 'a', to: 'b' },
        { from: 'b', to: 'a' },
      ]),
    ).toThrow(/cycle \(a → b → a\)/);
  });
});

describe('deployment settings', () => {
  const build = (context: Record<string, unknown>) => {
    const app = new App({ context: { ...cdkJsonContext(), ...SKIP_BUNDLING, ...context } });
    return buildDeployment(
      app,
      deploymentSettings((k) => app.node.tryGetContext(k)),
      { nag: false },
    );
  };

  it('names the context key that is wrong', () => {
    expect(() => build({ 'vmmig:logRetentionDays': 42 })).toThrow(
      /context "vmmig:logRetentionDays": must be one of/,
    );
    expect(() =>
      build({
        'vmmig:edgeDomain':
          '{"domainName":"x.example.com","certificateArn":"arn:aws:acm:eu-west-1:123456789012:certificate/x"}',
      }),
    ).toThrow(/vmmig:edgeDomain.*us-east-1/);
  });

  it('refuses a home region CloudFront cannot log to', () => {
    const t = cdkJsonContext()[TOPOLOGY_CONTEXT_KEY] as Topology;
    expect(() => build({ [TOPOLOGY_CONTEXT_KEY]: { ...t, homeRegion: 'ap-east-1' } })).toThrow(
      /homeRegion ap-east-1/,
    );
  });

  it('prefixes every stack with vmmig:name', () => {
    const stacks = build({ 'vmmig:name': 'mig2' }).ordered.map((s) => s.stackName);
    expect(stacks.every((n) => n.startsWith('mig2-'))).toBe(true);
  });
});
