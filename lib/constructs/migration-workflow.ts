// The migration state machine (statemachines/migration.asl.json, deployed unchanged with definition
// substitutions) and one Lambda per entry of TASK_FUNCTIONS, each granted only what its declaration lists.
import { fileURLToPath } from 'node:url';
import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { MIGRATION_ASL_PATH, TASK_FUNCTIONS } from '../../lambdas/functions.ts';
import { acknowledge, acknowledgeWildcardResource } from '../nag.ts';
import { type ServiceFunction, type ServiceResources, taskFunctions } from './service-function.ts';

export interface MigrationWorkflowProps {
  readonly resources: ServiceResources;
  readonly logRetention: logs.RetentionDays;
  /** Names the state machine's log group (`/aws/vendedlogs/states/<prefix>-migration`). */
  readonly namePrefix: string;
}

export class MigrationWorkflow extends Construct {
  /** By TASK_FUNCTIONS `name`. */
  readonly functions: ReadonlyMap<string, ServiceFunction>;
  readonly stateMachine: sfn.StateMachine;
  /** `${Substitution}` → function ARN, exactly what the ASL file is deployed with. */
  readonly definitionSubstitutions: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: MigrationWorkflowProps) {
    super(scope, id);
    const { functions, substitutions } = taskFunctions(
      this,
      Object.values(TASK_FUNCTIONS),
      'Migration workflow',
      props,
    );
    this.functions = functions;
    this.definitionSubstitutions = substitutions;

    const logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${props.namePrefix}-migration`,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      // Named, so its functions can be granted access to it before it exists (the ASL names their ARNs).
      stateMachineName: props.resources.stateMachineName,
      comment: 'One VM image migration through the cache nodes (statemachines/migration.asl.json)',
      definitionBody: sfn.DefinitionBody.fromFile(fileURLToPath(MIGRATION_ASL_PATH)),
      definitionSubstitutions: substitutions,
      stateMachineType: sfn.StateMachineType.STANDARD,
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    // The ASL invokes unqualified function ARNs: exactly these, no `:*` versions or aliases.
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [...functions.values()].map((f) => f.functionArn),
      }),
    );
    // The Replicate Distributed Map: it reads its items from the control bucket and runs child executions of this
    // same state machine (Step Functions' documented policy for a Distributed Map).
    const stack = Stack.of(this);
    const name = props.resources.stateMachineName;
    const self = stack.formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: name,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const children = [`${name}:*`, `${name}/*`].map((resourceName) =>
      stack.formatArn({
        service: 'states',
        resource: 'execution',
        resourceName,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    );
    const items = props.resources.controlBucket.arnForObjects('migrations/*');
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [self] }),
    );
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: children,
      }),
    );
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [items] }),
    );
    for (const arn of children) {
      acknowledgeWildcardResource(
        this.stateMachine,
        arn,
        'A Distributed Map runs its batches as child executions of this state machine, named at run time; the ' +
          'grant covers the executions of this one state machine.',
      );
    }
    acknowledgeWildcardResource(
      this.stateMachine,
      items,
      'The Distributed Map reads the list of copy batches a migration wrote under migrations/<id>/ of the control ' +
        'bucket; the key is per migration and attempt.',
    );
    acknowledge(
      this.stateMachine,
      'AwsSolutions-IAM5[Resource::*]',
      'Step Functions logging uses the CloudWatch Logs vended-log delivery APIs (logs:CreateLogDelivery, ' +
        'logs:PutResourcePolicy, ...) and tracing uses xray:PutTraceSegments; none supports resource-level ' +
        'permissions, so CDK grants them on "*".',
    );
  }
}
