// The local cloud: the whole system on one machine, no AWS account. DynamoDB Local, an S3 server with one
// bucket per cache node, the local Step Functions service running statemachines/migration.asl.json (and the cache
// collector's collect-garbage.asl.json, on a timer) with the Lambda handlers in-process, the API (the same Hono app
// as on Lambda), the signed-URL edge, and one agent per data center. State lives under one data directory and
// survives restarts.
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { serve } from '@hono/node-server';
import { AwsClients } from '../lambdas/aws/clients.ts';
import { TABLE_DEFINITIONS } from '../lambdas/aws/tables.ts';
import {
  API_FUNCTION,
  COLLECTOR_ASL_PATH,
  COLLECTOR_FUNCTIONS,
  COLLECTOR_SCHEDULE,
  MIGRATION_ASL_PATH,
  SCHEDULED_FUNCTIONS,
  TASK_FUNCTIONS,
} from '../lambdas/functions.ts';
import { DEFAULT_FUNCTION_TIMEOUT_SECONDS, type FunctionDefinition } from '../lambdas/needs.ts';
import type { CollectNodeResult } from '../lambdas/workflow/collect-node.ts';
import type { DueWorkReport } from '../lambdas/workflow/due-work.ts';
import type { PolicyRunReport } from '../lambdas/workflow/run-policies.ts';
import type { DeclaredHandler } from '../lambdas/workflow/task.ts';
import { formatBytes } from '../protocol/bytes.ts';
import type { Topology } from '../protocol/topology.ts';
import { AgentSupervisor } from './agents.ts';
import { DEFAULT_RATE_LIMIT, type RateLimit, withRateLimit } from './api-rate-limit.ts';
import {
  credentialsOf,
  functionRuntime,
  LOCAL_ACCOUNT,
  LOCAL_NAMES,
  type LocalServices,
  lambdaEnvironment,
  principalEnvironment,
  type RootDeps,
  rootDeps,
} from './deployment.ts';
import { startDynamoDbLocal } from './dynamodb.ts';
import { startDynamoDbFront } from './dynamodb-front.ts';
import { startEdge } from './edge/server.ts';
import { loadOrCreateEdgeKeys } from './edge-keys.ts';
import {
  Authorizer,
  accessDeniedMessage,
  COLLECTOR_STATE_MACHINE,
  type LocalNames,
  loadSynthesizedPolicies,
  type SynthesizedPolicies,
  topologyDigest,
} from './iam/policies.ts';
import { Gate } from './iam/requests.ts';
import { assertPortFree, describeListenError, findFreePort, LOOPBACK, PortInUseError } from './ports.ts';
import { type FaultProxy, type FaultProxyOptions, startFaultProxy } from './s3/fault-proxy.ts';
import { startS3Server } from './s3/server.ts';
import { claimDataDir, clearState, type LocalEndpoints, writeState } from './state-file.ts';
import { startLocalStepFunctions } from './stepfunctions/index.ts';
import { ensureTables, localTableName } from './tables.ts';
import {
  agentToken,
  bearerAuthenticate,
  type LocalTokens,
  loadOrCreateTokens,
  principalOfRequest,
} from './tokens.ts';

export interface LocalPorts {
  readonly api: number;
  readonly edge: number;
  readonly stepFunctions: number;
  readonly s3: number;
  readonly dynamodb: number;
}

export const DEFAULT_PORT_BASE = 7700;
/** The local stand-ins for the HTTP API's id and the CloudFront distribution's id (in IAM resource ARNs). */
export const LOCAL_API_ID = 'localapi';
export const LOCAL_DISTRIBUTION_ID = 'LOCALEDGE';
export const portsFrom = (base: number): LocalPorts => ({
  api: base,
  edge: base + 1,
  stepFunctions: base + 2,
  s3: base + 3,
  dynamodb: base + 4,
});

export type ApiHandler = (request: Request, env: unknown) => Promise<Response>;

