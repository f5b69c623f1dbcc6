// The local Step Functions service holds AWS's quotas and clocks: 25,000 history events (FAILED States.Runtime,
// outside any Catch), 256 KiB of state data, a Lambda's timeout and 6 MB response, Wait states and task timeouts
// on chained timers (scaled for tests), and Distributed Maps whose child executions keep their own histories.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeExecutionCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { afterEach, describe, expect, it } from 'vitest';
import { type LocalStepFunctions, startLocalStepFunctions } from '../../local/stepfunctions/index.ts';
import { LogLines, sfnClient } from '../fixtures/stepfunctions/harness.ts';

let dataDir: string;
let service: LocalStepFunctions | undefined;
let sfn: SFNClient;
let logs: LogLines;

afterEach(async () => {
  await service?.stop();
  service = undefined;
  rmSync(dataDir, { recursive: true, force: true });
});

async function start(options: Partial<Parameters<typeof startLocalStepFunctions>[0]> = {}) {
  dataDir = mkdtempSync(join(tmpdir(), 'local-sfn-q-'));
  logs = new LogLines();
  service = await startLocalStepFunctions({
    dataDir,
    log: logs.log,
    retryIntervalScale: 0.001,
    functions: {
      Echo: async (event: unknown) => event,
      Big: async (event: { bytes: number }) => ({ blob: 'x'.repeat(event.bytes) }),
      Slow: () => new Promise(() => {}),
      Fail: async () => {
        throw Object.assign(new Error('no'), { name: 'Boom' });
      },
    },
    ...options,
  });
  sfn = sfnClient(service.endpoint);
}

let runs = 0;
async function run(definition: unknown, input: unknown = {}) {
  const stateMachineArn = service?.createStateMachine(`m${++runs}`, JSON.stringify(definition)) ?? '';
  const name = `run-${runs}`;
  const { executionArn } = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }),
  );
  await logs.waitFor(new RegExp(`^\\[${name}\\] execution `));
  return sfn.send(new DescribeExecutionCommand({ executionArn }));
}

const invoke = (fn: string, extra: Record<string, unknown> = {}) => ({
  Type: 'Task',
  Resource: 'arn:aws:states:::lambda:invoke',
  Parameters: { FunctionName: fn, 'Payload.$': '$' },
  ResultSelector: { 'value.$': '$.Payload' },
  ...extra,
});
const catchAll = { ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: 'Caught' };

describe('history quota', () => {
  it('fails an execution that records too many events, with States.Runtime, which no Catch sees', async () => {
    await start({ maxHistoryEvents: 60 });
    const loop = {
      StartAt: 'Count',
      States: {
        Count: { ...invoke('Echo'), ResultPath: null, Catch: [catchAll], Next: 'Again' },
        Again: { Type: 'Pass', Next: 'Count' },
        Caught: { Type: 'Succeed' },
      },
    };
    const out = await run(loop);
    expect(out.status).toBe('FAILED');
    expect(out.error).toBe('States.Runtime');
    expect(out.cause).toMatch(/maximum number of history events \(60\)/);
  });
});

describe('payload and Lambda limits', () => {
  it('a result over 256 KiB fails the state with States.DataLimitExceeded', async () => {
    await start();
    const out = await run(
      {
        StartAt: 'B',
        States: { B: { ...invoke('Big'), Catch: [catchAll], End: true }, Caught: { Type: 'Succeed' } },
      },
      { bytes: 300 * 1024 },
    );
    expect(out.status).toBe('SUCCEEDED');
    expect(JSON.parse(out.output ?? '{}').caught.Error).toBe('States.DataLimitExceeded');
  });

  it('a Lambda response over 6 MB and a Lambda past its timeout fail with Lambda.Unknown', async () => {
    await start({ functionTimeouts: { Slow: 1 } });
    const big = await run(
      { StartAt: 'B', States: { B: { ...invoke('Big'), ResultSelector: { ok: true }, End: true } } },
      { bytes: 7 * 1024 * 1024 },
    );
    expect(big.status).toBe('FAILED');
    expect(big.error).toBe('Lambda.Unknown');
    expect(big.cause).toMatch(/ResponseSizeTooLarge/);
    const slow = await run({ StartAt: 'S', States: { S: { ...invoke('Slow'), End: true } } });
    expect(slow.error).toBe('Lambda.Unknown');
    expect(slow.cause).toMatch(/Task timed out after 1\.00 seconds/);
  });
});

