// The one Lambda function construct: Node 24 on ARM64, an esbuild ESM bundle with source maps, active tracing,
// its own log group with retention and its own role without managed policies. Bind helpers set an environment
// variable and grant exactly what the code behind it calls, in one call.
//
// Tests skip bundling with CDK's own switch, context `aws:cdk:bundling-stacks` = [] (see test/infra/synth.ts);
// `cdk synth` and `cdk deploy` bundle for real.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { TableDefinition } from '../../lambdas/aws/tables.ts';
import { acknowledge, acknowledgeWildcardResource, REASONS } from '../nag.ts';

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A module path relative to the repository root, e.g. `lambdas/api/lambda.ts`. */
export const entryPath = (relative: string) => join(PROJECT_ROOT, relative);

export interface BaseFunctionProps {
  /** Module exporting `handler`, relative to the repository root. */
  readonly entry: string;
  readonly description: string;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default one minute */
  readonly timeout?: Duration;
  readonly logRetention: logs.RetentionDays;
  /** A fixed role name, for roles other stacks must name (the API's). @default generated */
  readonly roleName?: string;
}

export type TableAccess = 'read' | 'readWrite';

/** A table and its shape from lambdas/aws/tables.ts (which names its environment variable and indexes). */
export interface BoundTable {
  readonly table: dynamodb.Table;
  readonly definition: TableDefinition;
}

const TABLE_ACTIONS: Record<TableAccess, string[]> = {
  read: [
    'dynamodb:BatchGetItem',
    'dynamodb:ConditionCheckItem',
    'dynamodb:DescribeTable',
    'dynamodb:GetItem',
    'dynamodb:Query',
    'dynamodb:Scan',
  ],
  readWrite: [
    'dynamodb:BatchGetItem',
    'dynamodb:BatchWriteItem',
    'dynamodb:ConditionCheckItem',
    'dynamodb:DeleteItem',
    'dynamodb:DescribeTable',
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:Query',
    'dynamodb:Scan',
    'dynamodb:UpdateItem',
  ],
};

export interface ObjectAccess {
  /** GetObject (also what HeadObject and the source side of CopyObject need). */
  readonly read?: boolean;
  /** PutObject (presigned PUTs and the target side of CopyObject). */
  readonly write?: boolean;
  /** DeleteObject (removing a corrupted chunk before it is copied again). */
  readonly delete?: boolean;
}

export class BaseFunction extends Construct implements iam.IGrantable {
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly function: NodejsFunction;

  constructor(scope: Construct, id: string, props: BaseFunctionProps) {
    super(scope, id);
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (Lambda execution role)`,
      ...(props.roleName ? { roleName: props.roleName } : {}),
    });
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.function = new NodejsFunction(this, 'Function', {
      entry: entryPath(props.entry),
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.minutes(1),
      tracing: lambda.Tracing.ACTIVE,
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // Stack traces through the bundle's source map.
      environment: { NODE_OPTIONS: '--enable-source-maps' },
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: entryPath('package-lock.json'),
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        platform: 'node',
        mainFields: ['module', 'main'],
        // Bundle our pinned AWS SDK versions instead of relying on the one in the runtime.
        externalModules: [],
        bundleAwsSDK: true,
        minify: true,
        keepNames: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.DEFAULT,
        sourcesContent: false,
        // CommonJS dependencies inside an ESM bundle still call require().
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
    });
    // Lambda writes its own logs: only to this function's log group, no AWSLambdaBasicExecutionRole.
    this.logGroup.grantWrite(this.role);
    acknowledge(this, 'AwsSolutions-IAM5[Resource::*]', REASONS.xray);
  }

  get grantPrincipal(): iam.IPrincipal {
    return this.role;
  }

  get functionArn(): string {
    return this.function.functionArn;
  }

  setEnvironment(name: string, value: string): this {
    this.function.addEnvironment(name, value);
    return this;
  }

  /**
   * Sets the table's environment variable and grants the item actions of `access` on the table and on each of its
   * indexes by name. `'environment only'` is for code that builds every adapter at start (lambdas/aws/deps.ts)
   * but never calls this table.
   */
  bindTable(bound: BoundTable, access: TableAccess | 'environment only'): this {
    this.setEnvironment(bound.definition.envVar, bound.table.tableName);
    if (access === 'environment only') return this;
    const tableArn = bound.table.tableArn;
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: TABLE_ACTIONS[access],
        resources: [tableArn, ...bound.definition.indexes.map((i) => `${tableArn}/index/${i.name}`)],
      }),
    );
    return this;
  }

  /** Sets `envVar` to the bucket name and grants object access under `keyPrefix`. */
  bindBucket(envVar: string, bucket: s3.Bucket, access: ObjectAccess, keyPrefix = ''): this {
    this.setEnvironment(envVar, bucket.bucketName);
    this.grantObjects(bucket.bucketArn, access, keyPrefix, REASONS.controlObjects);
    return this;
  }

  /**
   * Grants object access to the chunks of cache node buckets known by ARN (they live in other regions' stacks);
   * the caller sets CACHE_BUCKET_PREFIX once.
   */
  grantChunks(bucketArns: readonly string[], access: ObjectAccess): this {
    for (const arn of bucketArns) this.grantObjects(arn, access, 'chunks/', REASONS.chunks);
    return this;
  }

  /** s3:ListBucket (what HeadBucket needs) on the buckets matching `bucketArnPattern`. */
  grantHeadBucket(bucketArnPattern: string, reason: string): this {
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucketArnPattern] }),
    );
    if (bucketArnPattern.includes('*')) acknowledgeWildcardResource(this, bucketArnPattern, reason);
    return this;
  }

  /** Sets `envVar` to the state machine ARN and grants the listed execution-level actions. */
  bindStateMachine(
    envVar: string,
    stateMachine: sfn.StateMachine,
    access: { readonly start?: boolean; readonly stop?: boolean; readonly taskResponse?: boolean },
  ): this {
    this.setEnvironment(envVar, stateMachine.stateMachineArn);
    if (access.start) stateMachine.grantStartExecution(this.role);
    if (access.taskResponse) stateMachine.grantTaskResponse(this.role);
    if (access.stop) {
      const stack = Stack.of(this);
      const executions = stack.formatArn({
        service: 'states',
        resource: 'execution',
        resourceName: `${stateMachine.stateMachineName}:*`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
      this.role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['states:StopExecution'], resources: [executions] }),
      );
      acknowledgeWildcardResource(
        this,
        executions,
        'StopExecution acts on an execution ARN; executions are created per migration at run time, so the grant ' +
          'covers the executions of this one state machine.',
      );
    }
    return this;
  }

  /** Sets `envVar` to the secret ARN and grants reading its value. */
  bindSecret(envVar: string, secret: secretsmanager.Secret): this {
    this.setEnvironment(envVar, secret.secretArn);
    secret.grantRead(this.role);
    return this;
  }

  private grantObjects(bucketArn: string, access: ObjectAccess, keyPrefix: string, reason: string): void {
    const actions = [
      ...(access.read ? ['s3:GetObject'] : []),
      ...(access.write ? ['s3:PutObject'] : []),
      ...(access.delete ? ['s3:DeleteObject'] : []),
    ];
    if (actions.length === 0) return;
    const objects = `${bucketArn}/${keyPrefix}*`;
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: [objects] }));
    acknowledgeWildcardResource(this, objects, reason);
  }
}
