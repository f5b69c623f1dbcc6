// Every Lambda function of the control plane, one declaration each: what it is, where its handler lives, and what
// it may touch (lambdas/needs.ts). CDK makes one function per entry with exactly these grants and variables; the
// local cloud runs the same handlers with the same variables under the same IAM policy. A handler module binds to
// its entry (`task(FUNCTIONS.admit, ...)`), so its adapters are typed by these needs.
import type { ApiFunction, FunctionDefinition, Needs, ScheduledFunction, TaskFunction } from './needs.ts';

const task = <const N extends Needs>(fn: Omit<TaskFunction<N>, 'kind'>): TaskFunction<N> => ({
  kind: 'task',
  ...fn,
});

/** The HTTP API serves every route, so it reads and writes everything it is given. */
export const API_FUNCTION = {
  kind: 'api',
  name: 'api',
  entry: 'lambdas/api/lambda.ts',
  description: 'Migration API (the Hono app of lambdas/api)',
  memorySize: 1024,
  // API Gateway gives up on the integration after 30 s.
  timeoutSeconds: 29,
  needs: {
    tables: {
      Registry: 'readWrite',
      ContentMap: 'readWrite',
      LocationMap: 'readWrite',
      Migrations: 'readWrite',
      ContentIndex: 'readWrite',
    },
    // list: a manifest not uploaded yet is "missing" (404), not "forbidden" (403).
    control: { read: true, write: true, list: true },
    // Delete: the repair route removes a corrupted chunk before copying an intact one over it. List: registering
    // a cache node checks that its bucket exists (HeadBucket).
    chunks: { read: true, write: true, delete: true, list: true },
    executions: { start: true, stop: true, taskResponse: true },
    edge: { sign: true, invalidate: true },
    // Each data center's work queue is created when its agent first asks for it, deleted with the data center.
    workQueues: { manage: true },
  },
} as const satisfies ApiFunction;

/** The Tasks of statemachines/migration.asl.json, in the order of the workflow. */
export const TASK_FUNCTIONS = {
  resolve: task({
    name: 'resolve',
    substitution: 'ResolveFunction',
    entry: 'lambdas/workflow/resolve.ts',
    description: 'RMG: cache nodes and mapping rows',
    needs: {
      tables: {
        Registry: 'readWrite',
        Migrations: 'readWrite',
        ContentMap: 'readWrite',
        LocationMap: 'readWrite',
      },
    },
  }),
  admit: task({
    name: 'admit',
    substitution: 'AdmitFunction',
    entry: 'lambdas/workflow/admit.ts',
    description: 'CMN: take transfer slots and cache space',
    // The space a migration needs at a node is what its manifest brings that the node does not hold: the content
    // index is read in batches of 100 keys, as in CheckCache.
    memorySize: 1769,
    timeoutSeconds: 300,
    needs: {
      tables: { Registry: 'readWrite', Migrations: 'readWrite', ContentIndex: 'read' },
      control: { read: true, list: true },
    },
  }),
  // Queued for a slot: waits (a callback, no state transitions) until a release wakes it or the queue time is up.
  awaitSlot: task({
    name: 'await-slot',
    substitution: 'AwaitSlotFunction',
    entry: 'lambdas/workflow/await-slot.ts',
    description: 'Callback: wait for a transfer slot or cache space at a cache node',
    needs: {
      tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'read' },
      executions: { taskResponse: true },
    },
  }),
  awaitDecision: task({
    name: 'await-decision',
    substitution: 'AwaitDecisionFunction',
    entry: 'lambdas/workflow/await-decision.ts',
    description: 'Callback: wait for an admin to accept or reject a suggested destination',
    needs: { tables: { Migrations: 'readWrite' } },
  }),
  requestWork: task({
    name: 'request-work',
    substitution: 'RequestWorkFunction',
    entry: 'lambdas/workflow/request-work.ts',
    description: 'Callback: hand work to an agent',
    // taskResponse: a step whose work is already done (a re-run after a restart) is answered at once.
    // workQueues.send: the agent is woken through its work queue.
    // ContentMap/LocationMap and control reads: the chunking an image was stored with before (earlier-chunking.ts).
    needs: {
      tables: { Migrations: 'readWrite', ContentMap: 'read', LocationMap: 'read' },
      // list: an earlier migration whose manifest is not there yet answers 404, not 403 (S3 without ListBucket).
      control: { read: true, list: true },
      executions: { taskResponse: true },
      workQueues: { send: true },
    },
  }),
  // Manifests of 100k+ chunks: the content index is read in batches of 100 keys.
  checkCache: task({
    name: 'check-cache',
    substitution: 'CheckCacheFunction',
    entry: 'lambdas/workflow/check-cache.ts',
    description: 'CMN: which chunks are cached',
    memorySize: 1769,
    timeoutSeconds: 300,
    needs: {
      tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'readWrite' },
      control: { read: true, write: true, list: true },
    },
  }),
  checkShared: task({
    name: 'check-shared',
    substitution: 'CheckSharedFunction',
    entry: 'lambdas/workflow/check-shared.ts',
    description: 'CMN: are chunks other migrations upload stored yet',
    memorySize: 1024,
    timeoutSeconds: 300,
    needs: {
      tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'read' },
      control: { read: true, list: true },
    },
  }),
  // Chunks another migration is uploading: waits until it finishes or ends (a callback, woken by it).
  awaitShared: task({
    name: 'await-shared',
    substitution: 'AwaitSharedFunction',
    entry: 'lambdas/workflow/await-shared.ts',
    description: 'Callback: wait for chunks other migrations are uploading',
    memorySize: 1024,
    timeoutSeconds: 300,
    needs: {
      tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'read' },
      control: { read: true, list: true },
      executions: { taskResponse: true },
    },
  }),
  planReplication: task({
    name: 'plan-replication',
    substitution: 'PlanReplicationFunction',
    entry: 'lambdas/workflow/plan-replication.ts',
    description: 'CMN: copies between cache nodes',
    memorySize: 1769,
    timeoutSeconds: 300,
    needs: {
      tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'read' },
      control: { read: true, write: true, list: true },
    },
  }),
  // The ASL gives a copy batch 900 s; the function must not outlive its task.
  copyBatch: task({
    name: 'copy-batch',
    substitution: 'CopyBatchFunction',
    entry: 'lambdas/workflow/copy-batch.ts',
    description: 'CMN: server-side copies',
    memorySize: 1024,
    timeoutSeconds: 890,
    needs: {
      tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'readWrite' },
      control: { read: true, list: true },
      // list: S3 answers a HEAD of a chunk not yet at the destination with 404 only to a caller that may list the
      // bucket; without it, 403, and every first copy of a chunk would fail.
      chunks: { read: true, write: true, list: true },
    },
  }),
  startDownloads: task({
    name: 'start-downloads',
    substitution: 'StartDownloadsFunction',
    entry: 'lambdas/workflow/start-downloads.ts',
    description: 'Hand over to destinations',
    needs: { tables: { Migrations: 'readWrite' } },
  }),
  complete: task({
    name: 'complete',
    substitution: 'CompleteFunction',
    entry: 'lambdas/workflow/complete.ts',
    description: 'Finish and release',
    // taskResponse: releasing slots and ending uploads wakes the migrations waiting for them.
    needs: { tables: { Registry: 'readWrite', Migrations: 'readWrite' }, executions: { taskResponse: true } },
  }),
  recordFailure: task({
    name: 'record-failure',
    substitution: 'RecordFailureFunction',
    entry: 'lambdas/workflow/record-failure.ts',
    description: 'Catch: record the cause, release',
    needs: { tables: { Registry: 'readWrite', Migrations: 'readWrite' }, executions: { taskResponse: true } },
  }),
} as const;

