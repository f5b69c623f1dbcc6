// The one Lambda function construct: Node 24 on ARM64, an esbuild ESM bundle with source maps, active tracing,
// its own log group with retention and its own role without managed policies. Bind helpers set an environment
// variable and grant exactly what the code behind it calls, in one call.
//
// Tests skip bundling with CDK's own switch, context `aws:cdk:bundling-stacks` = [] (see test/infra/synth.ts);
// `cdk synth` and `cdk deploy` bundle for real.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { TableDefinition } from '../../lambdas/aws/tables.ts';
import type { ObjectAccess, TableAccess } from '../../lambdas/needs.ts';
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

  /** Sets the table's environment variable and grants the item actions of `access` on it and its indexes. */
  bindTable(bound: BoundTable, access: TableAccess): this {
    this.setEnvironment(bound.definition.envVar, bound.table.tableName);
    this.grantTable(bound, access);
    return this;
  }

  /** Grants the item actions of `access` on the table and on each of its indexes by name. */
  grantTable(bound: BoundTable, access: TableAccess): this {
    const tableArn = bound.table.tableArn;
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: TABLE_ACTIONS[access],
        resources: [tableArn, ...bound.definition.indexes.map((i) => `${tableArn}/index/${i.name}`)],
      }),
    );
    return this;
  }

  /** Object actions on `<bucketArn>/<keyPrefix>*`. */
  grantObjects(bucketArn: string, access: ObjectAccess, keyPrefix: string, reason: string): this {
    const actions = [
      ...(access.read ? ['s3:GetObject'] : []),
      ...(access.write ? ['s3:PutObject'] : []),
      ...(access.delete ? ['s3:DeleteObject'] : []),
    ];
    if (actions.length === 0) return this;
    const objects = `${bucketArn}/${keyPrefix}*`;
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: [objects] }));
    acknowledgeWildcardResource(this, objects, reason);
    return this;
  }

  /** Actions on resources, acknowledging the wildcard ones with `reason`. */
  grant(actions: readonly string[], resources: readonly string[], reason?: string): this {
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: [...actions], resources: [...resources] }),
    );
    for (const resource of resources) {
      if (resource.includes('*')) {
        if (!reason) throw new Error(`a wildcard grant needs a reason: ${resource}`);
        acknowledgeWildcardResource(this, resource, reason);
      }
    }
    return this;
  }
}