export interface LocalCloudOptions {
  /** Absolute; created if missing. */
  readonly dataDir: string;
  readonly topology: Topology;
  /** 0 for any free port. Default: 7700-7704. */
  readonly ports?: LocalPorts;
  /** Start one agent process per data center (default true). */
  readonly agents?:
    | boolean
    | {
        readonly onReady?: string;
        readonly onMigrated?: string;
        readonly concurrency?: number;
        /** Start agents for data centers registered at runtime, stop those of removed ones (default true). */
        readonly followRegistry?: boolean;
      };
  /** Wraps the workflow's Lambda handlers (tests inject faults here). */
  readonly wrapFunction?: (
    name: string,
    handler: (event: never) => Promise<unknown>,
  ) => (event: never) => Promise<unknown>;
  /** Multiplies Retry intervals of the state machine (tests). */
  readonly retryIntervalScale?: number;
  /** Multiplies the state machine's own durations: Wait, TimeoutSeconds, HeartbeatSeconds (tests). */
  readonly timeScale?: number;
  /** How often due backup policies are run (EventBridge Scheduler's job on AWS). Default 15 s; 0 = never. */
  readonly policyTickMs?: number;
  /**
   * How often the cache collector's state machine is started (EventBridge Scheduler's job on AWS, every
   * COLLECTOR_SCHEDULE.everyMinutes). Default 15 minutes; 0 = never.
   */
  readonly gcTickMs?: number;
  /**
   * Storage faults (tests): a fault-injecting proxy in front of the S3 server, which then serves the API, the
   * workflow, presigned URLs and the edge. `endpoints.s3` stays the S3 server itself (for inspection).
   */
  readonly s3Faults?: Omit<FaultProxyOptions, 'upstream'>;
  /** Per-principal API rate limit, answered with 429 and Retry-After. Default DEFAULT_RATE_LIMIT; false: none. */
  readonly rateLimit?: RateLimit | false;
  /**
   * Wraps the API's request handler, outermost (before the rate limit and the IAM gate): sees every request any
   * client sends to `endpoints.api` and every answer (tests check each answer against the OpenAPI document).
   */
  readonly wrapApi?: (handler: ApiHandler) => ApiHandler;
  readonly log?: (component: string, line: string) => void;
}

export interface LocalCloud {
  readonly dataDir: string;
  readonly endpoints: LocalEndpoints;
  readonly tokens: LocalTokens;
  readonly stateMachineArn: string;
  /** Warnings to show the user (e.g. a server that could not bind loopback only). */
  readonly warnings: readonly string[];
  agentToken(dataCenterId: string): string;
  /** The directory of a data center's agent (images under `images/`). */
  dataCenterDir(dataCenterId: string): string;
  readonly agents: AgentSupervisor | undefined;
  /** The fault proxy every S3 client goes through, when `s3Faults` was given. */
  readonly s3Proxy: FaultProxy | undefined;
  /**
   * The local cloud's own access (CloudFormation's and an administrator's on AWS): clients straight to the
   * servers (S3 not through the fault proxy) and every adapter. Tests look inside with it.
   */
  readonly root: { readonly clients: AwsClients; readonly deps: RootDeps };
  /** The AWS environment of a data center's agent: its own credentials and the local SQS endpoint. */
  agentEnvironment(dataCenterId: string): Record<string, string>;
  /** The environment a declared function sees as a Lambda here (to run a Lambda entry module unchanged). */
  lambdaEnvironment(definition: FunctionDefinition): Record<string, string>;
  stop(): Promise<void>;
}

export async function startLocalCloud(options: LocalCloudOptions): Promise<LocalCloud> {
  const wanted = options.ports ?? portsFrom(DEFAULT_PORT_BASE);
  const fixed = new Set(Object.values(wanted).filter((port) => port !== 0));
  // A port this cloud picked itself can be taken by another process before its server binds it (the claims of
  // findFreePort make that rare, not impossible): start again on other ports. A port the user chose is theirs to fix.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, wanted);
    } catch (err) {
      if (!(err instanceof PortInUseError) || fixed.has(err.port) || attempt >= 4) throw err;
      options.log?.(
        'cloud',
        `${err.what}: port ${err.port} was taken meanwhile; starting again on other ports`,
      );
    }
  }
}

