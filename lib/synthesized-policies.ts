// The IAM policies of a synthesized deployment, as the local cloud enforces them (local/iam/): every function's
// role policy, the state machines', the admin's and the agents', and the bucket policies, with CloudFormation
// intrinsics resolved to strings. What differs between AWS and the local cloud stays a placeholder (`{{account}}`,
// `{{table:Registry}}`, ...) that the local cloud fills in. `npm run iam:generate` writes the result to
// local/iam/policies.json; test/infra/local-iam.test.ts proves that file equals what CDK synthesizes now.
import { type CfnElement, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import {
  COLLECTOR_STATE_MACHINE,
  type PolicyStatement,
  type SynthesizedPolicies,
  stateMachinePrincipal,
  topologyDigest,
} from '../local/iam/policies.ts';
import type { Topology } from '../protocol/topology.ts';
import type { DeploymentStacks } from './app.ts';
import type { BaseFunction } from './constructs/base-function.ts';

type Json = unknown;
interface Resource {
  readonly Type: string;
  readonly Properties?: Record<string, Json>;
}
interface TemplateJson {
  readonly Resources: Record<string, Resource>;
  readonly Outputs?: Record<string, { readonly Value: Json }>;
}

/** Services the local cloud runs: a reference to another service's resource cannot be resolved, only noted. */
const UNMODELLED = /^AWS::(Logs|XRay|Events|SNS|CloudWatch|Pipes|Scheduler|KMS)::/;

const logicalId = (construct: IConstruct): string => {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  return Stack.of(construct).getLogicalId(element);
};

export function synthesizedPolicies(
  deployment: DeploymentStacks,
  templateOf: (stack: Stack) => TemplateJson,
  topology: Topology,
): SynthesizedPolicies {
  const { controlPlane, edge, names } = deployment;
  const templates = new Map(deployment.ordered.map((s) => [s.stackName, { stack: s, json: templateOf(s) }]));

  // References whose local value differs from AWS: named placeholders.
  const refs = new Map<string, { ref: string; arn?: string }>();
  const key = (stack: Stack, id: string) => `${stack.stackName}/${id}`;
  const cp = controlPlane;
  const region = cp.region;
  for (const bound of cp.tables.all()) {
    const name = `{{table:${bound.definition.id}}}`;
    refs.set(key(cp, logicalId(bound.table)), {
      ref: name,
      arn: `arn:aws:dynamodb:${region}:{{account}}:table/${name}`,
    });
  }
  const control = cp.node.findChild('ControlBucket');
  refs.set(key(cp, logicalId(control)), {
    ref: '{{bucket:control}}',
    arn: 'arn:aws:s3:::{{bucket:control}}',
  });
  const functions = new Map<string, BaseFunction>([
    [cp.api.handler.definition.name, cp.api.handler],
    ...cp.workflow.functions,
    ...cp.collector.functions,
    ...[...cp.node.findChild('Scheduled').node.children]
      .filter((c): c is BaseFunction => 'definition' in c)
      .map((f) => [(f as unknown as { definition: { name: string } }).definition.name, f] as const),
  ]);
  for (const [name, fn] of functions) {
    refs.set(key(cp, logicalId(fn.function)), {
      ref: `{{function:${name}}}`,
      arn: `arn:aws:lambda:${region}:{{account}}:function:{{function:${name}}}`,
    });
  }
  refs.set(key(cp, logicalId(cp.api.httpApi)), { ref: '{{api}}' });
  refs.set(key(edge, logicalId(edge.distribution)), { ref: '{{distribution}}' });
  refs.set(key(edge, logicalId(edge.keyPair.current.secret)), { ref: '{{secret:edge-private-key}}' });
  for (const [id, stack] of deployment.cacheNodes) {
    const bucket = names.cacheBucketName('{{account}}', id);
    refs.set(key(stack, logicalId(stack.bucket)), { ref: bucket, arn: `arn:aws:s3:::${bucket}` });
  }

  const resolve = (value: Json, stack: Stack): Json => {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
    if (Array.isArray(value)) return value.map((v) => resolve(v, stack));
    if (value === null || typeof value !== 'object')
      throw new Error(`cannot resolve ${JSON.stringify(value)}`);
    const node = value as Record<string, Json>;
    const keys = Object.keys(node);
    if (keys.length === 1 && keys[0] === 'Ref') {
      const ref = node['Ref'] as string;
      if (ref === 'AWS::AccountId') return '{{account}}';
      if (ref === 'AWS::Partition') return 'aws';
      if (ref === 'AWS::Region') return stack.region;
      if (ref === 'AWS::URLSuffix') return 'amazonaws.com';
      return known(stack, ref).ref;
    }
    if (keys.length === 1 && keys[0] === 'Fn::GetAtt') {
      const [id, attribute] = node['Fn::GetAtt'] as [string, string];
      const target = known(stack, id);
      if (attribute !== 'Arn' || target.arn === undefined)
        throw new Error(`${stack.stackName}: cannot resolve ${id}.${attribute}`);
      return target.arn;
    }
    if (keys.length === 1 && keys[0] === 'Fn::Join') {
      const [delimiter, parts] = node['Fn::Join'] as [string, Json[]];
      return parts.map((p) => String(resolve(p, stack))).join(delimiter);
    }
    if (keys.length === 1 && keys[0] === 'Fn::GetStackOutput') {
      const { StackName, OutputName } = node['Fn::GetStackOutput'] as {
        StackName: string;
        OutputName: string;
      };
      const other = templates.get(StackName);
      const output = other?.json.Outputs?.[OutputName];
      if (!other || !output) throw new Error(`no output ${OutputName} of stack ${StackName}`);
      return resolve(output.Value, other.stack);
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, resolve(v, stack)]));
  };
  const known = (stack: Stack, id: string): { ref: string; arn?: string } => {
    const hit = refs.get(key(stack, id));
    if (hit) return hit;
    const type = templates.get(stack.stackName)?.json.Resources[id]?.Type ?? 'unknown';
    if (UNMODELLED.test(type)) return { ref: `{{unmodelled:${type}}}`, arn: `{{unmodelled:${type}}}` };
    throw new Error(`${stack.stackName}: a policy names ${id} (${type}), which has no local counterpart`);
  };

  /** Every statement of the policies attached to a role (its inline Policies and AWS::IAM::Policy resources). */
  const roleStatements = (stack: Stack, roleLogicalId: string): PolicyStatement[] => {
    const json = templates.get(stack.stackName)?.json as TemplateJson;
    const role = json.Resources[roleLogicalId];
    if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${roleLogicalId} is not a role`);
    const docs: Json[] = [
      ...((role.Properties?.['Policies'] as { PolicyDocument: Json }[] | undefined) ?? []).map(
        (p) => p.PolicyDocument,
      ),
      ...Object.values(json.Resources)
        .filter(
          (r) =>
            r.Type === 'AWS::IAM::Policy' &&
            (r.Properties?.['Roles'] as Json[] | undefined)?.some(
              (x) => (x as { Ref?: string }).Ref === roleLogicalId,
            ),
        )
        .map((r) => r.Properties?.['PolicyDocument']),
    ];
    return docs.flatMap((d) => (resolve(d, stack) as { Statement: PolicyStatement[] }).Statement);
  };
  const bucketPolicy = (stack: Stack, bucketLogicalId: string): PolicyStatement[] => {
    const json = templates.get(stack.stackName)?.json as TemplateJson;
    const policy = Object.values(json.Resources).find(
      (r) =>
        r.Type === 'AWS::S3::BucketPolicy' &&
        (r.Properties?.['Bucket'] as { Ref?: string } | undefined)?.Ref === bucketLogicalId,
    );
    if (!policy) throw new Error(`${stack.stackName}: no policy on bucket ${bucketLogicalId}`);
    return (resolve(policy.Properties?.['PolicyDocument'], stack) as { Statement: PolicyStatement[] })
      .Statement;
  };

  const principals: Record<string, PolicyStatement[]> = {};
  for (const [name, fn] of functions) principals[`function/${name}`] = roleStatements(cp, logicalId(fn.role));
  principals['stateMachine'] = roleStatements(cp, logicalId(cp.workflow.stateMachine.role));
  principals[stateMachinePrincipal(COLLECTOR_STATE_MACHINE)] = roleStatements(
    cp,
    logicalId(cp.collector.stateMachine.role),
  );
  principals['admin'] = roleStatements(cp, logicalId(cp.access.adminRole));

  // Every agent role has the same policy but for its own data center: one, with a placeholder, proven equal.
  const generalized = (text: string, id: string, forms: readonly [string, string][]) =>
    forms.reduce((t, [concrete, general]) => t.split(concrete).join(general), text).includes(id)
      ? undefined
      : JSON.parse(forms.reduce((t, [concrete, general]) => t.split(concrete).join(general), text));
  let agent: PolicyStatement[] | undefined;
  for (const [dc, role] of cp.access.agentRoles) {
    const text = JSON.stringify(roleStatements(cp, logicalId(role)));
    const general = generalized(text, dc, [
      [names.workQueuePrefix + dc, `${names.workQueuePrefix}{{dataCenterId}}`],
      [names.agentRoleName(dc), names.agentRoleName('{{dataCenterId}}')],
    ]);
    if (general === undefined)
      throw new Error(`the policy of agent ${dc} names its data center in a form not generalized`);
    if (agent && JSON.stringify(agent) !== JSON.stringify(general))
      throw new Error(`agent ${dc} has a policy unlike the other agents'`);
    agent = general;
  }
  principals['agent'] = agent ?? [];

  let cacheBucket: PolicyStatement[] | undefined;
  for (const [id, stack] of deployment.cacheNodes) {
    const text = JSON.stringify(bucketPolicy(stack, logicalId(stack.bucket)));
    const bucket = names.cacheBucketName('{{account}}', id);
    const general = JSON.parse(
      text.split(bucket).join(names.cacheBucketName('{{account}}', '{{cacheNodeId}}')),
    );
    if (cacheBucket && JSON.stringify(cacheBucket) !== JSON.stringify(general))
      throw new Error(`cache node ${id} has a bucket policy unlike the others'`);
    cacheBucket = general;
  }

  return {
    generatedBy: 'npm run iam:generate (lib/synthesized-policies.ts)',
    topology: topologyDigest(topology),
    principals,
    resourcePolicies: {
      cacheBucket: cacheBucket ?? [],
      controlBucket: bucketPolicy(cp, logicalId(control)),
    },
  };
}
