// The local Step Functions service's handling of definitions: substitutions, what it refuses to run, the Task
// timeout it applies, and the less common constructs (callback retries, Lambda ARN resources, legacy Map fields);
// the cache collector's definition (statemachines/collect-garbage.asl.json) with stand-in functions.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeExecutionCommand,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COLLECTOR_ASL_PATH, COLLECTOR_FUNCTIONS } from '../../lambdas/functions.ts';
import { MAX_TIMER_SECONDS, prepareDefinition } from '../../local/stepfunctions/definition.ts';
import {
  DefinitionSubstitutionError,
  InvalidDefinitionError,
  type LocalStepFunctions,
  startLocalStepFunctions,
} from '../../local/stepfunctions/index.ts';
import { substituteDefinition } from '../../local/stepfunctions/substitutions.ts';
import {
  LogLines,
  Mailbox,
  sfnClient,
  WORKFLOW_ASL,
  WORKFLOW_SUBSTITUTIONS,
} from '../fixtures/stepfunctions/harness.ts';

const task = (fields: Record<string, unknown>) =>
  JSON.stringify({ StartAt: 'T', States: { T: { Type: 'Task', End: true, ...fields } } });
const invoke = (functionName: string, extra: Record<string, unknown> = {}) =>
  task({
    Resource: 'arn:aws:states:::lambda:invoke',
    Parameters: { FunctionName: functionName, 'Payload.$': '$' },
    ...extra,
  });

describe('definition substitutions', () => {
  it('replaces placeholders with their values', () => {
    expect(substituteDefinition(`{"a": "\${A}", "b": "\${B}-x"}`, { A: '1', B: '2' })).toBe(
      '{"a": "1", "b": "2-x"}',
    );
  });

  it('refuses a placeholder without a value and a value without a placeholder', () => {
    expect(() => substituteDefinition(`{"a": "\${A}", "b": "\${B}"}`, { A: '1', C: '3' })).toThrow(
      new DefinitionSubstitutionError(
        `definition substitutions: no value for \${B}; substitution(s) C match no \${...} in the definition`,
      ),
    );
  });
});

describe('prepared definitions', () => {
  const prepare = (definition: string) =>
    prepareDefinition(JSON.parse(definition), { functionNames: new Set(['Fn']), retryIntervalScale: 1 });
  const taskState = (definition: string) =>
    (prepare(definition).definition.States['T'] ?? {}) as unknown as Record<string, unknown>;

  it('leaves every timeout to the task handler (the library timer is only a backstop at its cap)', () => {
    expect(taskState(invoke('Fn'))['TimeoutSeconds']).toBe(MAX_TIMER_SECONDS);
    expect(taskState(invoke('Fn', { TimeoutSeconds: 30 }))['TimeoutSeconds']).toBe(MAX_TIMER_SECONDS);
    const spec = (definition: string) => prepare(definition).tasks.get('T');
    expect(spec(invoke('Fn', { TimeoutSeconds: 30 }))?.timeoutSeconds).toBe(30);
    expect(spec(invoke('Fn', { TimeoutSeconds: 99_999_999 }))?.timeoutSeconds).toBe(99_999_999);
    expect(spec(invoke('Fn'))?.timeoutSeconds).toBeUndefined();
  });

  it.each([
    [
      'an unknown function',
      invoke('arn:aws:lambda:us-east-1:000000000000:function:Other'),
      /invokes function "Other"/,
    ],
    [
      'an unsupported resource',
      task({ Resource: 'arn:aws:states:::dynamodb:putItem', Parameters: {} }),
      /not supported/,
    ],
    [
      'a callback that never passes its token',
      task({
        Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
        Parameters: { FunctionName: 'Fn' },
      }),
      /never passes \$\$\.Task\.Token/,
    ],
    [
      'a distributed Map with a ResultWriter',
      JSON.stringify({
        StartAt: 'M',
        States: {
          M: {
            Type: 'Map',
            ResultWriter: {
              Resource: 'arn:aws:states:::s3:putObject',
              Parameters: { Bucket: 'b', Prefix: 'p' },
            },
            ItemProcessor: {
              ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
              StartAt: 'P',
              States: { P: { Type: 'Pass', End: true } },
            },
            End: true,
          },
        },
      }),
      /ResultWriter is not supported locally/,
    ],
    [
      'a state name used twice',
      JSON.stringify({
        StartAt: 'P',
        States: {
          P: {
            Type: 'Parallel',
            Branches: [{ StartAt: 'P', States: { P: { Type: 'Pass', End: true } } }],
            End: true,
          },
        },
      }),
      /used more than once|invalid/,
    ],
    [
      'JSONata',
      JSON.stringify({ QueryLanguage: 'JSONata', StartAt: 'P', States: { P: { Type: 'Pass', End: true } } }),
      /JSONPath/,
    ],
  ])('refuses %s', (_, definition, message) => {
    expect(() => prepare(definition)).toThrow(InvalidDefinitionError);
    expect(() => prepare(definition)).toThrow(message);
  });
});

