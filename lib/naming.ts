// Deterministic names (protocol/deployment-names.ts) plus the ARNs CDK builds from them. They are derived, not
// referenced, so stacks in different regions agree on them without cross-stack references.
import { Arn, Stack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { DeploymentNames as Names } from '../protocol/deployment-names.ts';

export class DeploymentNames extends Names {
  /** ARN of a role of this deployment, in the account of `scope`'s stack. */
  roleArn(scope: Construct, roleName: string): string {
    return Arn.format(
      { service: 'iam', region: '', resource: 'role', resourceName: roleName },
      Stack.of(scope),
    );
  }

  /** ARN of a cache node bucket, in the account of `scope`'s stack. */
  cacheBucketArn(scope: Construct, cacheNodeId: string): string {
    const stack = Stack.of(scope);
    return Arn.format(
      { service: 's3', region: '', account: '', resource: this.cacheBucketName(stack.account, cacheNodeId) },
      stack,
    );
  }
}
