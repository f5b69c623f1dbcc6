// cdk-nag acknowledgements, each with its reason. IAM5 findings name the wildcard they are about
// (`AwsSolutions-IAM5[Resource::<flattened ARN>]`), so the grant that creates a wildcard acknowledges exactly that
// wildcard, computed here the way cdk-nag flattens CloudFormation references.
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** Acknowledges the IAM5 finding for one wildcard resource that `scope` (or a child policy) grants. */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  const flat = flattenCfnReference(Stack.of(scope).resolve(resource));
  acknowledge(scope, `AwsSolutions-IAM5[Resource::${flat}]`, reason);
}

/** Mirrors cdk-nag's flattenCfnReference (lib/utils/flatten-cfn-reference.js), which it does not export. */
export function flattenCfnReference(reference: unknown): string {
  if (reference === undefined) return '';
  if (typeof reference === 'string') return reference.replace(/\$\{/g, '<').replace(/\}/g, '>');
  const node = reference as Record<string, unknown>;
  if (Array.isArray(node['Fn::Join'])) {
    const [delimiter, items] = node['Fn::Join'] as [string, unknown[]];
    return items.map(flattenCfnReference).join(delimiter);
  }
  if (node['Fn::Sub'] !== undefined) return flattenCfnReference(node['Fn::Sub']);
  if (Array.isArray(node['Fn::GetAtt'])) {
    const [resource, attribute] = node['Fn::GetAtt'] as [unknown, unknown];
    return `<${flattenCfnReference(resource)}.${flattenCfnReference(attribute)}>`;
  }
  if (node['Fn::ImportValue'] !== undefined) return flattenCfnReference(node['Fn::ImportValue']);
  if (node['Ref'] !== undefined) return `<${flattenCfnReference(node['Ref'])}>`;
  return JSON.stringify(reference);
}

/** Reasons used in more than one place. */
export const REASONS = {
  xray:
    'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (the service authorization ' +
    'reference lists no resource types for them), so tracing needs Resource "*".',
  chunks:
    'Chunk keys are content addresses (chunks/<hh>/<sha256>) unknown at deploy time; the grant is limited to the ' +
    'chunks/ prefix of this one cache node bucket and to the actions the code calls.',
  controlObjects:
    'Manifests and plans are written per migration under migrations/<id>/; object names are unknown at deploy ' +
    'time, so the grant covers the objects of this one control bucket with only the actions the code calls.',
  logBucket:
    'This bucket is the access-log destination itself; logging it into itself would loop and another log bucket ' +
    'would only move the finding.',
} as const;