describe('time', () => {
  it('runs a Wait of 30 days, and a task timeout of a week, on the scaled clock', async () => {
    await start({ timeScale: 1e-6 });
    const waited = await run({
      StartAt: 'W',
      States: {
        W: { Type: 'Wait', Seconds: 30 * 86400, Next: 'E' },
        E: { Type: 'Pass', Result: 'done', End: true },
      },
    });
    expect(waited.status).toBe('SUCCEEDED');
    const timedOut = await run({
      StartAt: 'T',
      States: {
        T: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: { FunctionName: 'Echo', Payload: { 'token.$': '$$.Task.Token' } },
          TimeoutSeconds: 7 * 86400,
          Catch: [
            { ErrorEquals: ['States.TaskFailed'], Next: 'Wrong' },
            { ErrorEquals: ['States.Timeout'], Next: 'Caught' },
          ],
          End: true,
        },
        Wrong: { Type: 'Fail', Error: 'Wrong' },
        Caught: { Type: 'Succeed' },
      },
    });
    expect(timedOut.status).toBe('SUCCEEDED');
  });

  it('a Wait until a timestamp far ahead does not pass at once (no 24.8-day timer overflow)', async () => {
    await start({ timeScale: 1 });
    const at = new Date(Date.now() + 40 * 86400_000).toISOString();
    const stateMachineArn =
      service?.createStateMachine(
        'far',
        JSON.stringify({
          StartAt: 'W',
          States: { W: { Type: 'Wait', TimestampPath: '$.at', End: true } },
        }),
      ) ?? '';
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name: 'far-run', input: JSON.stringify({ at }) }),
    );
    await logs.waitFor(/^\[far-run\] entered W/);
    // Entered and still waiting: a timer that overflowed would have ended the execution at once.
    await new Promise((r) => setImmediate(r));
    expect((await sfn.send(new DescribeExecutionCommand({ executionArn }))).status).toBe('RUNNING');
  });
});

describe('Distributed Map', () => {
  const items = Array.from({ length: 2500 }, (_, i) => ({ n: i }));
  const distributed = (processor: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    StartAt: 'M',
    States: {
      M: {
        Type: 'Map',
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { 'Bucket.$': '$.bucket', Key: 'items.json' },
        },
        ItemBatcher: { MaxItemsPerBatch: 100 },
        MaxConcurrency: 5,
        ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, ...processor },
        ResultPath: '$.results',
        ...extra,
        End: true,
      },
    },
  });
  const perItem = (state: Record<string, unknown>) => ({
    StartAt: 'Each',
    States: {
      Each: {
        Type: 'Map',
        ItemsPath: '$.Items',
        ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: 'Work', States: { Work: state } },
        End: true,
      },
    },
  });

  it('reads its items from S3 as the state machine, runs batches as child executions with their own histories', async () => {
    const reads: string[] = [];
    await start({
      maxHistoryEvents: 1000,
      readObject: async (bucket, key) => {
        reads.push(`${bucket}/${key}`);
        return JSON.stringify(items);
      },
    });
    // 2,500 items through a Task each would be far over 1,000 events in one history; 25 children of 100 are not.
    const out = await run(distributed(perItem({ ...invoke('Echo'), End: true })), { bucket: 'b' });
    expect(out.status).toBe('SUCCEEDED');
    expect(reads).toEqual(['b/items.json']);
    const results = JSON.parse(out.output ?? '{}').results as { value: { n: number } }[][];
    expect(results).toHaveLength(25);
    expect(results.flat().map((r) => r.value.n)).toEqual(items.map((i) => i.n));
  });

  it('fails past its tolerated failures with States.ExceedToleratedFailureThreshold, and needs StartExecution', async () => {
    await start({ readObject: async () => JSON.stringify(items.slice(0, 300)) });
    const failing = await run(distributed(perItem({ ...invoke('Fail'), End: true })), { bucket: 'b' });
    expect(failing.error).toBe('States.ExceedToleratedFailureThreshold');
    await service?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    await start({
      readObject: async () => JSON.stringify(items.slice(0, 10)),
      canStartChildren: () => 'not authorized to perform: states:StartExecution',
    });
    const refused = await run(distributed(perItem({ ...invoke('Echo'), End: true })), { bucket: 'b' });
    expect(refused.status).toBe('FAILED');
    expect(refused.cause).toMatch(/states:StartExecution/);
  });
});
