// Deterministic names, one place: stacks, cache node buckets and the IAM roles the API maps to principals. They
// are derived, not referenced, so stacks in different regions agree on them without cross-stack references.
import { Arn, Stack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

export class DeploymentNames {
  constructor(readonly prefix: string) {}

  get controlPlaneStack(): string {
    return `${this.prefix}-control-plane`;
  }

  get edgeStack(): string {
    return `${this.prefix}-edge`;
  }

  cacheNodeStack(cacheNodeId: string): string {
    return `${this.prefix}-cache-node-${cacheNodeId}`;
  }

  /**
   * CACHE_BUCKET_PREFIX: the bucket of cache node X is this + X (at most 61 characters with the longest prefix
   * and id). The account keeps the name globally unique; `account` may be the stack's AWS::AccountId token.
   */
  cacheBucketPrefix(account: string): string {
    return `${this.prefix}-cn-${account}-`;
  }

  cacheBucketName(account: string, cacheNodeId: string): string {
    return `${this.cacheBucketPrefix(account)}${cacheNodeId}`;
  }

  /** AGENT_ROLE_PREFIX: the role of data center X's agent is this + X (lambdas/api/iam-principals.ts). */
  get agentRolePrefix(): string {
    return `${this.prefix}-agent-`;
  }

  agentRoleName(dataCenterId: string): string {
    return `${this.agentRolePrefix}${dataCenterId}`;
  }

  /** The API function's role: named so the edge stack can let only it read the signing key. */
  get apiRoleName(): string {
    return `${this.prefix}-api`;
  }

  get adminRoleName(): string {
    return `${this.prefix}-admin`;
  }

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
