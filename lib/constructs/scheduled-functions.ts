// Functions that run on a timer instead of in the state machine (backup policies): EventBridge Scheduler invokes
// each on its rate, the AWS equal of the local cloud's interval timer.

import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import { SCHEDULED_FUNCTIONS } from '../../lambdas/functions.ts';
import { ServiceFunction, type ServiceResources } from './service-function.ts';

export interface ScheduledFunctionsProps {
  readonly resources: ServiceResources;
  readonly logRetention: logs.RetentionDays;
}

export class ScheduledFunctions extends Construct {
  /** By SCHEDULED_FUNCTIONS `name`. */
  readonly functions: ReadonlyMap<string, ServiceFunction>;

  constructor(scope: Construct, id: string, props: ScheduledFunctionsProps) {
    super(scope, id);
    const functions = new Map<string, ServiceFunction>();
    for (const sf of Object.values(SCHEDULED_FUNCTIONS)) {
      const fn = new ServiceFunction(this, sf.name, {
        definition: { ...sf, description: `Scheduled: ${sf.description}` },
        resources: props.resources,
        logRetention: props.logRetention,
      });
      // L1 on purpose: the L2 target grants `<function ARN>:*` too; the schedule invokes the function itself.
      const role = new iam.Role(this, `${sf.name}-invoker`, {
        assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com'),
        description: `EventBridge Scheduler invokes ${sf.name}`,
      });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [fn.functionArn] }),
      );
      const schedule = new scheduler.CfnSchedule(this, `${sf.name}-schedule`, {
        description: `Runs ${sf.name} every ${sf.everyMinutes} minute(s)`,
        scheduleExpression: `rate(${sf.everyMinutes} minute${sf.everyMinutes === 1 ? '' : 's'})`,
        flexibleTimeWindow: { mode: 'OFF' },
        state: 'ENABLED',
        target: {
          arn: fn.functionArn,
          roleArn: role.roleArn,
          // A missed tick is covered by the next one; the function is idempotent per slot.
          retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 },
        },
      });
      schedule.node.addDependency(role);
      functions.set(sf.name, fn);
    }
    this.functions = functions;
  }
}
