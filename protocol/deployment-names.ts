// The names a deployment derives from its name prefix, one place: stacks, cache node buckets, the state machine,
// work queues and the IAM roles the API maps to principals. CDK (lib/naming.ts) and the local cloud use the same
// ones, so the local cloud's resources carry the names its IAM policies (synthesized by CDK) talk about.

/** The prefix `vmmig:name` defaults to. */
export const DEFAULT_DEPLOYMENT_NAME = 'vmmig';

export class DeploymentNames {
  constructor(readonly prefix: string = DEFAULT_DEPLOYMENT_NAME) {}

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

  /** The migration state machine (named: its functions are granted access to it before it exists). */
  get stateMachineName(): string {
    return `${this.prefix}-migration`;
  }

  /** The cache collector's state machine (statemachines/collect-garbage.asl.json). */
  get collectorStateMachineName(): string {
    return `${this.prefix}-collect-garbage`;
  }

  /** WORK_QUEUE_PREFIX: the work queue (SQS) of data center X is this + X. */
  get workQueuePrefix(): string {
    return `${this.prefix}-work-`;
  }

  workQueueName(dataCenterId: string): string {
    return `${this.workQueuePrefix}${dataCenterId}`;
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
}
