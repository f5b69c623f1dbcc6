// Deploy readiness, offline: what CloudFormation or Step Functions would refuse at deploy time.
// - Every template the app synthesizes (edge, control plane, one cache-node stack per cache node of the topology)
//   has no error-level finding (ERROR, FATAL) from AWS's CloudFormation validator, @aws/cloudformation-validate: the
//   engine aws-cdk-lib bundles, run here directly with its built-in rules. (Its warnings, which include enum
//   mismatches, are left to CDK's own run of it in `cdk synth`, checked by nag.test.ts.)
// - Each state machine definition (the migration's, the cache collector's), as deployed (the staged asset) with its
//   DefinitionSubstitutions resolved to Lambda ARNs as Step Functions resolves them, passes asl-validator.
// Each check also rejects a deliberately broken input, so neither can pass vacuously.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CfnElement, Stack } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTopology, TOPOLOGY_CONTEXT_KEY } from '../../protocol/topology.ts';
import { cdkJsonContext, defaultDeployment } from './synth.ts';

// The parts of @aws/cloudformation-validate (index.d.ts) this file uses.
type Severity = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'FATAL';
interface Diagnostic {
  readonly ruleId: string;
  readonly severity: Severity;
  readonly message: string;
  readonly entity?: {
    readonly logicalId: string;
    readonly entityType: string;
    readonly resourceType?: string;
  };
  readonly propertyPath?: string;
}
interface ValidationReport {
  readonly status: 'OK' | 'ANALYSIS_INCOMPLETE' | 'ERROR';
  readonly diagnostics: readonly Diagnostic[];
  readonly metadata: {
    readonly budgetExhaustions?: readonly {
      readonly kind: string;
      readonly description?: string;
      readonly analysisIncomplete: boolean;
    }[];
  };
}
interface CfnEngine {
  validateTemplate(template: object, config?: Record<string, unknown>): ValidationReport;
  free(): void;
}
interface CfnValidate {
  readonly CompositeEngine: new () => CfnEngine;
  readonly TemplateContent: new (content: string, name?: string) => object;
  version(): string;
}

// asl-validator's CommonJS export.
interface AslValidation {
  readonly isValid: boolean;
  readonly errors: readonly { readonly 'Error code': string; readonly Message: string }[];
}
type AslValidator = (
  definition: unknown,
  options: { readonly checkPaths: boolean; readonly checkArn: boolean },
) => AslValidation;

const requireHere = createRequire(import.meta.url);
// Not a dependency of this project: the copy aws-cdk-lib bundles (node_modules/aws-cdk-lib/node_modules).
const cfnValidate = createRequire(requireHere.resolve('aws-cdk-lib/package.json'))(
  '@aws/cloudformation-validate',
) as CfnValidate;
const aslValidator = requireHere('asl-validator') as AslValidator;

const synth = defaultDeployment();
afterAll(() => synth.cleanup());
const topology = parseTopology(cdkJsonContext()[TOPOLOGY_CONTEXT_KEY]);
// The cloud assembly `cdk deploy` would deploy (already synthesized: this returns it, it does not synthesize again).
const assembly = synth.app.synth();
const stacks = assembly.stacks.map((s) => ({
  name: s.stackName,
  region: s.environment.region,
  templatePath: s.templateFullPath,
}));

type CfnTemplate = { Resources?: Record<string, { Type: string; Properties?: Record<string, unknown> }> };

// Built once (the rules compile in the constructor, over a second); validating a template is then cheap.
let engine: CfnEngine;
beforeAll(() => {
  engine = new cfnValidate.CompositeEngine();
});
afterAll(() => engine?.free());

/** Logical id → construct path of the resources of one stack of the app (none for a template of this file). */
function constructPaths(stackName: string): Map<string, string> {
  const stack = synth.deployment.ordered.find((s) => s.stackName === stackName);
  const paths = new Map<string, string>();
  for (const c of stack?.node.findAll() ?? []) {
    if (CfnElement.isCfnElement(c)) paths.set(String(Stack.of(c).resolve(c.logicalId)), c.node.path);
  }
  return paths;
}

