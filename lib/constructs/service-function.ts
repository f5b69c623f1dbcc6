// A control-plane Lambda made from its declaration (lambdas/functions.ts): the environment environmentFor derives
// from its needs and, for each need, the grant that covers exactly the calls behind it. Nothing else sets a
// variable or grants an action on these functions, so what a function may do is read in one place.
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { TableId } from '../../lambdas/aws/tables.ts';
import {
  DEFAULT_FUNCTION_TIMEOUT_SECONDS,
  environmentFor,
  type FunctionDefinition,
  type ResourceValues,
} from '../../lambdas/needs.ts';
import { REASONS } from '../nag.ts';
import { BaseFunction } from './base-function.ts';
import type { MigrationTables } from './migration-tables.ts';

/** What the control plane's functions may be bound to. */
export interface ServiceResources {
  readonly tables: MigrationTables;
  readonly controlBucket: s3.Bucket;
  readonly controlBucketRegion: string;
  readonly cacheBucketPrefix: string;
  readonly cacheBucketArns: readonly string[];
  /** `arn:<partition>:s3:::<CACHE_BUCKET_PREFIX>`. */
  readonly cacheBucketArnPrefix: string;
  readonly edgeBaseUrl: string;
  /** The state machine by name: its functions are created before it (the ASL names their ARNs). */
  readonly stateMachineName: string;
  readonly edgeKeyPairId: string;
  readonly edgePrivateKey: secretsmanager.Secret;
  readonly edgeDistributionId: string;
  readonly workQueuePrefix: string;
}

export interface ServiceFunctionProps {
  readonly definition: FunctionDefinition;
  readonly resources: ServiceResources;
  readonly logRetention: logs.RetentionDays;
  /** A fixed role name, for roles other stacks must name (the API's). @default generated */
  readonly roleName?: string;
}

export class ServiceFunction extends BaseFunction {
  readonly definition: FunctionDefinition;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    const { definition, resources } = props;
    super(scope, id, {
      entry: definition.entry,
      description: definition.description,
      ...(definition.memorySize ? { memorySize: definition.memorySize } : {}),
      timeout: Duration.seconds(definition.timeoutSeconds ?? DEFAULT_FUNCTION_TIMEOUT_SECONDS),
      logRetention: props.logRetention,
      ...(props.roleName ? { roleName: props.roleName } : {}),
    });
    this.definition = definition;
    const stack = Stack.of(this);
    const stateMachineArn = stack.formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: resources.stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const values: ResourceValues = {
      region: stack.region,
      tableNames: Object.fromEntries(
        resources.tables.all().map((t) => [t.definition.id, t.table.tableName]),
      ) as Record<TableId, string>,
      controlBucket: resources.controlBucket.bucketName,
      controlBucketRegion: resources.controlBucketRegion,
      cacheBucketPrefix: resources.cacheBucketPrefix,
      edgeBaseUrl: resources.edgeBaseUrl,
      stateMachineArn,
      edgeKeyPairId: resources.edgeKeyPairId,
      edgePrivateKey: { secretArn: resources.edgePrivateKey.secretArn },
      edgeDistributionId: resources.edgeDistributionId,
      workQueuePrefix: resources.workQueuePrefix,
    };
    for (const [name, value] of Object.entries(environmentFor(definition.needs, values))) {
      this.setEnvironment(name, value);
    }
    this.grantNeeds(resources, stateMachineArn);
  }

  private grantNeeds(resources: ServiceResources, stateMachineArn: string): void {
    const { needs } = this.definition;
    const stack = Stack.of(this);
    for (const bound of resources.tables.all()) {
      const access = needs.tables?.[bound.definition.id];
      if (access) this.grantTable(bound, access);
    }
    if (needs.control) {
      this.grantObjects(resources.controlBucket.bucketArn, needs.control, '', REASONS.controlObjects);
      if (needs.control.list) this.grant(['s3:ListBucket'], [resources.controlBucket.bucketArn]);
    }
    if (needs.chunks) {
      for (const arn of resources.cacheBucketArns)
        this.grantObjects(arn, needs.chunks, 'chunks/', REASONS.chunks);
      if (needs.chunks.list) {
        this.grant(
          ['s3:ListBucket'],
          [`${resources.cacheBucketArnPrefix}*`],
          'ListBucket makes S3 answer 404, not 403, for a chunk that is not (yet) at a cache node, and lets ' +
            'HeadBucket tell a cache node not deployed yet; it lists key names only, on the cache node buckets of ' +
            'this deployment (named by its prefix).',
        );
      }
    }
    const executions = needs.executions;
    if (executions?.start) this.grant(['states:StartExecution'], [stateMachineArn]);
    if (executions?.taskResponse) {
      this.grant(
        ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
        [stateMachineArn],
      );
    }
    if (executions?.stop) {
      const executionArns = stack.formatArn({
        service: 'states',
        resource: 'execution',
        resourceName: `${resources.stateMachineName}:*`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
      this.grant(
        ['states:StopExecution'],
        [executionArns],
        'StopExecution acts on an execution ARN; executions are created per migration at run time, so the grant ' +
          'covers the executions of this one state machine.',
      );
    }
    if (needs.edge?.sign) resources.edgePrivateKey.grantRead(this.role);
    if (needs.edge?.invalidate) {
      this.grant(
        ['cloudfront:CreateInvalidation'],
        [
          stack.formatArn({
            service: 'cloudfront',
            region: '',
            resource: 'distribution',
            resourceName: resources.edgeDistributionId,
          }),
        ],
      );
    }
    const queues = needs.workQueues;
    if (queues?.send || queues?.manage) {
      const actions = [
        'sqs:GetQueueUrl',
        ...(queues.send ? ['sqs:SendMessage'] : []),
        ...(queues.manage ? ['sqs:CreateQueue', 'sqs:DeleteQueue'] : []),
      ];
      this.grant(
        actions,
        [
          stack.formatArn({
            service: 'sqs',
            resource: `${resources.workQueuePrefix}*`,
            arnFormat: ArnFormat.NO_RESOURCE_NAME,
          }),
        ],
        'One work queue per data center, created when its agent first asks for it (data centers are registered at ' +
          'run time); the grant covers the queues named with this deployment’s work-queue prefix only.',
      );
    }
  }
}

/**
 * One ServiceFunction per Task function of a state machine (construct id: the name in PascalCase), and the
 * `${Substitution}` → function ARN map its ASL file is deployed with.
 */
export function taskFunctions(
  scope: Construct,
  definitions: readonly (FunctionDefinition & { readonly substitution: string })[],
  purpose: string,
  props: Pick<ServiceFunctionProps, 'resources' | 'logRetention'>,
): { functions: Map<string, ServiceFunction>; substitutions: Record<string, string> } {
  const functions = new Map<string, ServiceFunction>();
  const substitutions: Record<string, string> = {};
  for (const definition of definitions) {
    const id = definition.name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
    const fn = new ServiceFunction(scope, id, {
      definition: { ...definition, description: `${purpose}: ${definition.description}` },
      resources: props.resources,
      logRetention: props.logRetention,
    });
    functions.set(definition.name, fn);
    substitutions[definition.substitution] = fn.functionArn;
  }
  return { functions, substitutions };
}