/** Functions that run on a schedule, not in the state machine. */
export const SCHEDULED_FUNCTIONS = {
  runPolicies: {
    kind: 'scheduled',
    name: 'run-policies',
    entry: 'lambdas/workflow/run-policies.ts',
    description: 'Backup policies: start the backups that are due',
    // The local cloud ticks every 15 s; EventBridge Scheduler's finest rate is one minute.
    everyMinutes: 1,
    timeoutSeconds: 300,
    // Registry write: a started backup holds its data centers (activeMigrations) from creation.
    needs: { tables: { Registry: 'readWrite', Migrations: 'readWrite' }, executions: { start: true } },
  },
  dueWork: {
    kind: 'scheduled',
    name: 'due-work',
    entry: 'lambdas/workflow/due-work.ts',
    description:
      'Start scheduled migrations that are due; wake queued migrations a lost wake-up left waiting',
    everyMinutes: 1,
    timeoutSeconds: 300,
    needs: {
      tables: { Registry: 'read', Migrations: 'readWrite' },
      executions: { start: true, taskResponse: true },
    },
  },
} as const satisfies Record<string, ScheduledFunction>;

/**
 * The Tasks of statemachines/collect-garbage.asl.json: the cache collector (lambdas/workflow/collect-garbage.ts),
 * one invocation per cache node, started every COLLECTOR_SCHEDULE.everyMinutes (EventBridge Scheduler on AWS, a
 * timer in the local cloud).
 */
export const COLLECTOR_FUNCTIONS = {
  listCacheNodes: task({
    name: 'list-cache-nodes',
    substitution: 'ListCacheNodesFunction',
    entry: 'lambdas/workflow/list-cache-nodes.ts',
    description: 'The cache nodes to collect',
    needs: { tables: { Registry: 'read' } },
  }),
  // A pass reads up to MAX_ENTRIES_PER_PASS (2M) index entries of its node, ~224 bytes each in memory; the ASL gives
  // the task 900 s, and the function must not outlive it.
  collectGarbage: task({
    name: 'collect-garbage',
    substitution: 'CollectGarbageFunction',
    entry: 'lambdas/workflow/collect-node.ts',
    description: 'One pass of the cache collector at one cache node',
    memorySize: 1769,
    timeoutSeconds: 890,
    needs: {
      // Registry: settings, nodes and their slots (which migrations are live), pins. Migrations: backup policies'
      // kept runs, and the waiters a freed node wakes (removed once answered).
      tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'readWrite' },
      // The manifests of live, pinned and kept migrations; list: a migration without one yet is "missing", not 403.
      control: { read: true, list: true },
      // Evicted objects are deleted. Read: the table of contents of a pack about to be deleted (are other entries
      // naming it?); list: so that a pack already gone answers 404, not 403.
      chunks: { read: true, delete: true, list: true },
      // Migrations queued for space at a node the pass freed are answered (their task tokens).
      executions: { taskResponse: true },
    },
  }),
} as const;

/** How often the collector state machine runs. */
export const COLLECTOR_SCHEDULE = { everyMinutes: 15 } as const;

export const ALL_FUNCTIONS: readonly FunctionDefinition[] = [
  API_FUNCTION,
  ...Object.values(TASK_FUNCTIONS),
  ...Object.values(SCHEDULED_FUNCTIONS),
  ...Object.values(COLLECTOR_FUNCTIONS),
];

export const MIGRATION_ASL_PATH = new URL('../statemachines/migration.asl.json', import.meta.url);
export const COLLECTOR_ASL_PATH = new URL('../statemachines/collect-garbage.asl.json', import.meta.url);
