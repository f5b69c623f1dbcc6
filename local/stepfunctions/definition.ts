// Prepares an ASL definition for aws-local-stepfunctions: validates it with the library, rejects what the library
// would run differently from AWS, points context paths at `$$.__sfn` (context.ts) and wraps Task states (tasks.ts).
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { rewriteContextPaths } from './context.ts';

export class InvalidDefinitionError extends Error {
  override readonly name = 'InvalidDefinitionError';
}

/**
 * The library's own Task timer holds at most 2^31-1 ms (~24.8 days; a longer one fires at once). Our task handler
 * enforces every TimeoutSeconds and HeartbeatSeconds itself with chained timers (timers.ts); the library's timer is
 * only a backstop at this cap, so a task running longer than ~24.8 days fails locally with States.Timeout (AWS lets
 * it run until the execution's one-year limit: the local cloud is the stricter of the two).
 */
export const MAX_TIMER_SECONDS = 2_147_483;

/** A Wait state is run as a Task of this resource (its delay by our chained timers, scaled like every clock). */
export const LOCAL_WAIT_RESOURCE = 'arn:aws:states:::local:wait';

/** A Distributed Map state is run as a Task of this resource: a Map Run of child executions (runner.ts). */
export const LOCAL_MAP_RUN_RESOURCE = 'arn:aws:states:::local:mapRun';

export type TaskKind = 'lambda-invoke' | 'lambda-callback' | 'lambda-function' | 'wait' | 'map-run';

/** A Distributed Map: its items (from S3 or the input), how they are batched, the child workflow. */
export interface MapRunSpec {
  /** The ItemProcessor, prepared as a state machine of its own: each child execution runs it. */
  readonly child: PreparedMachine;
  readonly maxItemsPerBatch: number | undefined;
  /** 0: as many as AWS allows (10,000). */
  readonly maxConcurrency: number;
  readonly toleratedFailurePercentage: number;
  readonly toleratedFailureCount: number | undefined;
  readonly label: string;
}

export interface TaskSpec {
  readonly name: string;
  readonly kind: TaskKind;
  /** From the Lambda ARN `Resource` (lambda-function), or a static `Parameters.FunctionName`. */
  readonly functionName: string | undefined;
  /** Static `TimeoutSeconds`; undefined when absent (AWS: 99999999, capped by the execution's year) or by a path. */
  readonly timeoutSeconds: number | undefined;
  readonly heartbeatSeconds: number | undefined;
  readonly dynamicTimeout: boolean;
  readonly dynamicHeartbeat: boolean;
  readonly mapRun?: MapRunSpec;
}

/** What a prepared Task state passes to its handler (the library evaluates it like any Parameters). */
export interface TaskCall {
  /** The effective input (after InputPath): the same object on every attempt of one state entry. */
  readonly Input: unknown;
  readonly Parameters: unknown;
  TimeoutSeconds?: unknown;
  readonly HeartbeatSeconds?: unknown;
}

export interface PreparedMachine {
  readonly definition: StateMachineDefinition;
  /** The type each state has in the ASL (Wait states run as Tasks locally): what history events it records. */
  readonly stateTypes: ReadonlyMap<string, string>;
  /** State names in rewrite order: `$$.State` of state `stateNames[i]` reads `$$.__sfn.States[i]`. */
  readonly stateNames: readonly string[];
  readonly tasks: ReadonlyMap<string, TaskSpec>;
  /** Top-level TimeoutSeconds; applied per run, so a resumed execution keeps its original deadline. */
  readonly timeoutSeconds: number | undefined;
}

export interface PrepareOptions {
  readonly functionNames: ReadonlySet<string>;
  /** Multiplies Retry IntervalSeconds and MaxDelaySeconds (tests: keep AWS-valid intervals, wait milliseconds). */
  readonly retryIntervalScale: number;
}

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const LAMBDA_INTEGRATION = /^arn:aws[a-z-]*:states:::lambda:invoke(\.waitForTaskToken)?$/;
const FUNCTION_NAME =
  /^(?:arn:aws[a-z-]*:lambda:[a-z0-9-]+:)?(?:\d{12}:function:)?([A-Za-z0-9_-]{1,64})(?::[\w$-]+)?$/;