async function startOnce(options: LocalCloudOptions, wanted: LocalPorts): Promise<LocalCloud> {
  const { dataDir, topology } = options;
  const log = options.log ?? (() => {});
  await mkdir(dataDir, { recursive: true });
  claimDataDir(dataDir);
  const tokens = loadOrCreateTokens(dataDir);
  const names: Record<keyof LocalPorts, string> = {
    api: 'the API',
    edge: 'the local edge',
    stepFunctions: 'the local Step Functions service',
    s3: 'the local S3 server',
    dynamodb: 'DynamoDB Local',
  };
  const ports = { ...wanted };
  for (const key of Object.keys(wanted) as (keyof LocalPorts)[]) {
    if (wanted[key] === 0) ports[key] = await findFreePort();
    else await assertPortFree(wanted[key], names[key]);
  }

  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse())
      await stop().catch((err: Error) => log('cloud', `stop: ${err.message}`));
    stops.length = 0;
    clearState(dataDir);
  };
  try {
    const warnings: string[] = [];
    // Every request to the local servers is authorized against its signer's IAM policy as CDK synthesizes it.
    const iam = { policies: await policiesFor(topology, log), names: localIamNames() };
    const gate = new Gate(new Authorizer(iam.policies, iam.names));
    const [ddbLocal, s3] = await Promise.all([
      // DynamoDB Local checks no permissions: it listens inside, behind the front that does.
      findFreePort().then((port) => startDynamoDbLocal({ dataDir: join(dataDir, 'dynamodb'), port })),
      startS3Server({
        dataDir: join(dataDir, 's3'),
        port: ports.s3,
        buckets: [
          LOCAL_NAMES.controlBucket,
          ...topology.cacheNodes.map((n) => LOCAL_NAMES.cacheBucket(n.id)),
        ],
        iam,
      }),
    ]);
    stops.push(
      () => ddbLocal.stop(),
      () => s3.stop(),
    );
    const ddb = await startDynamoDbFront({
      port: ports.dynamodb,
      upstream: ddbLocal.endpoint,
      gate,
      account: LOCAL_ACCOUNT,
    });
    stops.push(() => ddb.stop());
    if (!ddbLocal.bindsLoopbackOnly)
      warnings.push('DynamoDB Local listens on all interfaces (no Java compiler for the loopback launcher)');
    if (!s3.bindsLoopbackOnly) {
      warnings.push(
        `the S3 server listens on all interfaces and does not check checksums (${s3.fallbackReason ?? 'fallback mode'})`,
      );
    }

    // With `s3Faults`, everything that talks to S3 (API, workflow, presigned URLs, edge) goes through the proxy.
    const s3Proxy = options.s3Faults
      ? await startFaultProxy({ ...options.s3Faults, upstream: s3.endpoint })
      : undefined;
    if (s3Proxy) {
      stops.push(() => s3Proxy.stop());
      log('cloud', `S3 fault proxy on ${s3Proxy.endpoint} (seed ${s3Proxy.seed})`);
    }
    const s3Endpoint = s3Proxy?.endpoint ?? s3.endpoint;

    const keys = loadOrCreateEdgeKeys(dataDir);
    const edgeBase = `http://${LOOPBACK}:${ports.edge}`;
    const sfnEndpoint = `http://${LOOPBACK}:${ports.stepFunctions}`;
    const apiEndpoint = `http://${LOOPBACK}:${ports.api}`;
    // Each function runs with the variables its declaration derives and its own credentials, as on AWS.
    const services: LocalServices = {
      region: topology.homeRegion,
      dynamodb: ddb.endpoint,
      s3: s3Endpoint,
      // SQS is served by the S3 server's process, never through the storage fault proxy.
      sqs: s3.endpoint,
      stepFunctions: sfnEndpoint,
      edge: edgeBase,
      keys,
      stateMachineArn: `arn:aws:states:${topology.homeRegion}:${LOCAL_ACCOUNT}:stateMachine:${LOCAL_NAMES.stateMachine}`,
    };
    await ensureTables(
      new DynamoDBClient({
        endpoint: ddb.endpoint,
        region: topology.homeRegion,
        credentials: credentialsOf({ kind: 'root' }),
      }),
    );

    const { seedRegistry } = await import('../lambdas/aws/seed.ts');
    const deps = rootDeps(services);
    const seeded = await seedRegistry(deps.registry, topology, deps.cacheNodes.bucketFor);
    if (seeded.createdCacheNodes.length + seeded.createdDataCenters.length > 0) {
      log(
        'cloud',
        `registered cache nodes [${seeded.createdCacheNodes.join(', ')}] and data centers [${seeded.createdDataCenters.join(', ')}] from the topology`,
      );
    }

    const edge = await startEdge({
      port: ports.edge,
      publicKeyPem: keys.publicKeyPem,
      keyPairId: keys.keyPairId,
      s3: {
        endpoint: s3Endpoint,
        region: topology.homeRegion,
        credentials: credentialsOf({ kind: 'cloudfront' }),
      },
      resolveBucket: (id) => (/^[a-z0-9-]{1,32}$/.test(id) ? LOCAL_NAMES.cacheBucket(id) : undefined),
    });
    stops.push(() => edge.stop());

    // The state machine's own role: what a Distributed Map's ItemReader reads S3 with.
    const stateMachineClients = new AwsClients({
      region: topology.homeRegion,
      credentials: credentialsOf({ kind: 'stateMachine' }),
      endpoints: { s3: s3Endpoint },
      s3ForcePathStyle: true,
    });
    const functions: Record<string, (event: never) => Promise<unknown>> = {};
    const stateMachineTasks = [...Object.values(TASK_FUNCTIONS), ...Object.values(COLLECTOR_FUNCTIONS)];
    for (const definition of stateMachineTasks) {
      const handler = (await loadHandler(definition.entry)).in(functionRuntime(definition, services));
      functions[definition.name] = options.wrapFunction
        ? options.wrapFunction(definition.name, handler)
        : handler;
    }
    const sfn = await startLocalStepFunctions({
      port: ports.stepFunctions,
      dataDir: join(dataDir, 'stepfunctions'),
      region: topology.homeRegion,
      functions,
      log: (line) => log('sfn', line),
      gate,
      readObject: async (bucket, key) => {
        const s3 = stateMachineClients.s3(topology.homeRegion);
        const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return (await out.Body?.transformToString()) ?? '';
      },
      canStartChildren: (stateMachineArn) => {
        const request = { action: 'states:StartExecution', resource: stateMachineArn };
        const decision = gate.authorizer.decide({ kind: 'stateMachine' }, request);
        return decision === 'Allowed'
          ? undefined
          : accessDeniedMessage(gate.authorizer.describe({ kind: 'stateMachine' }), request, decision);
      },
      // Each state machine invokes with its own role: the migration's, or the collector's.
      canInvoke: (functionArn, machineArn) => {
        const role = machineArn.endsWith(`:${LOCAL_NAMES.collectorStateMachine}`)
          ? ({ kind: 'stateMachine', name: COLLECTOR_STATE_MACHINE } as const)
          : ({ kind: 'stateMachine' } as const);
        const request = { action: 'lambda:InvokeFunction', resource: functionArn };
        const decision = gate.authorizer.decide(role, request);
        return decision === 'Allowed'
          ? undefined
          : accessDeniedMessage(gate.authorizer.describe(role), request, decision);
      },
      ...(options.retryIntervalScale !== undefined ? { retryIntervalScale: options.retryIntervalScale } : {}),
      ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
      functionTimeouts: Object.fromEntries(
        stateMachineTasks.map((f) => [f.name, f.timeoutSeconds ?? DEFAULT_FUNCTION_TIMEOUT_SECONDS]),
      ),
    });
    stops.push(() => sfn.stop());
    const stateMachineArn = sfn.createStateMachine(
      LOCAL_NAMES.stateMachine,
      readFileSync(MIGRATION_ASL_PATH, 'utf8'),
      Object.fromEntries(Object.values(TASK_FUNCTIONS).map((f) => [f.substitution, f.name])),
    );
    if (stateMachineArn !== services.stateMachineArn)
      throw new Error(`state machine ${stateMachineArn} is not ${services.stateMachineArn}`);
    const collectorArn = sfn.createStateMachine(
      LOCAL_NAMES.collectorStateMachine,
      readFileSync(COLLECTOR_ASL_PATH, 'utf8'),
      Object.fromEntries(Object.values(COLLECTOR_FUNCTIONS).map((f) => [f.substitution, f.name])),
    );

    const { createApp } = await import('../lambdas/api/app.ts');
    const { apiDeps } = await import('../lambdas/api/deps.ts');
    const app = createApp(apiDeps(bearerAuthenticate(tokens), functionRuntime(API_FUNCTION, services)));
    // Per-principal throttling (the HTTP API's job on AWS); callers without valid credentials share one bucket.
    const limit = options.rateLimit ?? DEFAULT_RATE_LIMIT;
    // API Gateway's IAM authorizer: the caller's policy must allow execute-api:Invoke on the route (all but /health).
    const invoke = (request: Request, env: unknown) => {
      const principal = principalOfRequest(tokens, request);
      const url = new URL(request.url);
      if (principal && url.pathname !== '/health') {
        const who = principal.kind === 'admin' ? ({ kind: 'admin' } as const) : principal;
        const resource = `arn:aws:execute-api:${topology.homeRegion}:${LOCAL_ACCOUNT}:${LOCAL_API_ID}/$default/${request.method}${url.pathname}`;
        if (!gate.authorizer.allows(who, { action: 'execute-api:Invoke', resource }))
          return Response.json({ message: 'Forbidden' }, { status: 403 });
      }
      return app.fetch(request, env);
    };
    const limited =
      limit === false
        ? invoke
        : withRateLimit(invoke, limit, (request) => principalOfRequest(tokens, request)?.id ?? 'anonymous');
    const serveApi = options.wrapApi
      ? options.wrapApi(async (request, env) => limited(request, env))
      : limited;
    // Requests in flight are tracked so a stop lets them finish before the servers behind them go away.
    const inFlight = new Set<Promise<Response>>();
    const fetch = (request: Request, env: unknown) => {
      const answer = Promise.resolve(serveApi(request, env));
      inFlight.add(answer);
      void answer.finally(() => inFlight.delete(answer)).catch(() => {});
      return answer;
    };
    const server = serve({ fetch, hostname: LOOPBACK, port: ports.api });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', (err) => reject(describeListenError(err, ports.api, names.api)));
    });
    stops.push(async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await closed;
      // A long poll ends within a poll interval of its client hanging up; never wait more than a few seconds.
      await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, 3000))]);
    });

    // The scheduled functions (backup policies, due scheduled starts and wake-ups) run on a timer here, on
    // EventBridge Scheduler every minute on AWS.
    const tick = options.policyTickMs ?? 15_000;
    if (tick > 0) {
      const runPolicies = (await loadHandler<PolicyRunReport>(SCHEDULED_FUNCTIONS.runPolicies.entry)).in(
        functionRuntime(SCHEDULED_FUNCTIONS.runPolicies, services),
      );
      const dueWork = (await loadHandler<DueWorkReport>(SCHEDULED_FUNCTIONS.dueWork.entry)).in(
        functionRuntime(SCHEDULED_FUNCTIONS.dueWork, services),
      );
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        const policies = runPolicies({} as never)
          .then((r) => {
            for (const s of r.started)
              log('scheduler', `backup policy ${s.policyId}: started ${s.migrationId}`);
            for (const s of r.skipped) log('scheduler', `backup policy ${s.policyId}: skipped (${s.reason})`);
          })
          .catch((err: Error) => log('scheduler', `backup policies: ${err.message}`));
        const due = dueWork({} as never)
          .then((r) => {
            for (const id of r.started) log('scheduler', `scheduled migration ${id}: started`);
            if (r.woken > 0) log('scheduler', `woke ${r.woken} migration(s) queued for a free slot`);
          })
          .catch((err: Error) => log('scheduler', `due work: ${err.message}`));
        void Promise.all([policies, due]).finally(() => {
          running = false;
        });
      }, tick);
      timer.unref();
      stops.push(async () => clearInterval(timer));
    }

    // The cache collector: its state machine, started on a timer here as EventBridge Scheduler starts it on AWS.
    const gcTick = options.gcTickMs ?? COLLECTOR_SCHEDULE.everyMinutes * 60_000;
    if (gcTick > 0) {
      const scheduler = new AwsClients({
        region: topology.homeRegion,
        credentials: credentialsOf({ kind: 'root' }),
        endpoints: { sfn: sfnEndpoint },
      }).sfn();
      let passing = false;
      let stopped = false;
      const pass = async () => {
        const { executionArn } = await scheduler.send(
          new StartExecutionCommand({
            stateMachineArn: collectorArn,
            input: JSON.stringify({ scheduledTime: new Date().toISOString() }),
          }),
        );
        // Unlike EventBridge Scheduler, one pass at a time: a slow machine never stacks them up.
        while (!stopped) {
          const out = await scheduler.send(new DescribeExecutionCommand({ executionArn }));
          if (out.status !== 'RUNNING') {
            const status = `${out.status ?? 'UNKNOWN'}${out.error ? ` (${out.error})` : ''}`;
            logCollection(status, out.output, (line) => log('collector', line));
            return;
          }
          await new Promise((r) => setTimeout(r, Math.min(1000, gcTick)));
        }
      };
      const timer = setInterval(() => {
        if (passing) return;
        passing = true;
        pass()
          // A pass in flight when the cloud stops loses its connection: nothing to report then.
          .catch((err: Error) => stopped || log('collector', `pass: ${err.message}`))
          .finally(() => {
            passing = false;
          });
      }, gcTick);
      timer.unref();
      stops.push(async () => {
        stopped = true;
        clearInterval(timer);
      });
    }

    const endpoints: LocalEndpoints = {
      api: apiEndpoint,
      edge: edge.endpoint,
      stepFunctions: sfn.endpoint,
      s3: s3.endpoint,
      dynamodb: ddb.endpoint,
    };
    writeState({ pid: process.pid, startedAt: new Date().toISOString(), dataDir, endpoints });

    const dataCenterDir = (id: string) => join(dataDir, 'dc', id);
    // An agent reaches its work queue with its own credentials (its role's policy allows only its own queue).
    const agentEnvironment = (dataCenterId: string): Record<string, string> => ({
      ...principalEnvironment({ kind: 'agent', dataCenterId }),
      AWS_REGION: topology.homeRegion,
      AWS_ENDPOINT_URL_SQS: s3.endpoint,
    });
    let agents: AgentSupervisor | undefined;
    if (options.agents !== false) {
      const agentOptions = typeof options.agents === 'object' ? options.agents : {};
      agents = new AgentSupervisor(apiEndpoint, (dc, line) => log(`agent ${dc}`, line), agentEnvironment);
      const supervisor = agents;
      const spec = (id: string) => ({
        dataCenterId: id,
        dir: dataCenterDir(id),
        token: agentToken(tokens, id),
        onReady: agentOptions.onReady,
        onMigrated: agentOptions.onMigrated,
        concurrency: agentOptions.concurrency,
      });
      // Every registered data center gets its agent — including ones registered at runtime, which are then
      // usable at once — and a removed data center's agent stops.
      const reconcile = async () => {
        const ids = new Set((await deps.registry.allDataCenters()).map((dc) => dc.id));
        for (const id of ids) if (!supervisor.has(id)) supervisor.start(spec(id));
        for (const id of supervisor.ids()) if (!ids.has(id)) await supervisor.stopOne(id);
      };
      if (agentOptions.followRegistry === false) {
        for (const dc of topology.dataCenters) supervisor.start(spec(dc.id));
      } else {
        await reconcile();
        let reconciling = false;
        const timer = setInterval(() => {
          if (reconciling) return;
          reconciling = true;
          reconcile()
            .catch((err: Error) => log('cloud', `agents: ${err.message}`))
            .finally(() => {
              reconciling = false;
            });
        }, 2000);
        timer.unref();
        stops.push(async () => clearInterval(timer));
      }
      stops.push(() => supervisor.stop());
    }

    return {
      dataDir,
      endpoints,
      tokens,
      stateMachineArn,
      warnings,
      agents,
      s3Proxy,
      root: {
        deps,
        clients: new AwsClients({
          region: topology.homeRegion,
          credentials: credentialsOf({ kind: 'root' }),
          endpoints: { dynamodb: ddb.endpoint, s3: s3.endpoint, sfn: sfnEndpoint, sqs: s3.endpoint },
          s3ForcePathStyle: true,
        }),
      },
      lambdaEnvironment: (definition) => lambdaEnvironment(definition, services),
      agentEnvironment,
      agentToken: (id) => agentToken(tokens, id),
      dataCenterDir,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The handler a declared function's module exports (bound to its declaration by `task`). */
async function loadHandler<R = unknown>(entry: string): Promise<DeclaredHandler<never, R>> {
  const mod = (await import(new URL(`../${entry}`, import.meta.url).href)) as {
    handler?: DeclaredHandler<never, R>;
  };
  if (typeof mod.handler?.in !== 'function') throw new Error(`${entry} exports no declared handler`);
  return mod.handler;
}

/** The names the IAM policies' placeholders stand for, here. */
function localIamNames(): LocalNames {
  return {
    account: LOCAL_ACCOUNT,
    tables: Object.fromEntries(
      TABLE_DEFINITIONS.map((d) => [d.id, localTableName(d)]),
    ) as LocalNames['tables'],
    controlBucket: LOCAL_NAMES.controlBucket,
    cacheBucketPrefix: LOCAL_NAMES.cacheBucketPrefix,
    apiId: LOCAL_API_ID,
    distributionId: LOCAL_DISTRIBUTION_ID,
  };
}

/**
 * The policies CDK synthesizes for this topology: local/iam/policies.json when it was generated for it (the
 * topology of cdk.json, as `npm run iam:generate` writes it), else synthesized now (aws-cdk-lib, a few seconds).
 */
async function policiesFor(
  topology: Topology,
  log: (component: string, line: string) => void,
): Promise<SynthesizedPolicies> {
  const stored = loadSynthesizedPolicies();
  if (stored.topology === topologyDigest(topology)) return stored;
  log(
    'cloud',
    'the topology differs from the one local/iam/policies.json was generated for: synthesizing its IAM policies',
  );
  try {
    const { currentPolicies } = await import('../lib/generate-local-policies.ts');
    return currentPolicies({ 'vmmig:topology': topology });
  } catch (err) {
    throw new Error(
      `cannot synthesize the IAM policies of this topology (${(err as Error).message}); run \`npm run iam:generate\``,
    );
  }
}

/** One line per cache node of a collector pass (the execution's output, statemachines/collect-garbage.asl.json). */
function logCollection(status: string, output: string | undefined, log: (line: string) => void): void {
  const nodes =
    (output ? (JSON.parse(output) as { nodes?: (CollectNodeResult | 'failed')[] }).nodes : []) ?? [];
  if (!status.startsWith('SUCCEEDED')) log(`pass ${status}`);
  for (const n of nodes) {
    if (typeof n === 'string' || 'skipped' in n) continue;
    const budget = n.budgetBytes === undefined ? 'no budget' : `budget ${formatBytes(n.budgetBytes)}`;
    log(
      `${n.cacheNodeId}: holds ${formatBytes(n.bytesHeld)} (${budget}); marked ${n.marked.chunks} chunk(s), ` +
        `freed ${n.freed.chunks} chunk(s) ${formatBytes(n.freed.bytes)}; ${n.reason}${n.partial ? ' (partial)' : ''}`,
    );
  }
}
