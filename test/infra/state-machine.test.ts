// The state machine is statemachines/migration.asl.json deployed unchanged: every `${Substitution}` the file uses
// is provided by the stack and every one the stack provides is used, each pointing at a function of the workflow.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATION_ASL_PATH, TASK_FUNCTIONS } from '../../lambdas/functions.ts';
import { defaultDeployment, resourcesOf } from './synth.ts';

const synth = defaultDeployment();
afterAll(() => synth.cleanup());
const template = synth.template('vmmig-control-plane');
const asl = readFileSync(fileURLToPath(MIGRATION_ASL_PATH), 'utf8');

const usedByFile = new Set([...asl.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1] as string));
// The migration's (the cache collector's is test/infra/cache-collector.test.ts's).
const stateMachine = Object.values(resourcesOf(template, 'AWS::StepFunctions::StateMachine')).find(
  (sm) => sm.Properties['StateMachineName'] === synth.deployment.names.stateMachineName,
);
const provided = (stateMachine?.Properties['DefinitionSubstitutions'] ?? {}) as Record<
  string,
  { 'Fn::GetAtt': [string, string] }
>;

describe('state machine definition substitutions', () => {
  it('provides every substitution the ASL file uses', () => {
    const missing = [...usedByFile].filter((s) => !(s in provided));
    expect(missing, 'used in migration.asl.json but not provided by the stack').toEqual([]);
  });

  it('uses every substitution the stack provides', () => {
    const unused = Object.keys(provided).filter((s) => !usedByFile.has(s));
    expect(unused, 'provided by the stack but not used in migration.asl.json').toEqual([]);
  });

  it('maps each substitution of TASK_FUNCTIONS to the ARN of a Lambda function of the stack', () => {
    const functions = resourcesOf(template, 'AWS::Lambda::Function');
    expect(Object.keys(provided).sort()).toEqual(
      Object.values(TASK_FUNCTIONS)
        .map((f) => f.substitution)
        .sort(),
    );
    for (const [name, value] of Object.entries(provided)) {
      const [logicalId, attribute] = value['Fn::GetAtt'];
      expect(attribute, name).toBe('Arn');
      expect(functions[logicalId], `${name} → ${logicalId}`).toBeDefined();
    }
  });

  it('deploys the file byte for byte (an S3 asset, substitutions left to Step Functions)', () => {
    const location = stateMachine?.Properties['DefinitionS3Location'] as { Key: string } | undefined;
    expect(location?.Key).toMatch(/^[0-9a-f]{64}\.json$/);
    const staged = readFileSync(join(synth.outdir, `asset.${location?.Key}`), 'utf8');
    expect(staged).toBe(asl);
  });
});

/** Every state of the definition, nested Map and Parallel branches included. */
function allStates(definition: {
  States: Record<string, Record<string, unknown>>;
}): Record<string, unknown>[] {
  return Object.values(definition.States).flatMap((state) => {
    const nested = [
      state['ItemProcessor'] ?? state['Iterator'],
      ...((state['Branches'] as unknown[] | undefined) ?? []),
    ].filter(Boolean) as { States: Record<string, Record<string, unknown>> }[];
    return [state, ...nested.flatMap(allStates)];
  });
}

describe('state machine', () => {
  it('calls only what its role is granted: Lambda functions, and the Distributed Map its items and children', () => {
    const states = allStates(JSON.parse(asl));
    const allowed = ['arn:aws:states:::lambda:invoke', 'arn:aws:states:::lambda:invoke.waitForTaskToken'];
    const resources = states.filter((s) => s['Type'] === 'Task').map((s) => String(s['Resource']));
    expect(resources.length).toBeGreaterThan(0);
    expect(resources.filter((r) => !allowed.includes(r))).toEqual([]);
    const distributed = states.filter(
      (s) =>
        (s['ItemProcessor'] as { ProcessorConfig?: { Mode?: string } })?.ProcessorConfig?.Mode ===
        'DISTRIBUTED',
    );
    expect(distributed).toHaveLength(1);
    const roleArn = stateMachine?.Properties['RoleArn'] as { 'Fn::GetAtt': [string, string] };
    const statements = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((p) =>
        (p.Properties['Roles'] as { Ref: string }[]).some((r) => r.Ref === roleArn['Fn::GetAtt'][0]),
      )
      .flatMap(
        (p) =>
          (p.Properties['PolicyDocument'] as { Statement: { Action: unknown; Resource: unknown }[] })
            .Statement,
      );
    const grant = (action: string) =>
      statements
        .filter((s) => ([] as unknown[]).concat(s.Action).includes(action))
        .map((s) => JSON.stringify(s.Resource));
    expect(grant('states:StartExecution').join()).toMatch(/stateMachine:vmmig-migration"/);
    expect(grant('states:DescribeExecution').join()).toMatch(/execution:vmmig-migration\/\*/);
    expect(grant('states:StopExecution').join()).toMatch(/execution:vmmig-migration\/\*/);
    expect(grant('s3:GetObject').join()).toMatch(/ControlBucket.*migrations\/\*/);
  });

  it('logs all events with execution data and traces with X-Ray', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: true,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: Match.anyValue() } }],
      },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('may invoke exactly the workflow functions (unqualified ARNs)', () => {
    const roleArn = stateMachine?.Properties['RoleArn'] as { 'Fn::GetAtt': [string, string] };
    const policies = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).filter((p) =>
      (p.Properties['Roles'] as { Ref: string }[]).some((r) => r.Ref === roleArn['Fn::GetAtt'][0]),
    );
    const invoke = policies
      .flatMap(
        (p) =>
          (p.Properties['PolicyDocument'] as { Statement: { Action: unknown; Resource: unknown }[] })
            .Statement,
      )
      .filter((s) => s.Action === 'lambda:InvokeFunction');
    expect(invoke).toHaveLength(1);
    const resources = invoke[0]?.Resource as { 'Fn::GetAtt': [string, string] }[];
    expect(resources.map((r) => r['Fn::GetAtt'][0]).sort()).toEqual(
      Object.values(provided)
        .map((v) => v['Fn::GetAtt'][0])
        .sort(),
    );
  });
});