const FUNCTION_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(?::[\w$-]+)?$/;

/** The function name in a Lambda name, partial ARN or ARN, without version or alias qualifier. */
export function functionNameOf(nameOrArn: string): string | undefined {
  return FUNCTION_NAME.exec(nameOrArn)?.[1];
}

const PATH_FIELDS = [
  'InputPath',
  'OutputPath',
  'ItemsPath',
  'MaxConcurrencyPath',
  'SecondsPath',
  'TimestampPath',
  'ErrorPath',
  'CausePath',
] as const;
// JSONata and workflow variables (the library runs neither).
const UNSUPPORTED_FIELDS = ['Assign', 'Arguments', 'Output', 'Items'] as const;
const DISTRIBUTED_MAP_FIELDS = [
  'ItemReader',
  'ItemBatcher',
  'ResultWriter',
  'ToleratedFailurePercentage',
  'ToleratedFailurePercentagePath',
  'ToleratedFailureCount',
  'ToleratedFailureCountPath',
] as const;

export function prepareDefinition(asl: unknown, options: PrepareOptions): PreparedMachine {
  if (!isObject(asl) || !isObject(asl['States']))
    throw new InvalidDefinitionError('definition has no States');
  if (asl['QueryLanguage'] !== undefined && asl['QueryLanguage'] !== 'JSONPath') {
    throw new InvalidDefinitionError('only JSONPath definitions are supported locally (QueryLanguage)');
  }
  try {
    new StateMachine(asl as unknown as StateMachineDefinition);
  } catch (error) {
    throw new InvalidDefinitionError(error instanceof Error ? error.message : String(error));
  }
  const walk = new Walk(options);
  const { TimeoutSeconds, QueryLanguage: _, ...top } = asl;
  const definition = { ...top, States: walk.states(asl['States']) } as unknown as StateMachineDefinition;
  return {
    definition,
    stateTypes: walk.types,
    stateNames: walk.names,
    tasks: walk.tasks,
    timeoutSeconds: typeof TimeoutSeconds === 'number' ? TimeoutSeconds : undefined,
  };
}

class Walk {
  readonly names: string[] = [];
  readonly types = new Map<string, string>();
  readonly tasks = new Map<string, TaskSpec>();

  constructor(private readonly options: PrepareOptions) {}

  states(states: JsonObject): JsonObject {
    return Object.fromEntries(
      Object.entries(states).map(([name, state]) => [name, this.state(name, state as JsonObject)]),
    );
  }

  private state(name: string, state: JsonObject): JsonObject {
    // AWS requires state names to be unique across the whole machine; the library keys Task handlers by name.
    if (this.names.includes(name))
      throw new InvalidDefinitionError(`state name "${name}" is used more than once`);
    const index = this.names.push(name) - 1;
    this.types.set(name, String(state['Type']));
    const unsupported: string[] = UNSUPPORTED_FIELDS.filter((field) => state[field] !== undefined);
    if (state['QueryLanguage'] !== undefined && state['QueryLanguage'] !== 'JSONPath')
      unsupported.push('JSONata');
    if (unsupported.length > 0) {
      throw new InvalidDefinitionError(`state "${name}": ${unsupported.join(', ')} not supported locally`);
    }
    const live = (path: string) => rewriteContextPaths(path, index, false);
    const { QueryLanguage: _, ...out }: JsonObject = { ...state };
    for (const field of PATH_FIELDS) {
      const path = state[field];
      if (typeof path === 'string') out[field] = live(path);
    }
    for (const field of ['ItemSelector', 'ResultSelector', 'Parameters'] as const) {
      if (state[field] !== undefined) out[field] = rewriteTemplate(state[field], live);
    }
    if (Array.isArray(state['Choices']))
      out['Choices'] = state['Choices'].map((rule) => rewriteChoice(rule, live));
    if (Array.isArray(state['Retry']))
      out['Retry'] = state['Retry'].map((retrier) => this.scaleRetrier(retrier));
    if (state['Type'] === 'Map') this.map(name, state, out);
    if (state['Type'] === 'Parallel' && Array.isArray(state['Branches'])) {
      out['Branches'] = state['Branches'].map((branch: JsonObject) => ({
        ...branch,
        States: this.states(branch['States'] as JsonObject),
      }));
    }
    if (state['Type'] === 'Task') this.task(name, index, state, out);
    if (state['Type'] === 'Wait') this.wait(name, index, state, out);
    return out;
  }

