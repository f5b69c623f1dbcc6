// The cache collector on AWS: EventBridge Scheduler starts statemachines/collect-garbage.asl.json (deployed byte for
// byte) every 15 minutes with the scheduled time as input, through a role that may start only that state machine;
// the state machine invokes only the collector's two functions, which are granted only what they declare; the
// nodes-over-budget alarm and the failed-pass alarm notify the alarm topic; the dashboard graphs every node.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { COLLECTOR_ASL_PATH, COLLECTOR_FUNCTIONS, COLLECTOR_SCHEDULE } from '../../lambdas/functions.ts';
import { CACHE_METRICS_NAMESPACE, NODES_OVER_BUDGET } from '../../lambdas/workflow/cache-metrics.ts';
import { defaultDeployment, resourcesOf } from './synth.ts';

const synth = defaultDeployment();
afterAll(() => synth.cleanup());
const template = synth.template('vmmig-control-plane');
const asl = readFileSync(fileURLToPath(COLLECTOR_ASL_PATH), 'utf8');

type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
const statementsOf = (roleLogicalId: string): Statement[] =>
  Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties['Roles'] as { Ref: string }[]).some((r) => r.Ref === roleLogicalId))
    .flatMap((p) => (p.Properties['PolicyDocument'] as { Statement: Statement[] }).Statement);

const [machineId, machine] = Object.entries(resourcesOf(template, 'AWS::StepFunctions::StateMachine')).find(
  ([, sm]) => sm.Properties['StateMachineName'] === synth.deployment.names.collectorStateMachineName,
) ?? ['', { Properties: {} }];
const functions = resourcesOf(template, 'AWS::Lambda::Function');
const functionId = (description: string) =>
  Object.keys(functions).find(
    (id) => functions[id]?.Properties['Description'] === `Cache collector: ${description}`,
  );

describe('the collector state machine', () => {
  it('is a Standard state machine named vmmig-collect-garbage, traced, logging everything', () => {
    expect(machineId).not.toBe('');
    expect(machine.Properties).toMatchObject({
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: true },
    });
  });

  it('deploys the ASL file byte for byte, each substitution the ARN of its collector function', () => {
    const location = machine.Properties['DefinitionS3Location'] as { Key: string };
    expect(readFileSync(join(synth.outdir, `asset.${location.Key}`), 'utf8')).toBe(asl);
    const used = new Set([...asl.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
    const provided = machine.Properties['DefinitionSubstitutions'] as Record<string, unknown>;
    expect(Object.keys(provided).sort()).toEqual([...used].sort());
    for (const definition of Object.values(COLLECTOR_FUNCTIONS)) {
      const id = functionId(definition.description);
      expect(id, definition.name).toBeDefined();
      expect(provided[definition.substitution]).toEqual({ 'Fn::GetAtt': [id, 'Arn'] });
    }
  });

  it('may invoke exactly the collector functions, unqualified', () => {
    const role = (machine.Properties['RoleArn'] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    const invoke = statementsOf(role).filter((s) => s.Action === 'lambda:InvokeFunction');
    expect(invoke).toHaveLength(1);
    const resources = invoke[0]?.Resource as unknown[];
    expect(resources).toHaveLength(Object.keys(COLLECTOR_FUNCTIONS).length);
    expect(resources).toEqual(
      expect.arrayContaining(
        Object.values(COLLECTOR_FUNCTIONS).map((f) => ({ 'Fn::GetAtt': [functionId(f.description), 'Arn'] })),
      ),
    );
  });

  it('gives a pass at one node the function timeout within its Task timeout, and the Map four nodes at a time', () => {
    const definition = JSON.parse(asl) as {
      States: {
        CollectEachNode: {
          MaxConcurrency: number;
          ItemProcessor: { States: { CollectNode: { TimeoutSeconds: number } } };
        };
      };
    };
    const map = definition.States.CollectEachNode;
    expect(map.MaxConcurrency).toBe(4);
    const taskTimeout = map.ItemProcessor.States.CollectNode.TimeoutSeconds;
    const collector = functions[functionId(COLLECTOR_FUNCTIONS.collectGarbage.description) as string];
    expect(collector?.Properties['Timeout']).toBe(COLLECTOR_FUNCTIONS.collectGarbage.timeoutSeconds);
    expect(COLLECTOR_FUNCTIONS.collectGarbage.timeoutSeconds).toBeLessThan(taskTimeout);
  });
});

describe('the schedule', () => {
  it('starts the state machine every 15 minutes with the scheduled time, through a role that may do only that', () => {
    const schedules = Object.values(resourcesOf(template, 'AWS::Scheduler::Schedule')).filter(
      (s) =>
        JSON.stringify((s.Properties['Target'] as { Arn: unknown }).Arn) ===
        JSON.stringify({ Ref: machineId }),
    );
    expect(schedules).toHaveLength(1);
    const schedule = schedules[0]?.Properties ?? {};
    expect(COLLECTOR_SCHEDULE.everyMinutes).toBe(15);
    expect(schedule).toMatchObject({
      ScheduleExpression: 'rate(15 minutes)',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
    });
    const target = schedule['Target'] as { Input: string; RoleArn: { 'Fn::GetAtt': [string, string] } };
    expect(JSON.parse(target.Input)).toEqual({ scheduledTime: '<aws.scheduler.scheduled-time>' });
    const role = target.RoleArn['Fn::GetAtt'][0];
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' } })],
      },
    });
    expect(statementsOf(role)).toEqual([
      { Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: machineId } },
    ]);
  });
});

describe('metrics and alarms', () => {
  const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm'));

  it('alarms when a node is over its budget after three passes in a row, into the alarm topic', () => {
    const overBudget = alarms.filter((a) => a.Properties['MetricName'] === NODES_OVER_BUDGET);
    expect(overBudget).toHaveLength(1);
    expect(overBudget[0]?.Properties).toMatchObject({
      Namespace: CACHE_METRICS_NAMESPACE,
      Statistic: 'Sum',
      Period: COLLECTOR_SCHEDULE.everyMinutes * 60,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: expect.stringMatching(/^OperationsAlarms/) }],
    });
    expect(overBudget[0]?.Properties['Dimensions']).toBeUndefined();
  });

  it("alarms on a failed or timed-out pass of the collector's own state machine", () => {
    const failed = alarms.filter((a) =>
      /cache collector pass failed/.test(String(a.Properties['AlarmDescription'])),
    );
    expect(failed).toHaveLength(1);
    const metrics = JSON.stringify(failed[0]?.Properties['Metrics']);
    expect(metrics).toContain('"ExecutionsFailed"');
    expect(metrics).toContain('"ExecutionsTimedOut"');
    expect(metrics).toContain(`"Ref":"${machineId}"`);
    expect(failed[0]?.Properties['AlarmActions']).toEqual([
      { Ref: expect.stringMatching(/^OperationsAlarms/) },
    ]);
  });

  it('graphs held, budget, marked and freed bytes of every node (a search, so nodes added later too)', () => {
    const body = JSON.stringify(
      Object.values(resourcesOf(template, 'AWS::CloudWatch::Dashboard'))[0]?.Properties,
    );
    for (const name of ['BytesHeld', 'BudgetBytes', 'BytesMarked', 'BytesFreed']) {
      expect(body, name).toContain(
        `SEARCH('{${CACHE_METRICS_NAMESPACE},CacheNode} MetricName=\\\\\\"${name}\\\\\\"'`,
      );
    }
  });
});
