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
import { loadTopology, type Topology } from '../../protocol/topology.ts';

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
  /** Stops the cloud, keeping the data directory (for restart tests). */
  stop(): Promise<void>;
  /** Starts it again on the same data directory and ports. */
  restart(): Promise<TestCloud>;
  /** Stops and deletes everything. */
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
      | 's3Faults'
      | 'rateLimit'
    >
  > {
  readonly dataDir?: string;
  readonly ports?: LocalPorts;
}

const ANY: LocalPorts = { api: 0, edge: 0, stepFunctions: 0, s3: 0, dynamodb: 0 };

export async function startTestCloud(options: TestCloudOptions = {}): Promise<TestCloud> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'vmmig-test-')));
  const logFile = join(dataDir, 'test.log');
  const echo = process.env['VMMIG_TEST_LOG'] === '1';
  const cloud = await startLocalCloud({
    dataDir,
    topology,
    ports: options.ports ?? ANY,
    agents: options.agents ?? false,
    retryIntervalScale: options.retryIntervalScale ?? 0.01,
    ...(options.wrapFunction ? { wrapFunction: options.wrapFunction } : {}),
    ...(options.policyTickMs !== undefined ? { policyTickMs: options.policyTickMs } : {}),
    ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
    ...(options.s3Faults ? { s3Faults: options.s3Faults } : {}),
    ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {}),
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
    stop: () => cloud.stop(),
    restart: () => startTestCloud({ ...options, dataDir, ports }),
    async dispose() {
      await cloud.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return self;
}
