// The stacks of one deployment, derived from the topology: the edge (CloudFront) and the control plane in the
// home region, one cache-node stack per cache node region. Dependencies give `cdk deploy --all` a valid order:
// edge → cache nodes (replication targets before their sources) → control plane.
import { type App, type Stack, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { CacheNodeConfig } from '../protocol/topology.ts';
import { DeploymentNames } from './naming.ts';
import type { DeploymentSettings } from './settings.ts';
import { CacheNodeStack } from './stacks/cache-node-stack.ts';
import { ControlPlaneStack } from './stacks/control-plane-stack.ts';
import { EdgeStack } from './stacks/edge-stack.ts';

/**
 * Regions where CloudFront cannot deliver standard logs to S3 (the opt-in regions, per the CloudFront Developer
 * Guide on standard logging); the edge stack, and its log bucket, live in the home region.
 */
export const NO_CLOUDFRONT_LOG_REGIONS = [
  'af-south-1',
  'ap-east-1',
  'ap-east-2',
  'ap-south-2',
  'ap-southeast-3',
  'ap-southeast-4',
  'ap-southeast-5',
  'ap-southeast-7',
  'ca-west-1',
  'eu-central-2',
  'eu-south-1',
  'eu-south-2',
  'il-central-1',
  'me-central-1',
  'me-south-1',
  'mx-central-1',
];

export interface DeploymentStacks {
  readonly names: DeploymentNames;
  readonly edge: EdgeStack;
  readonly cacheNodes: ReadonlyMap<string, CacheNodeStack>;
  readonly controlPlane: ControlPlaneStack;
  /** Every stack, in a valid deployment order. */
  readonly ordered: readonly Stack[];
}

export interface BuildOptions {
  /** Run cdk-nag AwsSolutions at synthesis. @default true */
  readonly nag?: boolean;
  /** The account to deploy to; unset leaves it to the credentials `cdk deploy` runs with (AWS::AccountId). */
  readonly account?: string | undefined;
}

export function buildDeployment(
  app: App,
  settings: DeploymentSettings,
  options: BuildOptions = {},
): DeploymentStacks {
  const { topology } = settings;
  if (NO_CLOUDFRONT_LOG_REGIONS.includes(topology.homeRegion)) {
    throw new Error(
      `homeRegion ${topology.homeRegion} cannot receive CloudFront standard logs; choose a home region outside ` +
        `${NO_CLOUDFRONT_LOG_REGIONS.join(', ')} (cache nodes may still live there)`,
    );
  }
  const names = new DeploymentNames(settings.name);
  const account = settings.account ?? options.account;
  const env = (region: string) => ({ region, ...(account ? { account } : {}) });
  const common = { crossRegionReferences: true };

  const edge = new EdgeStack(app, names.edgeStack, {
    ...common,
    env: env(topology.homeRegion),
    description: 'vmmig edge: CloudFront distribution over the cache node buckets, signed URLs only',
    names,
    settings,
  });

  const cacheNodes = new Map<string, CacheNodeStack>();
  for (const node of replicationOrder(topology.cacheNodes, topology.replicationPairs)) {
    const replicateTo = topology.replicationPairs
      .filter((p) => p.from === node.id)
      .map((p) => topology.cacheNodes.find((n) => n.id === p.to) as CacheNodeConfig);
    const stack = new CacheNodeStack(app, names.cacheNodeStack(node.id), {
      ...common,
      env: env(node.region),
      description: `vmmig cache node ${node.id} (${node.name}): chunk bucket`,
      names,
      cacheNode: node,
      replicateTo,
      distributionArn: edge.distribution.distributionArn,
    });
    stack.addStackDependency(edge, 'CloudFront reads the bucket: the policy names the distribution');
    for (const to of replicateTo) {
      const target = cacheNodes.get(to.id);
      if (target) stack.addStackDependency(target, `replication to ${to.id} needs its bucket to exist`);
    }
    cacheNodes.set(node.id, stack);
  }

  const controlPlane = new ControlPlaneStack(app, names.controlPlaneStack, {
    ...common,
    env: env(topology.homeRegion),
    description: 'vmmig control plane: migration API, state machine, tables, registry',
    names,
    settings,
    edge: {
      baseUrl: edge.baseUrl,
      // Signers use the current generation; the key group still trusts the one before
      // (lib/constructs/edge-key-pair.ts).
      keyPairId: edge.keyPair.current.publicKey.publicKeyId,
      privateKey: edge.keyPair.current.secret,
      distributionId: edge.distribution.distributionId,
    },
  });
  controlPlane.addStackDependency(edge, 'edge URL, key pair id and signing key');
  for (const stack of cacheNodes.values()) {
    controlPlane.addStackDependency(stack, 'the registry seeds buckets that must exist');
  }

  Tags.of(app).add('app', names.prefix);
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { names, edge, cacheNodes, controlPlane, ordered: [edge, ...cacheNodes.values(), controlPlane] };
}

/**
 * Cache nodes ordered so every replication target comes before its sources: S3 refuses a replication rule whose
 * destination bucket does not exist yet. A cycle (a → b → a) cannot be deployed in one pass.
 */
export function replicationOrder(
  nodes: readonly CacheNodeConfig[],
  pairs: readonly { readonly from: string; readonly to: string }[],
): CacheNodeConfig[] {
  const ordered: CacheNodeConfig[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (node: CacheNodeConfig, path: string[]) => {
    if (state.get(node.id) === 'done') return;
    if (state.get(node.id) === 'visiting') {
      throw new Error(
        `replicationPairs form a cycle (${[...path, node.id].join(' → ')}): S3 needs each replication target ` +
          'bucket to exist before the rule that writes to it, so the stacks of a cycle have no valid order. ' +
          'Keep standing replication acyclic; the workflow copies chunks between any cache nodes on demand.',
      );
    }
    state.set(node.id, 'visiting');
    for (const p of pairs.filter((p) => p.from === node.id)) {
      const target = nodes.find((n) => n.id === p.to);
      if (target) visit(target, [...path, node.id]);
    }
    state.set(node.id, 'done');
    ordered.push(node);
  };
  for (const node of nodes) visit(node, []);
  return ordered;
}
