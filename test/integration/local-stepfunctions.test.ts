// The local Step Functions service over real HTTP with the real @aws-sdk/client-sfn: the test workflow's Lambda
// task, Map, callback, Retry and Catch; callback failures and timeouts; StartExecution/StopExecution rules; restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidToken,
  ListExecutionsCommand,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
  StateMachineDoesNotExist,
  StopExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type LocalStepFunctions, startLocalStepFunctions } from '../../local/stepfunctions/index.ts';
import {
  LogLines,
  sfnClient,
  WORKFLOW_ASL,
  WORKFLOW_SUBSTITUTIONS,
  workflowFunctions,
} from '../fixtures/stepfunctions/harness.ts';

const ITEMS = [1, 2, 3, 4, 5];
const input = (overrides: Record<string, unknown> = {}) => ({
  items: ITEMS,
  mode: 'transient',
  heartbeatSeconds: 3600,
  approvalTimeoutSeconds: 3600,
  ...overrides,
});

describe('local Step Functions', () => {
  let dataDir: string;
  let logs: LogLines;
  let world: ReturnType<typeof workflowFunctions>;
  let service: LocalStepFunctions;
  let sfn: SFNClient;
  let machineArn: string;

  const start = async () => {
    service = await startLocalStepFunctions({
      dataDir,
      functions: world.functions,
      log: logs.log,
      retryIntervalScale: 0.001,
    });
    sfn = sfnClient(service.endpoint);
    machineArn = service.createStateMachine('workflow', WORKFLOW_ASL, WORKFLOW_SUBSTITUTIONS);
  };

  const run = async (name: string, overrides: Record<string, unknown> = {}) => {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: machineArn,
        name,
        input: JSON.stringify(input(overrides)),
      }),
    );
    return started.executionArn ?? '';
  };

  const finished = async (name: string, executionArn: string) => {
    await logs.waitFor(new RegExp(`^\\[${name}\\] execution (SUCCEEDED|FAILED|TIMED_OUT)`));
    return sfn.send(new DescribeExecutionCommand({ executionArn }));
  };

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'local-sfn-'));
    logs = new LogLines();
    world = workflowFunctions();
    await start();
  });

  afterEach(async () => {
    await service.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs a Lambda task, a Map with MaxConcurrency, a callback and a retried task to the end', async () => {
    const executionArn = await run('happy');
    const approval = await world.calls.approvals.next();
    expect(approval.taskToken).toMatch(/^sfnlocal\./);
    expect(approval.note).toBe('approve happy');

    await sfn.send(
      new SendTaskSuccessCommand({
        taskToken: approval.taskToken,
        output: JSON.stringify({ approvedBy: 'ops' }),
      }),
    );
    const described = await finished('happy', executionArn);

    expect(described.status).toBe('SUCCEEDED');
    expect(JSON.parse(described.output ?? '')).toEqual({
      prepared: { items: ITEMS, statusCode: 200 },
      processed: ITEMS.map((value, index) => ({ doubled: value * 2, index })),
      approval: { approvedBy: 'ops' },
      flaky: { attempts: 3 },
    });
    expect(described.stopDate?.getTime()).toBeGreaterThanOrEqual(described.startDate?.getTime() ?? Infinity);
    expect(world.calls.prepare).toEqual([
      {
        items: ITEMS,
        executionId: executionArn,
        executionName: 'happy',
        executionInput: input(),
        startTime: described.startDate?.toISOString(),
        stateMachine: 'workflow',
        stateName: 'Prepare',
      },
    ]);
    // Inside Map iterations the Context Object is still the execution's, not the iteration's.
    expect(world.calls.process).toHaveLength(ITEMS.length);
    for (const call of world.calls.process) {
      expect(call).toMatchObject({ executionId: executionArn, executionInput: input() });
    }
    expect(world.concurrency.max).toBe(2);
    expect(world.calls.flaky.get('happy')).toEqual([0, 1, 2]);
    expect(logs.lines).toContain('[happy] entered ProcessItem [item 4]');
    expect(logs.lines).toContain('[happy] retrying Flaky (retry 2)');
    expect(logs.lines.some((line) => line.startsWith('[happy] failed Flaky: TransientError'))).toBe(true);
  });

  it('catches a named Lambda error into a Fail state with its Lambda cause', async () => {
    const executionArn = await run('permanent', { mode: 'permanent' });
    const approval = await world.calls.approvals.next();
    await sfn.send(new SendTaskSuccessCommand({ taskToken: approval.taskToken, output: '{}' }));
    const described = await finished('permanent', executionArn);

    expect(described.status).toBe('FAILED');
    expect(described.error).toBe('WorkflowFailed');
    expect(JSON.parse(described.cause ?? '')).toMatchObject({
      errorType: 'PermanentError',
      errorMessage: 'the disk image is gone',
      trace: expect.arrayContaining([expect.stringContaining('PermanentError: the disk image is gone')]),
    });
    expect(world.calls.flaky.get('permanent')).toEqual([0]);
    expect(logs.lines).toContain('[permanent] caught Flaky -> Failed');
  });

  it('fails a callback task with the error and cause of SendTaskFailure', async () => {
    const executionArn = await run('rejected');
    const approval = await world.calls.approvals.next();
    await sfn.send(
      new SendTaskFailureCommand({ taskToken: approval.taskToken, error: 'Rejected', cause: 'not today' }),
    );
    const described = await finished('rejected', executionArn);

    expect(described).toMatchObject({ status: 'FAILED', error: 'Rejected', cause: 'not today' });
    await expect(
      sfn.send(new SendTaskSuccessCommand({ taskToken: approval.taskToken, output: '{}' })),
    ).rejects.toBeInstanceOf(TaskTimedOut);
  });

  it('fails a callback task that gets no heartbeat within HeartbeatSeconds', async () => {
    const executionArn = await run('silent', { heartbeatSeconds: 1 });
    const approval = await world.calls.approvals.next();
    await sfn.send(new SendTaskHeartbeatCommand({ taskToken: approval.taskToken }));
    const described = await finished('silent', executionArn);

    expect(described.status).toBe('FAILED');
    expect(described.error).toBe('States.HeartbeatTimeout');
    await expect(
      sfn.send(new SendTaskHeartbeatCommand({ taskToken: approval.taskToken })),
    ).rejects.toBeInstanceOf(TaskTimedOut);
  });

  it('times a callback task out with States.Timeout, which States.TaskFailed does not catch', async () => {
    const executionArn = await run('slow', { approvalTimeoutSeconds: 1 });
    const approval = await world.calls.approvals.next();
    const described = await finished('slow', executionArn);

    expect(described.status).toBe('FAILED');
    expect(described.error).toBe('States.Timeout');
    expect(logs.lines).not.toContain('[slow] caught AwaitApproval -> ApprovalFailed');
    await expect(
      sfn.send(new SendTaskSuccessCommand({ taskToken: approval.taskToken, output: '{}' })),
    ).rejects.toBeInstanceOf(TaskTimedOut);
  });

  it('returns the running execution for the same name and input, and refuses other reuse of a name', async () => {
    const body = { stateMachineArn: machineArn, name: 'twice', input: JSON.stringify(input()) };
    const first = await sfn.send(new StartExecutionCommand(body));
    const approval = await world.calls.approvals.next();
    const again = await sfn.send(new StartExecutionCommand(body));
    expect(again.executionArn).toBe(first.executionArn);
    expect(again.startDate?.getTime()).toBe(first.startDate?.getTime());

    await expect(
      sfn.send(new StartExecutionCommand({ ...body, input: JSON.stringify(input({ mode: 'ok' })) })),
    ).rejects.toBeInstanceOf(ExecutionAlreadyExists);
    await sfn.send(new SendTaskSuccessCommand({ taskToken: approval.taskToken, output: '{}' }));
    await finished('twice', first.executionArn ?? '');
    await expect(sfn.send(new StartExecutionCommand(body))).rejects.toBeInstanceOf(ExecutionAlreadyExists);
    expect(world.calls.prepare).toHaveLength(1);
  });

  it('stops an execution as ABORTED with the given error and cause', async () => {
    const executionArn = await run('stopped');
    const approval = await world.calls.approvals.next();
    const stop = await sfn.send(
      new StopExecutionCommand({ executionArn, error: 'Operator', cause: 'cancelled' }),
    );
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));

    expect(described).toMatchObject({ status: 'ABORTED', error: 'Operator', cause: 'cancelled' });
    expect(described.stopDate?.getTime()).toBe(stop.stopDate?.getTime());
    await expect(
      sfn.send(new SendTaskSuccessCommand({ taskToken: approval.taskToken, output: '{}' })),
    ).rejects.toBeInstanceOf(TaskTimedOut);
    const aborted = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: machineArn, statusFilter: 'ABORTED' }),
    );
    expect(aborted.executions?.map((execution) => execution.name)).toEqual(['stopped']);
    const running = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: machineArn, statusFilter: 'RUNNING' }),
    );
    expect(running.executions).toEqual([]);
  });

  it('resumes an execution left waiting on a token from the beginning after a restart', async () => {
    const executionArn = await run('survivor');
    const before = await world.calls.approvals.next();
    await service.stop();

    world = workflowFunctions();
    await start();
    await logs.waitFor(/^\[survivor\] resuming from the beginning/);
    const after = await world.calls.approvals.next();
    expect(after.executionName).toBe('survivor');
    expect(after.taskToken).not.toBe(before.taskToken);
    expect(world.calls.prepare).toHaveLength(1);
    expect((await sfn.send(new DescribeExecutionCommand({ executionArn }))).status).toBe('RUNNING');

    await expect(
      sfn.send(new SendTaskSuccessCommand({ taskToken: before.taskToken, output: '{}' })),
    ).rejects.toBeInstanceOf(TaskDoesNotExist);
    await sfn.send(new SendTaskSuccessCommand({ taskToken: after.taskToken, output: '{"late":true}' }));
    const described = await finished('survivor', executionArn);
    expect(described.status).toBe('SUCCEEDED');
    expect(JSON.parse(described.output ?? '')).toMatchObject({ approval: { late: true } });
  });

  it('answers with the named errors the SDK raises', async () => {
    const missing = machineArn.replace(':stateMachine:workflow', ':execution:workflow:nope');
    await expect(sfn.send(new DescribeExecutionCommand({ executionArn: missing }))).rejects.toBeInstanceOf(
      ExecutionDoesNotExist,
    );
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn: `${machineArn}-other`, input: '{}' })),
    ).rejects.toBeInstanceOf(StateMachineDoesNotExist);
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn: machineArn, input: '{not json' })),
    ).rejects.toMatchObject({ name: 'InvalidExecutionInput' });
    await expect(
      sfn.send(new SendTaskSuccessCommand({ taskToken: 'garbage', output: '{}' })),
    ).rejects.toBeInstanceOf(InvalidToken);

    const response = await fetch(service.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AWSStepFunctions.Nope' },
      body: '{}',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ __type: 'UnknownOperationException' });
  });
});
