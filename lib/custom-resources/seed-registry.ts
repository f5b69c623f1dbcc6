// Deploy-time Lambda code: seeds the node registry from the topology in cdk.json at every deployment, the way the
// local cloud does at start (lambdas/aws/seed.ts decides what to create and what to leave alone). Deleting the
// stack leaves the registry: the table is retained.
import { AwsClients } from '../../lambdas/aws/clients.ts';
import { RegistryStore } from '../../lambdas/aws/registry-store.ts';
import { type SeedResult, seedRegistry } from '../../lambdas/aws/seed.ts';
import { ENV, requireEnv } from '../../lambdas/config.ts';
import { parseTopology, type Topology } from '../../protocol/topology.ts';
import { type CustomResourceEvent, type CustomResourceResult, respondTo } from './cfn-response.ts';

export interface SeedRegistryProperties {
  /** The topology as JSON (a string, so CloudFormation does not turn its numbers into strings). */
  readonly Topology: string;
  readonly CacheBucketPrefix: string;
}

export const PHYSICAL_ID = 'registry-seed';

export type Seeder = (topology: Topology, bucketFor: (cacheNodeId: string) => string) => Promise<SeedResult>;

export async function seed(event: CustomResourceEvent, seeder: Seeder): Promise<CustomResourceResult> {
  if (event.RequestType === 'Delete') return { physicalResourceId: event.PhysicalResourceId };
  const props = event.ResourceProperties as unknown as SeedRegistryProperties;
  const topology = parseTopology(JSON.parse(props.Topology), 'the Topology property');
  const result = await seeder(topology, (id) => `${props.CacheBucketPrefix}${id}`);
  console.log(JSON.stringify({ seeded: result }));
  return {
    physicalResourceId: PHYSICAL_ID,
    data: {
      CreatedCacheNodes: result.createdCacheNodes.join(','),
      CreatedDataCenters: result.createdDataCenters.join(','),
    },
  };
}

const clients = new AwsClients();

export const handler = (event: CustomResourceEvent): Promise<void> =>
  respondTo(event, (e) =>
    seed(e, (topology, bucketFor) =>
      seedRegistry(new RegistryStore(clients.dynamo(), requireEnv(ENV.tableRegistry)), topology, bucketFor),
    ),
  );
