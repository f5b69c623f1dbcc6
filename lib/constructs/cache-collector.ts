// The cache collector on AWS: statemachines/collect-garbage.asl.json (deployed unchanged with definition
// substitutions) with one Lambda per entry of COLLECTOR_FUNCTIONS, each granted only what its declaration lists, and
// an EventBridge Scheduler schedule that starts it every COLLECTOR_SCHEDULE.everyMinutes (the local cloud: a timer).
import { fileURLToPath } from 'node:url';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { COLLECTOR_ASL_PATH, COLLECTOR_FUNCTIONS, COLLECTOR_SCHEDULE } from '../../lambdas/functions.ts';
import { acknowledge } from '../nag.ts';
import { type ServiceFunction, type ServiceResources, taskFunctions } from './service-function.ts';

export interface CacheCollectorProps {
  readonly resources: ServiceResources;
  readonly logRetention: logs.RetentionDays;
  /** The state machine's name (DeploymentNames.collectorStateMachineName). */
  readonly stateMachineName: string;
  /** Names the state machine's log group (`/aws/vendedlogs/states/<prefix>-collect-garbage`). */
  readonly namePrefix: string;
}

export class CacheCollector extends Construct {
  /** By COLLECTOR_FUNCTIONS `name`. */
  readonly functions: ReadonlyMap<string, ServiceFunction>;
  readonly stateMachine: sfn.StateMachine;
  readonly schedule: scheduler.CfnSchedule;

  constructor(scope: Construct, id: string, props: CacheCollectorProps) {
    super(scope, id);
    const { functions, substitutions } = taskFunctions(
      this,
      Object.values(COLLECTOR_FUNCTIONS),
      'Cache collector',
      props,
    );
    this.functions = functions;

    const logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${props.namePrefix}-collect-garbage`,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      comment: 'The cache collector over every cache node (statemachines/collect-garbage.asl.json)',
      definitionBody: sfn.DefinitionBody.fromFile(fileURLToPath(COLLECTOR_ASL_PATH)),
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

    // EventBridge Scheduler's templated Step Functions target calls StartExecution on the state machine with the
    // schedule's role. L1 on purpose, as for the scheduled functions: the role gets exactly this one action.
    const role = new iam.Role(this, 'Invoker', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com'),
      description: 'EventBridge Scheduler starts the cache collector',
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['states:StartExecution'],
        resources: [this.stateMachine.stateMachineArn],
      }),
    );
    const every = COLLECTOR_SCHEDULE.everyMinutes;
    this.schedule = new scheduler.CfnSchedule(this, 'Schedule', {
      description: `Starts the cache collector every ${every} minutes`,
      scheduleExpression: `rate(${every} minutes)`,
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: this.stateMachine.stateMachineArn,
        roleArn: role.roleArn,
        // The time the pass was scheduled for stamps its metrics (lambdas/workflow/cache-metrics.ts).
        input: JSON.stringify({ scheduledTime: '<aws.scheduler.scheduled-time>' }),
        // A missed pass is covered by the next one; every step of the collector is a conditional write.
        retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 },
      },
    });
    this.schedule.node.addDependency(role);
  }
}
