// The workflow's Lambda functions, one source: the definition substitution each fills in
// statemachines/migration.asl.json, and the module that implements it. The CDK stack makes one function per
// entry; the local Step Functions service calls the same modules in-process.

export interface WorkflowFunction {
  /** `${Substitution}` in the ASL file. */
  readonly substitution: string;
  /** Function name locally; suffix of the Lambda name on AWS. */
  readonly name: string;
  /** Module under lambdas/workflow/ exporting `handler`. */
  readonly module: string;
  readonly description: string;
}

export const WORKFLOW_FUNCTIONS: readonly WorkflowFunction[] = [
  {
    substitution: 'ResolveFunction',
    name: 'resolve',
    module: 'resolve.ts',
    description: 'RMG: cache nodes and mapping rows',
  },
  {
    substitution: 'AdmitFunction',
    name: 'admit',
    module: 'admit.ts',
    description: 'CMN: take transfer slots',
  },
  {
    substitution: 'AwaitDecisionFunction',
    name: 'await-decision',
    module: 'await-decision.ts',
    description: 'Callback: wait for an admin to accept or reject a suggested destination',
  },
  {
    substitution: 'RequestWorkFunction',
    name: 'request-work',
    module: 'request-work.ts',
    description: 'Callback: hand work to an agent',
  },
  {
    substitution: 'CheckCacheFunction',
    name: 'check-cache',
    module: 'check-cache.ts',
    description: 'CMN: which chunks are cached',
  },
  {
    substitution: 'CheckSharedFunction',
    name: 'check-shared',
    module: 'check-shared.ts',
    description: 'CMN: are chunks other migrations upload stored yet',
  },
  {
    substitution: 'PlanReplicationFunction',
    name: 'plan-replication',
    module: 'plan-replication.ts',
    description: 'CMN: copies between cache nodes',
  },
  {
    substitution: 'CopyBatchFunction',
    name: 'copy-batch',
    module: 'copy-batch.ts',
    description: 'CMN: server-side copies',
  },
  {
    substitution: 'StartDownloadsFunction',
    name: 'start-downloads',
    module: 'start-downloads.ts',
    description: 'Hand over to destinations',
  },
  {
    substitution: 'CompleteFunction',
    name: 'complete',
    module: 'complete.ts',
    description: 'Finish and release',
  },
  {
    substitution: 'RecordFailureFunction',
    name: 'record-failure',
    module: 'record-failure.ts',
    description: 'Catch: record the cause, release',
  },
];

export const MIGRATION_ASL_PATH = new URL('../../statemachines/migration.asl.json', import.meta.url);