  private map(name: string, state: JsonObject, out: JsonObject): void {
    const distributed = DISTRIBUTED_MAP_FIELDS.filter((field) => state[field] !== undefined);
    const processorKey = state['ItemProcessor'] !== undefined ? 'ItemProcessor' : 'Iterator';
    const processor = state[processorKey] as JsonObject;
    const config = processor['ProcessorConfig'];
    if (distributed.length > 0 || (isObject(config) && config['Mode'] === 'DISTRIBUTED')) {
      this.distributedMap(name, state, out);
      return;
    }
    out[processorKey] = { ...processor, States: this.states(processor['States'] as JsonObject) };
  }

  /**
   * A Distributed Map becomes a Task our handler runs as a Map Run: items read from S3 (ItemReader, JSON) or taken
   * from the input (ItemsPath), batched (ItemBatcher), each batch a child execution of the ItemProcessor with its own
   * history, at most MaxConcurrency at once, failing past the tolerated failures. What the local service does not
   * run (ItemSelector, ResultWriter, other readers) is refused.
   */
  private distributedMap(name: string, state: JsonObject, out: JsonObject): void {
    const refuse = (what: string) => {
      throw new InvalidDefinitionError(`Distributed Map "${name}": ${what} is not supported locally`);
    };
    if (state['ItemSelector'] !== undefined || state['Parameters'] !== undefined) refuse('ItemSelector');
    if (state['ResultWriter'] !== undefined) refuse('ResultWriter');
    for (const field of ['ToleratedFailurePercentagePath', 'ToleratedFailureCountPath', 'MaxConcurrencyPath'])
      if (state[field] !== undefined) refuse(field);
    const processor = state['ItemProcessor'] as JsonObject;
    const fields: JsonObject = {};
    const call: JsonObject = { 'Input.$': '$', Parameters: fields };
    const reader = state['ItemReader'];
    if (isObject(reader)) {
      const config = reader['ReaderConfig'];
      if (
        reader['Resource'] !== 'arn:aws:states:::s3:getObject' ||
        !isObject(config) ||
        config['InputType'] !== 'JSON'
      )
        refuse('an ItemReader other than s3:getObject of a JSON array');
      const params = (reader['Parameters'] ?? {}) as JsonObject;
      for (const field of ['Bucket', 'Key']) {
        if (typeof params[field] === 'string') fields[field] = params[field];
        else if (typeof params[`${field}.$`] === 'string') fields[`${field}.$`] = params[`${field}.$`];
        else refuse(`an ItemReader without ${field}`);
      }
    } else {
      fields['Items.$'] = typeof state['ItemsPath'] === 'string' ? state['ItemsPath'] : '$';
    }
    const batcher = state['ItemBatcher'];
    const maxItemsPerBatch = isObject(batcher) ? batcher['MaxItemsPerBatch'] : undefined;
    if (isObject(batcher) && (typeof maxItemsPerBatch !== 'number' || Object.keys(batcher).length !== 1))
      refuse('an ItemBatcher other than MaxItemsPerBatch');
    const { ProcessorConfig: _, ...childDefinition } = processor;
    const child = prepareDefinition(childDefinition, this.options);
    for (const field of [
      'ItemReader',
      'ItemBatcher',
      'ItemProcessor',
      'Iterator',
      'ItemsPath',
      'MaxConcurrency',
      'ToleratedFailurePercentage',
      'ToleratedFailureCount',
      'Label',
    ])
      delete out[field];
    Object.assign(out, {
      Type: 'Task',
      Resource: LOCAL_MAP_RUN_RESOURCE,
      Parameters: call,
      TimeoutSeconds: MAX_TIMER_SECONDS,
    });
    this.tasks.set(name, {
      name,
      kind: 'map-run',
      functionName: undefined,
      timeoutSeconds: undefined,
      heartbeatSeconds: undefined,
      dynamicTimeout: false,
      dynamicHeartbeat: false,
      mapRun: {
        child,
        maxItemsPerBatch: typeof maxItemsPerBatch === 'number' ? maxItemsPerBatch : undefined,
        maxConcurrency: typeof state['MaxConcurrency'] === 'number' ? state['MaxConcurrency'] : 0,
        toleratedFailurePercentage:
          typeof state['ToleratedFailurePercentage'] === 'number' ? state['ToleratedFailurePercentage'] : 0,
        toleratedFailureCount:
          typeof state['ToleratedFailureCount'] === 'number' ? state['ToleratedFailureCount'] : undefined,
        label: typeof state['Label'] === 'string' ? state['Label'] : name,
      },
    });
  }

