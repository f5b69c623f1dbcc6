// Boots the real local cloud in this test process on free ports, in a temporary data directory.

import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../../cli/client.ts';
import {
  type LocalCloud,
  type LocalCloudOptions,
  type LocalPorts,
  startLocalCloud,
} from '../../local/cloud.ts';
import { loadTopology, type Topology } from '../../protocol/topology.ts';

export const topology: Topology = loadTopology(fileURLToPath(new URL('../../cdk.json', import.meta.url)));

export interface TestCloud {
  readonly cloud: LocalCloud;
  readonly dataDir: string;
  readonly admin: ApiClient;
  readonly ports: LocalPorts;
  agent(dataCenterId: string): ApiClient;
  /** Stops the cloud, keeping the data directory (for restart tests). */
  stop(): Promise<void>;
  /** Starts it again on the same data directory and ports. */
  restart(): Promise<TestCloud>;
  /** Stops and deletes everything. */
  dispose(): Promise<void>;
}

export interface TestCloudOptions
  extends Partial<Pick<LocalCloudOptions, 'agents' | 'wrapFunction' | 'retryIntervalScale'>> {
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
    stop: () => cloud.stop(),
    restart: () => startTestCloud({ ...options, dataDir, ports }),
    async dispose() {
      await cloud.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return self;
}