describe('local Step Functions with other definitions', () => {
  let dataDir: string;
  let logs: LogLines;
  let service: LocalStepFunctions;
  let sfn: SFNClient;
  let received: Mailbox<Record<string, unknown>>;

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'local-sfn-'));
    logs = new LogLines();
    received = new Mailbox();
    service = await startLocalStepFunctions({
      dataDir,
      log: logs.log,
      retryIntervalScale: 0.001,
      functions: {
        Echo: async (event: Record<string, unknown>) => {
          received.push(event);
          return { echoed: event };
        },
      },
    });
    sfn = sfnClient(service.endpoint);
  });

  afterEach(async () => {
    await service.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const execute = async (definition: string, executionInput: unknown) => {
    const stateMachineArn = service.createStateMachine(`m${Math.random().toString(36).slice(2)}`, definition);
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name: 'run', input: JSON.stringify(executionInput) }),
    );
    return executionArn ?? '';
  };
  const finished = async (executionArn: string) => {
    await logs.waitFor(/^\[run\] execution /);
    return sfn.send(new DescribeExecutionCommand({ executionArn }));
  };

  it('refuses a workflow whose substitutions do not match, naming the placeholder', () => {
    const { FlakyFunctionName: _, ...incomplete } = WORKFLOW_SUBSTITUTIONS;
    expect(() => service.createStateMachine('workflow', WORKFLOW_ASL, incomplete)).toThrow(
      /no value for \$\{FlakyFunctionName\}/,
    );
    expect(() =>
      service.createStateMachine('workflow', WORKFLOW_ASL, { ...WORKFLOW_SUBSTITUTIONS, Extra: 'x' }),
    ).toThrow(/Extra match no/);
  });

  it('gives each attempt of a retried callback task a fresh token and its retry count', async () => {
    const definition = task({
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Parameters: {
        FunctionName: 'Echo',
        Payload: {
          'token.$': '$$.Task.Token',
          'retry.$': '$$.State.RetryCount',
          'entered.$': '$$.State.EnteredTime',
        },
      },
      Retry: [{ ErrorEquals: ['Rejected'], IntervalSeconds: 1, MaxAttempts: 1 }],
    });
    const executionArn = await execute(definition, {});
    const first = await received.next();
    await sfn.send(new SendTaskFailureCommand({ taskToken: String(first['token']), error: 'Rejected' }));
    const second = await received.next();
    await sfn.send(new SendTaskSuccessCommand({ taskToken: String(second['token']), output: '"ok"' }));

    expect(first['retry']).toBe(0);
    expect(second['retry']).toBe(1);
    expect(second['token']).not.toBe(first['token']);
    expect(second['entered']).toBe(first['entered']);
    expect(await finished(executionArn)).toMatchObject({ status: 'SUCCEEDED', output: '"ok"' });
  });

  it('runs a Lambda ARN resource with the state input, and a legacy Iterator with Parameters', async () => {
    const definition = JSON.stringify({
      StartAt: 'Each',
      States: {
        Each: {
          Type: 'Map',
          ItemsPath: '$.items',
          Parameters: { 'item.$': '$$.Map.Item.Value', 'position.$': '$$.Map.Item.Index' },
          Iterator: {
            StartAt: 'Direct',
            States: {
              Direct: {
                Type: 'Task',
                Resource: 'arn:aws:lambda:us-east-1:000000000000:function:Echo',
                End: true,
              },
            },
          },
          End: true,
        },
      },
    });
    const executionArn = await execute(definition, { items: ['a', 'b'] });
    const described = await finished(executionArn);
    expect(JSON.parse(described.output ?? '')).toEqual([
      { echoed: { item: 'a', position: 0 } },
      { echoed: { item: 'b', position: 1 } },
    ]);
  });

  it('runs Parallel branches with the execution context', async () => {
    const branch = (name: string) => ({
      StartAt: name,
      States: {
        [name]: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: {
            FunctionName: 'Echo',
            Payload: { 'input.$': '$$.Execution.Input', 'state.$': '$$.State.Name' },
          },
          ResultSelector: { 'echoed.$': '$.Payload.echoed' },
          End: true,
        },
      },
    });
    const definition = JSON.stringify({
      StartAt: 'Both',
      States: { Both: { Type: 'Parallel', Branches: [branch('Left'), branch('Right')], End: true } },
    });
    const described = await finished(await execute(definition, { n: 1 }));
    expect(JSON.parse(described.output ?? '')).toEqual([
      { echoed: { input: { n: 1 }, state: 'Left' } },
      { echoed: { input: { n: 1 }, state: 'Right' } },
    ]);
  });

  it('times out an execution that runs longer than its TimeoutSeconds', async () => {
    const definition = JSON.stringify({
      TimeoutSeconds: 1,
      StartAt: 'Wait',
      States: {
        Wait: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: { FunctionName: 'Echo', Payload: { 'token.$': '$$.Task.Token' } },
          End: true,
        },
      },
    });
    const executionArn = await execute(definition, {});
    const { token } = await received.next();
    const described = await finished(executionArn);
    expect(described).toMatchObject({ status: 'TIMED_OUT', error: 'States.Timeout' });
    await expect(
      sfn.send(new SendTaskSuccessCommand({ taskToken: String(token), output: '{}' })),
    ).rejects.toMatchObject({ name: 'TaskTimedOut' });
  });

  it('fails a task whose dynamic FunctionName is not a local function as Lambda would', async () => {
    const definition = task({
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { 'FunctionName.$': '$.fn', Payload: {} },
    });
    const described = await finished(await execute(definition, { fn: 'Missing' }));
    expect(described.status).toBe('FAILED');
    expect(described.error).toBe('Lambda.ResourceNotFoundException');
    expect(described.cause).toContain('function:Missing');
  });
});

