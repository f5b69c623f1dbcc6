// A local AWS Step Functions service for the local cloud: the Step Functions JSON API that @aws-sdk/client-sfn
// talks to, running our ASL files on aws-local-stepfunctions with our Lambda handlers in-process.
//
// What runs as on AWS, and what does not:
// - Task resources: `arn:aws:states:::lambda:invoke`, `...lambda:invoke.waitForTaskToken` and Lambda function ARNs;
//   anything else is rejected by createStateMachine. Inline Map (ItemProcessor or Iterator, ItemSelector or
//   Parameters, MaxConcurrency), Parallel, Choice, Wait, Pass, Succeed, Fail. No distributed Map, JSONata or
//   workflow variables (Assign): rejected, never silently ignored.
// - Context Object: `$$.Execution.*`, `$$.StateMachine.*`, `$$.State.Name`, `$$.Task.Token`, and
//   `$$.Map.Item.Index/Value` in ItemSelector. `$$.State.RetryCount` and `EnteredTime` are exact in Task
//   Parameters whose effective input is an object; elsewhere EnteredTime is the evaluation time and RetryCount 0.
//   Write context paths in dot notation (`$$.Execution.Id`), not `$$['Execution']` or a bare `$$`.
// - Time: every Task has a timeout (TimeoutSeconds, or AWS's 99999999 s) and HeartbeatSeconds are enforced by the
//   task handler with chained timers; Wait states run on the same timers; an execution ends after its TimeoutSeconds
//   or a year. `timeScale` shrinks all of these (tests); a single task still running after ~24.8 days fails with
//   States.Timeout (the library's own timer), where AWS would let it run on.
// - Quotas: 25,000 history events per execution (counted per AWS's event types; the execution then FAILS with
//   States.Runtime, outside any Catch), 256 KiB per state's data (States.DataLimitExceeded), a Lambda's timeout
//   and its 6 MB response (Lambda.Unknown).
// - IAM: with a Gate, API calls are authorized against the caller's policy, and the state machine's role must
//   allow lambda:InvokeFunction on each function it invokes (Lambda.AWSLambdaException otherwise).
// - Restart: executions RUNNING at a stop or crash run again from the beginning, with the same ARN and input,
//   when their state machine is created; task tokens issued before are unknown afterwards.

import type { Gate } from '../iam/requests.ts';
import { describeListenError, LOOPBACK } from '../ports.ts';
import { Engine } from './engine.ts';
import { captureTimeoutErrorClass } from './errors.ts';
import { createService } from './service.ts';
import type { LocalFunctions } from './tasks.ts';

export { InvalidDefinitionError } from './definition.ts';
export { DefinitionSubstitutionError } from './substitutions.ts';
export type { LocalFunction, LocalFunctions } from './tasks.ts';

export interface LocalStepFunctionsOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** 0 (the default) picks a free port. */
  readonly port?: number;
  /** Execution records live under `<dataDir>/executions/`. */
  readonly dataDir: string;
  /** Default us-east-1. */
  readonly region?: string;
  /** Default 000000000000. */
  readonly accountId?: string;
  /** Lambda handlers by function name, as Task states name them (a Lambda ARN resolves to its name). */
  readonly functions: LocalFunctions;
  /** One line per execution and state event, prefixed with `[execution name]`. */
  readonly log?: (line: string) => void;
  /** Multiplies Retry IntervalSeconds and MaxDelaySeconds; tests set e.g. 0.001. Default 1. */
  readonly retryIntervalScale?: number;
  /** Authorizes every API request against its signer's IAM policy; without it, every request is accepted. */
  readonly gate?: Gate;
  /** Whether the role of a state machine (its ARN) may invoke a function: a refusal message, or undefined. */
  readonly canInvoke?: (functionArn: string, stateMachineArn: string) => string | undefined;
  /** Each function's timeout in seconds: an invocation running longer fails (Lambda.Unknown, Sandbox.Timedout). */
  readonly functionTimeouts?: Readonly<Record<string, number>>;
  /**
   * Multiplies the workflow's own durations — Wait, TimeoutSeconds, HeartbeatSeconds, the execution's year — so a
   * test can walk a week of waiting in seconds. Default 1.
   */
  readonly timeScale?: number;
  /** The history quota; default 25,000 as on AWS (tests may lower it). */
  readonly maxHistoryEvents?: number;
  /** Reads an S3 object as the state machine's role: a Distributed Map's ItemReader. */
  readonly readObject?: (bucket: string, key: string) => Promise<string>;
  /** Whether the state machine's role may start its own child executions (a Map Run): a refusal, or undefined. */
  readonly canStartChildren?: (stateMachineArn: string) => string | undefined;
}

export interface LocalStepFunctions {
  /** `http://host:port`, for `new SFNClient({ endpoint })` or AWS_ENDPOINT_URL_SFN. */
  readonly endpoint: string;
  readonly port: number;
  /**
   * Registers a state machine from ASL text with CDK-style `${Name}` substitutions and returns its ARN; resumes
   * its executions left RUNNING by the previous process. Throws DefinitionSubstitutionError for a missing or
   * unused substitution and InvalidDefinitionError for what would not run (as on AWS, or at all locally).
   */
  createStateMachine(
    name: string,
    definition: string,
    substitutions?: Readonly<Record<string, string>>,
  ): string;
  /** Aborts running executions in memory (on disk they stay RUNNING, to resume) and closes the server. */
  stop(): Promise<void>;
}

export async function startLocalStepFunctions(
  options: LocalStepFunctionsOptions,
): Promise<LocalStepFunctions> {
  await captureTimeoutErrorClass();
  const host = options.host ?? LOOPBACK;
  const log = (line: string) => {
    try {
      options.log?.(line);
    } catch {
      // A failing logger must not fail executions.
    }
  };
  const engine = new Engine({
    dataDir: options.dataDir,
    region: options.region ?? 'us-east-1',
    accountId: options.accountId ?? '000000000000',
    functions: options.functions,
    canInvoke: options.canInvoke,
    functionTimeouts: options.functionTimeouts,
    timeScale: options.timeScale,
    maxHistoryEvents: options.maxHistoryEvents,
    readObject: options.readObject,
    canStartChildren: options.canStartChildren,
    log,
    retryIntervalScale: options.retryIntervalScale ?? 1,
  });
  const server = createService(engine, log, options.gate);
  const requested = options.port ?? 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(describeListenError(error, requested, 'Local Step Functions', host)),
    );
    server.listen({ host, port: requested }, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : requested;
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log(`local Step Functions listening on ${endpoint}`);
  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    port,
    createStateMachine: (name, definition, substitutions) =>
      engine.createStateMachine(name, definition, substitutions),
    stop() {
      stopping ??= (async () => {
        await engine.shutdown();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return stopping;
    },
  };
}