  private scaleRetrier(retrier: unknown): unknown {
    const scale = this.options.retryIntervalScale;
    if (scale === 1 || !isObject(retrier)) return retrier;
    const interval = typeof retrier['IntervalSeconds'] === 'number' ? retrier['IntervalSeconds'] : 1;
    const maxDelay = retrier['MaxDelaySeconds'];
    return {
      ...retrier,
      IntervalSeconds: interval * scale,
      ...(typeof maxDelay === 'number' ? { MaxDelaySeconds: maxDelay * scale } : {}),
    };
  }

  /**
   * The library evaluates the wrapped Parameters into a TaskCall and hands it to our handler, which runs the
   * integration. The library keeps Retry, Catch and TimeoutSeconds (its States.Timeout is the one Catch treats
   * right); without TimeoutSeconds it would apply 60 s, so the cap stands in for AWS's "no timeout".
   */
  private task(name: string, index: number, state: JsonObject, out: JsonObject): void {
    const resource = String(state['Resource']);
    const integration = LAMBDA_INTEGRATION.exec(resource);
    const kind: TaskKind = integration
      ? integration[1]
        ? 'lambda-callback'
        : 'lambda-invoke'
      : FUNCTION_ARN.test(resource)
        ? 'lambda-function'
        : unsupportedResource(name, resource);
    const parameters = state['Parameters'];
    const functionName =
      kind === 'lambda-function' ? functionNameOf(resource) : staticFunctionName(name, parameters);
    if (functionName !== undefined && !this.options.functionNames.has(functionName)) {
      const known = [...this.options.functionNames].join(', ') || '(none)';
      throw new InvalidDefinitionError(
        `Task "${name}" invokes function "${functionName}", not one of: ${known}`,
      );
    }
    if (kind === 'lambda-callback' && !mentionsTaskToken(parameters)) {
      throw new InvalidDefinitionError(
        `Task "${name}" waits for a task token but never passes $$.Task.Token`,
      );
    }
    const live = (path: string) => rewriteContextPaths(path, index, false);
    const call: JsonObject = { 'Input.$': '$' };
    if (parameters === undefined) call['Parameters.$'] = '$';
    else call['Parameters'] = rewriteTemplate(parameters, (path) => rewriteContextPaths(path, index, true));
    const { TimeoutSecondsPath, HeartbeatSecondsPath, HeartbeatSeconds, TimeoutSeconds } = state;
    delete out['HeartbeatSeconds'];
    delete out['HeartbeatSecondsPath'];
    delete out['TimeoutSecondsPath'];
    // The handler enforces the timeouts (tasks.ts); the library's own timer is only the backstop at the cap.
    out['TimeoutSeconds'] = MAX_TIMER_SECONDS;
    if (typeof TimeoutSecondsPath === 'string') call['TimeoutSeconds.$'] = live(TimeoutSecondsPath);
    if (typeof HeartbeatSecondsPath === 'string') call['HeartbeatSeconds.$'] = live(HeartbeatSecondsPath);
    out['Parameters'] = call;
    this.tasks.set(name, {
      name,
      kind,
      functionName,
      // AWS's default for a Task without TimeoutSeconds: 99999999 s (the execution's year comes first).
      timeoutSeconds: typeof TimeoutSeconds === 'number' ? TimeoutSeconds : undefined,
      heartbeatSeconds: typeof HeartbeatSeconds === 'number' ? HeartbeatSeconds : undefined,
      dynamicTimeout: typeof TimeoutSecondsPath === 'string',
      dynamicHeartbeat: typeof HeartbeatSecondsPath === 'string',
    });
  }