/**
 * Error-level findings (ERROR, FATAL) of one template, one line each:
 * `<severity> <rule> <logical id> [<type>] (<construct path>) <property>: <message>`.
 */
function cfnErrors(
  template: string,
  name: string,
  region: string,
): { status: ValidationReport['status']; errors: string[] } {
  const report = engine.validateTemplate(new cfnValidate.TemplateContent(template, name), {
    severityLevel: 'ERROR',
    pseudoParameterOverrides: { region },
  });
  const paths = constructPaths(name);
  const errors = report.diagnostics
    .filter((d) => d.severity === 'ERROR' || d.severity === 'FATAL')
    .map((d) => {
      const id = d.entity?.logicalId;
      const type = d.entity?.resourceType ? ` [${d.entity.resourceType}]` : '';
      const path = id && paths.has(id) ? ` (${paths.get(id)})` : '';
      return `${d.severity} ${d.ruleId} ${id ?? '(template)'}${type}${path} ${d.propertyPath ?? ''}: ${d.message}`;
    });
  // A budget whose exhaustion makes the analysis incomplete may have hidden findings.
  const incomplete = (report.metadata.budgetExhaustions ?? [])
    .filter((b) => b.analysisIncomplete)
    .map((b) => `${b.kind}: ${b.description ?? ''}`);
  return {
    status: report.status,
    errors: [...errors, ...incomplete.map((b) => `analysis incomplete, ${b}`)],
  };
}

describe(`CloudFormation validation (@aws/cloudformation-validate ${cfnValidate.version()})`, () => {
  it('covers every stack of the app: edge, control plane and the cache node of every topology region', () => {
    const names = stacks.map((s) => s.name).sort();
    expect(names).toEqual(synth.deployment.ordered.map((s) => s.stackName).sort());
    expect(names).toEqual(
      [
        synth.deployment.names.edgeStack,
        synth.deployment.names.controlPlaneStack,
        ...topology.cacheNodes.map((n) => synth.deployment.names.cacheNodeStack(n.id)),
      ].sort(),
    );
    for (const n of topology.cacheNodes) {
      expect(stacks.find((s) => s.name === synth.deployment.names.cacheNodeStack(n.id))?.region).toBe(
        n.region,
      );
    }
    // No template outside the stack artifacts (a nested stack would need validating too).
    const templates = readdirSync(synth.outdir).filter((f) => f.endsWith('.template.json'));
    expect(templates.map((f) => join(synth.outdir, f)).sort()).toEqual(
      stacks.map((s) => s.templatePath).sort(),
    );
  });

  it.each(stacks)('finds no error in $name ($region)', ({ name, region, templatePath }) => {
    const { status, errors } = cfnErrors(readFileSync(templatePath, 'utf8'), name, region);
    expect(errors, `CloudFormation validator findings in ${name}`).toEqual([]);
    expect(status).toBe('OK');
  });

  it('reports a template CloudFormation would refuse (unknown property, missing required property)', () => {
    const broken = {
      Resources: {
        Bucket: { Type: 'AWS::S3::Bucket', Properties: { BucketNmae: 'typo' } },
        Handler: {
          Type: 'AWS::Lambda::Function',
          Properties: {
            Role: { 'Fn::GetAtt': ['HandlerRole', 'Arn'] },
            Runtime: 'nodejs24.x',
            Handler: 'index.handler',
          },
        },
        HandlerRole: {
          Type: 'AWS::IAM::Role',
          Properties: {
            AssumeRolePolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
              ],
            },
          },
        },
      },
    };
    const { errors } = cfnErrors(JSON.stringify(broken), 'broken', topology.homeRegion);
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/ Bucket \[AWS::S3::Bucket\] Properties\.BucketNmae: .*BucketNmae/),
        expect.stringMatching(/ Handler \[AWS::Lambda::Function\] .*'Code' is a required property/),
      ]),
    );
  });
});

// --- The state machine definition ------------------------------------------------------------------------------

