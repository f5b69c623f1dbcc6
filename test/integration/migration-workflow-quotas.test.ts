// The migration workflow (statemachines/migration.asl.json, as deployed) against Step Functions' history quota, on
// the local service that enforces it: a migration queued for the longest queue timeout the API accepts, and the
// largest image the API accepts copied to two cache nodes, each stay far below 25,000 events per execution. The
// Lambda functions are stubs that answer as the real ones do at those sizes; the clock is scaled.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeExecutionCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterEach, describe, expect, it } from 'vitest';
import { COPY_BATCH_SIZE } from '../../lambdas/workflow/plan-replication.ts';
import {
  type LocalFunctions,
  type LocalStepFunctions,
  startLocalStepFunctions,
} from '../../local/stepfunctions/index.ts';
import { MAX_QUEUE_TIMEOUT_SECONDS } from '../../protocol/api/migrations.ts';
import { MAX_MANIFEST_CHUNKS } from '../../protocol/manifest.ts';
import { LogLines, sfnClient } from '../fixtures/stepfunctions/harness.ts';

const ASL = readFileSync(new URL('../../statemachines/migration.asl.json', import.meta.url), 'utf8');
const FUNCTIONS = [
  'Resolve',
  'Admit',
  'AwaitDecision',
  'AwaitSlot',
  'AwaitShared',
  'RequestWork',
  'CheckCache',
  'CheckShared',
  'PlanReplication',
  'CopyBatch',
  'StartDownloads',
  'Complete',
  'RecordFailure',
] as const;
const QUOTA = 25_000;

let dataDir: string;
let service: LocalStepFunctions | undefined;
let sfn: SFNClient;
let logs: LogLines;

afterEach(async () => {
  await service?.stop();
  service = undefined;
  rmSync(dataDir, { recursive: true, force: true });
});

/** The stubs answer the migration's callback tasks (agents) at once, as SendTaskSuccess. */
const answer = (taskToken: string): void => {
  setImmediate(() => void sfn.send(new SendTaskSuccessCommand({ taskToken, output: '{}' })));
};

async function runMigration(
  stubs: Partial<LocalFunctions>,
  options: { timeScale?: number; items?: unknown[] } = {},
) {
  dataDir = mkdtempSync(join(tmpdir(), 'workflow-quotas-'));
  logs = new LogLines();
  const unexpected = (name: string) => async () => {
    throw new Error(`${name} was not expected here`);
  };
  service = await startLocalStepFunctions({
    dataDir,
    log: logs.log,
    timeScale: options.timeScale ?? 1,
    functions: Object.fromEntries(FUNCTIONS.map((f) => [f, stubs[f] ?? unexpected(f)])),
    readObject: async () => JSON.stringify(options.items ?? []),
  });
  sfn = sfnClient(service.endpoint);
  const stateMachineArn = service.createStateMachine(
    'vmmig-migration',
    ASL,
    Object.fromEntries(
      FUNCTIONS.map((f) => [`${f}Function`, `arn:aws:lambda:us-east-1:000000000000:function:${f}`]),
    ),
  );
  const { executionArn } = await sfn.send(
    new StartExecutionCommand({
      stateMachineArn,
      name: 'mig-1-a1',
      input: JSON.stringify({ migrationId: 'mig-1' }),
    }),
  );
  await logs.waitFor(/^\[mig-1-a1\] execution /);
  const out = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  // Every execution's history, the migration's own and each Map Run child's.
  const histories = logs.lines.flatMap((line) => {
    const n = /execution \w+.* \((\d+) history events\)$/.exec(line)?.[1];
    return n === undefined ? [] : [Number(n)];
  });
  return { out, histories };
}

describe('the migration workflow within the history quota', () => {
  it(`waits ${MAX_QUEUE_TIMEOUT_SECONDS / 86_400} days for a slot in a handful of events, then fails with CongestionTimeout`, async () => {
    const admitted: number[] = [];
    const scale = 1e-5; // a week in ~6 s
    const { out, histories } = await runMigration(
      {
        // The manifest is known (it comes before admission): the wait is all there is.
        Resolve: async () => ({ manifestReady: true, allLocal: false }),
        Admit: async () => {
          admitted.push(Date.now());
          if (admitted.length > 1)
            throw Object.assign(new Error('cache node nrt stayed at capacity for 604800 s'), {
              name: 'CongestionTimeout',
            });
          return {
            admitted: false,
            reresolve: false,
            decision: 'none',
            queuedAt: 'nrt',
            waitSeconds: MAX_QUEUE_TIMEOUT_SECONDS,
          };
        },
        // Queued at a node that never frees a slot: nobody answers the token.
        AwaitSlot: async () => undefined,
        RecordFailure: async () => ({ status: 'FAILED' }),
      },
      { timeScale: scale },
    );
    expect(out.status).toBe('FAILED');
    expect(out.error).toBe('MigrationFailed');
    expect(admitted).toHaveLength(2);
    // The queue timeout ran its course on the workflow's clock, then Admit judged it once more.
    expect((admitted[1] as number) - (admitted[0] as number)).toBeGreaterThanOrEqual(
      MAX_QUEUE_TIMEOUT_SECONDS * 1000 * scale,
    );
    expect(histories).toHaveLength(1);
    expect(histories[0]).toBeLessThan(50);
  });

  it('copies the largest image the API accepts to two cache nodes with every execution far below the quota', async () => {
    const copies = MAX_MANIFEST_CHUNKS * 2;
    const batches = Math.ceil(copies / COPY_BATCH_SIZE);
    const items = Array.from({ length: batches }, (_, batch) => ({
      migrationId: 'mig-1',
      prefix: 'p',
      batch,
    }));
    const copied = new Set<number>();
    const failures: unknown[] = [];
    let completes = 0;
    const { out, histories } = await runMigration(
      {
        Resolve: async () => ({ manifestReady: false, allLocal: false }),
        Admit: async () => ({
          admitted: true,
          reresolve: false,
          decision: 'none',
          queuedAt: '',
          waitSeconds: 0,
        }),
        RequestWork: async (event: unknown) => answer((event as { taskToken: string }).taskToken),
        CheckCache: async () => ({ uploadChunks: MAX_MANIFEST_CHUNKS, awaitedChunks: 0 }),
        CheckShared: async () => ({ status: 'ready' }),
        PlanReplication: async () => ({ bucket: 'control', itemsKey: 'migrations/mig-1/a1/items.json' }),
        CopyBatch: async (event: unknown) => {
          copied.add((event as { batch: number }).batch);
          return { copied: COPY_BATCH_SIZE };
        },
        StartDownloads: async () => ({
          reupload: false,
          legs: ['dc-osa', 'dc-jkt'].map((dataCenterId) => ({
            dataCenterId,
            done: false,
            action: 'download',
          })),
        }),
        Complete: async () => ({ status: ++completes === 1 ? 'RELEASE' : 'COMPLETED' }),
        RecordFailure: async (event: unknown) => {
          failures.push(event);
          return { status: 'FAILED' };
        },
      },
      { items },
    );
    expect(failures).toEqual([]);
    expect(out.status, out.cause).toBe('SUCCEEDED');
    expect(copied.size).toBe(batches);
    // The migration's own execution, and one child per 100 batches.
    expect(histories).toHaveLength(1 + Math.ceil(batches / 100));
    const largest = Math.max(...histories);
    console.info(
      `history: ${batches} copy batches; the migration's execution ${histories.at(-1)} events, the largest ${largest} of ${QUOTA}`,
    );
    expect(largest).toBeLessThan(QUOTA / 10);
  }, 300_000);
});