  /** A Wait state becomes a Task our handler runs: the delay from Seconds/Timestamp (or their paths), then the input. */
  private wait(name: string, index: number, state: JsonObject, out: JsonObject): void {
    const live = (path: string) => rewriteContextPaths(path, index, true);
    const fields: JsonObject = {};
    if (typeof state['Seconds'] === 'number') fields['Seconds'] = state['Seconds'];
    else if (typeof state['SecondsPath'] === 'string') fields['Seconds.$'] = live(state['SecondsPath']);
    else if (typeof state['Timestamp'] === 'string') fields['Timestamp'] = state['Timestamp'];
    else if (typeof state['TimestampPath'] === 'string') fields['Timestamp.$'] = live(state['TimestampPath']);
    const call: JsonObject = { 'Input.$': '$', Parameters: fields };
    for (const field of ['Seconds', 'SecondsPath', 'Timestamp', 'TimestampPath']) delete out[field];
    Object.assign(out, {
      Type: 'Task',
      Resource: LOCAL_WAIT_RESOURCE,
      Parameters: call,
      TimeoutSeconds: MAX_TIMER_SECONDS,
    });
    this.tasks.set(name, {
      name,
      kind: 'wait',
      functionName: undefined,
      timeoutSeconds: undefined,
      heartbeatSeconds: undefined,
      dynamicTimeout: false,
      dynamicHeartbeat: false,
    });
  }
}

function unsupportedResource(name: string, resource: string): never {
  throw new InvalidDefinitionError(
    `Task "${name}": resource "${resource}" is not supported locally (supported: arn:aws:states:::lambda:invoke, ` +
      'arn:aws:states:::lambda:invoke.waitForTaskToken, and Lambda function ARNs)',
  );
}

function staticFunctionName(stateName: string, parameters: unknown): string | undefined {
  if (!isObject(parameters) || (parameters['FunctionName'] === undefined && !parameters['FunctionName.$'])) {
    throw new InvalidDefinitionError(`Task "${stateName}": lambda:invoke needs Parameters.FunctionName`);
  }
  const value = parameters['FunctionName'];
  if (value === undefined) return undefined;
  const name = typeof value === 'string' ? functionNameOf(value) : undefined;
  if (name === undefined)
    throw new InvalidDefinitionError(`Task "${stateName}": bad FunctionName ${String(value)}`);
  return name;
}

function mentionsTaskToken(template: unknown): boolean {
  if (Array.isArray(template)) return template.some(mentionsTaskToken);
  if (!isObject(template)) return false;
  return Object.entries(template).some(([key, value]) =>
    key.endsWith('.$') && typeof value === 'string'
      ? /\$\$\.Task\.Token\b/.test(value)
      : mentionsTaskToken(value),
  );
}

/** Rewrites the paths and intrinsic functions of a payload template (`"key.$"` values); literals stay as they are. */
function rewriteTemplate(template: unknown, rewrite: (path: string) => string): unknown {
  if (Array.isArray(template)) return template.map((item) => rewriteTemplate(item, rewrite));
  if (!isObject(template)) return template;
  return Object.fromEntries(
    Object.entries(template).map(([key, value]) => [
      key,
      key.endsWith('.$') && typeof value === 'string' ? rewrite(value) : rewriteTemplate(value, rewrite),
    ]),
  );
}

function rewriteChoice(rule: unknown, rewrite: (path: string) => string): unknown {
  if (!isObject(rule)) return rule;
  return Object.fromEntries(
    Object.entries(rule).map(([key, value]) => {
      if ((key === 'Variable' || key.endsWith('Path')) && typeof value === 'string')
        return [key, rewrite(value)];
      if (key === 'And' || key === 'Or')
        return [key, (value as unknown[]).map((item) => rewriteChoice(item, rewrite))];
      if (key === 'Not') return [key, rewriteChoice(value, rewrite)];
      return [key, value];
    }),
  );
}
