// The migration state machine (statemachines/migration.asl.json, deployed unchanged with definition
// substitutions) and one Lambda per entry of WORKFLOW_FUNCTIONS, each granted only what its task calls.
import { fileURLToPath } from 'node:url';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { MIGRATION_ASL_PATH, WORKFLOW_FUNCTIONS } from '../../lambdas/workflow/functions.ts';
import { acknowledge } from '../nag.ts';
import { BaseFunction } from './base-function.ts';
import { bindService, type ServiceResources, WORKFLOW_ACCESS } from './service-access.ts';

export interface MigrationWorkflowProps {
  readonly resources: ServiceResources;
  readonly logRetention: logs.RetentionDays;
  /** Names the state machine's log group (`/aws/vendedlogs/states/<prefix>-migration`). */
  readonly namePrefix: string;
}

export class MigrationWorkflow extends Construct {
  /** By WORKFLOW_FUNCTIONS `name`. */
  readonly functions: ReadonlyMap<string, BaseFunction>;
  readonly stateMachine: sfn.StateMachine;
  /** `${Substitution}` → function ARN, exactly what the ASL file is deployed with. */
  readonly definitionSubstitutions: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: MigrationWorkflowProps) {
    super(scope, id);
    const functions = new Map<string, BaseFunction>();
    const substitutions: Record<string, string> = {};
    for (const wf of WORKFLOW_FUNCTIONS) {
      const access = WORKFLOW_ACCESS[wf.name];
      if (!access)
        throw new Error(`lib/constructs/service-access.ts has no WORKFLOW_ACCESS entry for ${wf.name}`);
      const fn = new BaseFunction(this, pascal(wf.name), {
        entry: `lambdas/workflow/${wf.module}`,
        description: `Migration workflow: ${wf.description}`,
        ...(access.memorySize ? { memorySize: access.memorySize } : {}),
        ...(access.timeout ? { timeout: access.timeout } : {}),
        logRetention: props.logRetention,
      });
      bindService(fn, props.resources, access);
      functions.set(wf.name, fn);
      substitutions[wf.substitution] = fn.functionArn;
    }
    this.functions = functions;
    this.definitionSubstitutions = substitutions;

    const logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${props.namePrefix}-migration`,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
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
    acknowledge(
      this.stateMachine,
      'AwsSolutions-IAM5[Resource::*]',
      'Step Functions logging uses the CloudWatch Logs vended-log delivery APIs (logs:CreateLogDelivery, ' +
        'logs:PutResourcePolicy, ...) and tracing uses xray:PutTraceSegments; none supports resource-level ' +
        'permissions, so CDK grants them on "*".',
    );
  }
}

const pascal = (kebab: string) => kebab.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
