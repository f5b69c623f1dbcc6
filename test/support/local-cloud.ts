// Boots the real local cloud in this test process on free ports, in a temporary data directory.

import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ApiClient } from '../../cli/client.ts';
import {
  type LocalCloud,
  type LocalCloudOptions,
  type LocalPorts,
  startLocalCloud,
} from '../../local/cloud.ts';
import type { ErrorBody } from '../../protocol/api/common.ts';
import { loadTopology, type Topology } from '../../protocol/topology.ts';
import { type Contract, contractCheck, describeViolations } from './contract.ts';

const CLI = fileURLToPath(new URL('../../cli/vmmig.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const topology: Topology = loadTopology(fileURLToPath(new URL('../../cdk.json', import.meta.url)));

export interface TestCloud {
  readonly cloud: LocalCloud;
  readonly dataDir: string;
  readonly admin: ApiClient;
  readonly ports: LocalPorts;
  agent(dataCenterId: string): ApiClient;
  /**
   * Runs `vmmig ARGS` as a separate process the way an operator would: it finds this cloud and its admin token
   * through VMMIG_DATA_DIR. Resolves with the exit code and output (never rejects on a non-zero exit).
   */
  vmmig(args: readonly string[], env?: Record<string, string>): Promise<CliResult>;
  /** Stops the cloud, keeping the data directory (for restart tests); throws if an answer broke the contract. */
  stop(): Promise<void>;
  /** Starts it again on the same data directory and ports. */
  restart(): Promise<TestCloud>;
  /** Stops and deletes everything; throws if an answer broke the contract (docs/openapi.json). */
  dispose(): Promise<void>;
}

export interface TestCloudOptions
  extends Partial<
    Pick<
      LocalCloudOptions,
      | 'agents'
      | 'wrapFunction'
      | 'retryIntervalScale'
      | 'timeScale'
      | 'policyTickMs'
      | 'gcTickMs'
      | 's3Faults'
      | 'rateLimit'
    >
  > {
  readonly dataDir?: string;
  readonly ports?: LocalPorts;
  /**
   * Check every answer of the API against docs/openapi.json (default true): stop() and dispose() throw, naming each
   * answer the document does not describe. Only a test that breaks the contract on purpose turns it off; a test of
   * the check itself gives its own Contract.
   */
  readonly contract?: boolean | Contract;
}

const ANY: LocalPorts = { api: 0, edge: 0, stepFunctions: 0, s3: 0, dynamodb: 0 };

export async function startTestCloud(options: TestCloudOptions = {}): Promise<TestCloud> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'vmmig-test-')));
  const logFile = join(dataDir, 'test.log');
  // Every client of this cloud — the test's, `vmmig` processes, the agents — reaches the API through this check.
  const contract =
    options.contract === false
      ? undefined
      : contractCheck(
          options.contract === true || options.contract === undefined ? undefined : options.contract,
        );
  const echo = process.env['VMMIG_TEST_LOG'] === '1';
  const cloud = await startLocalCloud({
    dataDir,
    topology,
    ports: options.ports ?? ANY,
    agents: options.agents ?? false,
    retryIntervalScale: options.retryIntervalScale ?? 0.01,
    ...(options.wrapFunction ? { wrapFunction: options.wrapFunction } : {}),
    ...(options.policyTickMs !== undefined ? { policyTickMs: options.policyTickMs } : {}),
    // The cache collector runs only in tests that ask for it (its passes would change what others look at).
    gcTickMs: options.gcTickMs ?? 0,
    ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
    ...(options.s3Faults ? { s3Faults: options.s3Faults } : {}),
    ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {}),
    ...(contract ? { wrapApi: contract.wrap } : {}),
    log: (component, line) => {
      const text = `${new Date().toISOString()} ${component.padEnd(12)} ${line}\n`;
      appendFileSync(logFile, text);
      if (echo) process.stdout.write(text);
    },
  });
  const port = (url: string) => Number(new URL(url).port);
  const ports: LocalPorts = {
    api: port(cloud.endpoints.api),
    edge: port(cloud.endpoints.edge),
    stepFunctions: port(cloud.endpoints.stepFunctions),
    s3: port(cloud.endpoints.s3),
    dynamodb: port(cloud.endpoints.dynamodb),
  };
  let contractChecked = false;
  /** Throws when an answer broke the contract; once per cloud (stop, then dispose, report it once). */
  const assertContract = async () => {
    if (!contract || contractChecked) return;
    contractChecked = true;
    const violations = await contract.violations();
    if (violations.length > 0) {
      throw new Error(
        `the API answered ${violations.length} time(s) outside docs/openapi.json:\n  ${describeViolations(violations)}`,
      );
    }
  };
  const self: TestCloud = {
    cloud,
    dataDir,
    ports,
    admin: new ApiClient(cloud.endpoints.api, cloud.tokens.adminToken, { retries: 0 }),
    agent: (dc) => new ApiClient(cloud.endpoints.api, cloud.agentToken(dc), { retries: 0 }),
    vmmig: (args, env = {}) =>
      new Promise((resolve) => {
        const { VMMIG_ENDPOINT: _e, VMMIG_TOKEN: _t, ...inherited } = process.env;
        execFile(
          process.execPath,
          ['--import', TSX, CLI, ...args],
          { env: { ...inherited, VMMIG_DATA_DIR: dataDir, ...env }, timeout: 120_000 },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            resolve({ code, stdout, stderr });
          },
        );
      }),
    async stop() {
      await cloud.stop();
      await assertContract();
    },
    restart: () => startTestCloud({ ...options, dataDir, ports }),
    async dispose() {
      await cloud.stop();
      await rm(dataDir, { recursive: true, force: true });
      await assertContract();
    },
  };
  return self;
}

/**
 * Calls a test cloud's API as the admin, or with `token`, without the client's checks and retries: for tests of
 * refusals (the answer comes back whatever its status). The body is parsed JSON.
 */
export async function rawCall<T = ErrorBody>(
  t: TestCloud,
  method: string,
  path: string,
  o: { json?: unknown; token?: string } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? t.cloud.tokens.adminToken}` };
  if (o.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${t.cloud.endpoints.api}${path}`, {
    method,
    headers,
    ...(o.json !== undefined ? { body: JSON.stringify(o.json) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