describe('the cache collector definition (statemachines/collect-garbage.asl.json)', () => {
  const NODES = ['a', 'b', 'c', 'd', 'e', 'f'];
  let dataDir: string;
  let service: LocalStepFunctions | undefined;
  afterEach(async () => {
    await service?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Runs a pass over NODES with a stand-in collector; `fail` decides what an invocation throws. */
  async function pass(fail: (node: string, attempt: number) => Error | undefined) {
    dataDir = mkdtempSync(join(tmpdir(), 'local-sfn-gc-'));
    const logs = new LogLines();
    const calls: string[] = [];
    let inFlight = 0;
    let most = 0;
    // Each invocation waits until four run at once, or every node has started: concurrency seen, no sleeps.
    const waiting: (() => void)[] = [];
    const releaseIfFull = () => {
      if (inFlight === 4 || new Set(calls).size === NODES.length) for (const go of waiting.splice(0)) go();
    };
    const { listCacheNodes, collectGarbage } = COLLECTOR_FUNCTIONS;
    service = await startLocalStepFunctions({
      dataDir,
      log: logs.log,
      retryIntervalScale: 0.001,
      functions: {
        [listCacheNodes.name]: async (event: { scheduledTime?: string }) => ({
          at: event.scheduledTime,
          cacheNodeIds: NODES,
        }),
        [collectGarbage.name]: async (event: { cacheNodeId: string; at: string }) => {
          const attempt = calls.filter((n) => n === event.cacheNodeId).length;
          calls.push(event.cacheNodeId);
          inFlight++;
          most = Math.max(most, inFlight);
          await new Promise<void>((go) => {
            waiting.push(go);
            releaseIfFull();
          });
          inFlight--;
          const error = fail(event.cacheNodeId, attempt);
          if (error) throw error;
          return { cacheNodeId: event.cacheNodeId, at: event.at, freed: { chunks: 1, bytes: 10 } };
        },
      },
    });
    const stateMachineArn = service.createStateMachine(
      'collect-garbage',
      readFileSync(COLLECTOR_ASL_PATH, 'utf8'),
      {
        [listCacheNodes.substitution]: listCacheNodes.name,
        [collectGarbage.substitution]: collectGarbage.name,
      },
    );
    const sfn = sfnClient(service.endpoint);
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name: 'run',
        input: JSON.stringify({ scheduledTime: '2026-05-01T10:00:00Z' }),
      }),
    );
    await logs.waitFor(/^\[run\] execution /);
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    return { described, calls, most };
  }

  const named = (name: string, message: string) => Object.assign(new Error(message), { name });

  it('collects every node in one invocation each, four at a time, with the pass time; retries transient errors', async () => {
    // Node d fails transiently once: retried (TransientError is what task() makes of throttling and the like).
    const { described, calls, most } = await pass((node, attempt) =>
      node === 'd' && attempt === 0 ? named('TransientError', 'throttled') : undefined,
    );
    expect(described.status).toBe('SUCCEEDED');
    expect(most).toBe(4);
    expect([...calls].sort()).toEqual(['a', 'b', 'c', 'd', 'd', 'e', 'f']);
    const output = JSON.parse(described.output ?? '') as {
      nodes: { cacheNodeId: string; at: string }[];
      failed: boolean;
    };
    expect(output.failed).toBe(false);
    expect(output.nodes.map((n) => n.cacheNodeId)).toEqual(NODES);
    for (const n of output.nodes) expect(n.at).toBe('2026-05-01T10:00:00Z');
  });

  it('goes on with the other nodes when one fails, then fails the pass', async () => {
    const { described, calls } = await pass((node) =>
      node === 'c' ? named('AccessDenied', 'no') : undefined,
    );
    expect([...calls].sort()).toEqual(NODES);
    expect(described).toMatchObject({ status: 'FAILED', error: 'CollectionFailed' });
  });
});