interface AslDefinition {
  StartAt: string;
  States: Record<string, Record<string, unknown>>;
}

const ASL_OPTIONS = { checkPaths: true, checkArn: true } as const;
/** asl-validator fills in QueryLanguage on the states it is given: it gets a copy. */
const aslErrors = (definition: AslDefinition): string[] => {
  const result = aslValidator(structuredClone(definition), ASL_OPTIONS);
  return result.isValid ? [] : result.errors.map((e) => `${e['Error code']}: ${e.Message}`);
};

/**
 * The definition Step Functions would run: the control plane's state machine of that name as deployed (the S3
 * asset, or an inline DefinitionString), each `${Key}` of DefinitionSubstitutions resolved to an ARN like the one
 * CloudFormation passes (`arn:aws:lambda:<region>:<account>:function:<name>`, named here by the function's logical
 * id).
 */
function deployedDefinition(name: string): { definition: string; unresolved: string[] } {
  const controlPlane = stacks.find((s) => s.name === synth.deployment.names.controlPlaneStack);
  if (!controlPlane) throw new Error('no control plane stack');
  const template = JSON.parse(readFileSync(controlPlane.templatePath, 'utf8')) as CfnTemplate;
  const resources = template.Resources ?? {};
  const machines = Object.values(resources).filter(
    (r) => r.Type === 'AWS::StepFunctions::StateMachine' && r.Properties?.['StateMachineName'] === name,
  );
  if (machines.length !== 1) throw new Error(`expected one state machine ${name}, found ${machines.length}`);
  const props = machines[0]?.Properties ?? {};
  const location = props['DefinitionS3Location'] as { Key?: unknown } | undefined;
  let raw: string;
  if (typeof location?.Key === 'string')
    raw = readFileSync(join(synth.outdir, `asset.${location.Key}`), 'utf8');
  else if (typeof props['DefinitionString'] === 'string') raw = props['DefinitionString'];
  else throw new Error('state machine definition is neither an S3 asset nor a literal DefinitionString');

  const arns = new Map<string, string>();
  const substitutions = (props['DefinitionSubstitutions'] ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(substitutions)) {
    const getAtt = (value as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
    const target = getAtt ? resources[getAtt[0]] : undefined;
    if (target?.Type !== 'AWS::Lambda::Function' || getAtt?.[1] !== 'Arn') {
      throw new Error(`substitution ${key} is not the Arn of a Lambda function: ${JSON.stringify(value)}`);
    }
    arns.set(key, `arn:aws:lambda:${controlPlane.region}:123456789012:function:${getAtt[0]}`);
  }
  const unresolved = new Set<string>();
  const definition = raw.replace(/\$\{([^}]*)\}/g, (placeholder, key: string) => {
    const arn = arns.get(key);
    if (arn === undefined) unresolved.add(placeholder);
    return arn ?? placeholder;
  });
  return { definition, unresolved: [...unresolved] };
}

const names = synth.deployment.names;
describe.each([names.stateMachineName, names.collectorStateMachineName])(
  'state machine %s (asl-validator)',
  (name) => {
    const { definition, unresolved } = deployedDefinition(name);
    const parsed = JSON.parse(definition) as AslDefinition;

    it('resolves every placeholder of the definition from DefinitionSubstitutions', () => {
      expect(unresolved).toEqual([]);
    });

    it('is valid Amazon States Language as deployed (schema, transitions, terminal states, paths, ARNs)', () => {
      expect(aslErrors(parsed), 'asl-validator findings in the deployed definition').toEqual([]);
    });

    it('reports a transition to a state that does not exist', () => {
      const broken = structuredClone(parsed);
      const [name, state] =
        Object.entries(broken.States).find(([, s]) => typeof s['Next'] === 'string') ?? [];
      expect(state, 'a state with Next to break').toBeDefined();
      if (state) state['Next'] = 'No such state';
      expect(aslErrors(broken), `${name} → No such state`).toEqual(
        expect.arrayContaining([expect.stringMatching(/^MISSING_TRANSITION_TARGET: .*No such state/)]),
      );
    });
  },
);
