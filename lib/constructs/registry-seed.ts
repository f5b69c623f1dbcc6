// Seeds the node registry from the topology at every deployment (lib/custom-resources/seed-registry.ts), the AWS
// equal of what the local cloud does at start.
import { CustomResource, Duration } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { Topology } from '../../protocol/topology.ts';
import type { SeedRegistryProperties } from '../custom-resources/seed-registry.ts';
import { BaseFunction, type BoundTable } from './base-function.ts';

export interface RegistrySeedProps {
  readonly registry: BoundTable;
  readonly topology: Topology;
  readonly cacheBucketPrefix: string;
  readonly logRetention: logs.RetentionDays;
}

export class RegistrySeed extends Construct {
  readonly function: BaseFunction;

  constructor(scope: Construct, id: string, props: RegistrySeedProps) {
    super(scope, id);
    this.function = new BaseFunction(this, 'Seeder', {
      entry: 'lib/custom-resources/seed-registry.ts',
      description: 'Deploy time: creates the cache nodes and data centers of the topology that are missing',
      timeout: Duration.minutes(2),
      logRetention: props.logRetention,
    });
    this.function.bindTable(props.registry, 'readWrite');
    const properties: SeedRegistryProperties = {
      Topology: JSON.stringify(props.topology),
      CacheBucketPrefix: props.cacheBucketPrefix,
    };
    new CustomResource(this, 'Resource', {
      serviceToken: this.function.functionArn,
      resourceType: 'Custom::RegistrySeed',
      properties,
    });
  }
}
