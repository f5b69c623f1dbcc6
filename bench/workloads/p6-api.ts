// P6: the local API under load (autocannon in a child process). Status reads at 200 requests/s, creates at a fixed
// rate; baselines from the same run: the same server's /health at the same rate (the HTTP floor), and the two
// DynamoDB reads a status request makes, sent straight to DynamoDB Local at the same rate (the emulator's share).
import { fileURLToPath } from 'node:url';
import { ENV } from '../../lambdas/config.ts';
import type { Migration } from '../../protocol/api/migrations.ts';
import { runTsChild } from '../lib/child.ts';
import { createOne, waitFor } from '../lib/migrate.ts';
import { figure, type Workload } from '../lib/types.ts';
import { round } from '../lib/util.ts';
import type { LoadResult } from './load-child.ts';

const CHILD = fileURLToPath(new URL('./load-child.ts', import.meta.url));
const READ_RATE = 200;
const CREATE_RATE = 20;

const load = (mode: 'http' | 'dynamodb', job: Record<string, unknown>): Promise<LoadResult> =>
  runTsChild<LoadResult>(`load-child ${mode}`, CHILD, [mode, JSON.stringify(job)]);

const ms = (x: number) => `${round(x, 1)} ms`;
const summary = (r: LoadResult) =>
  `p50 ${ms(r.p50)}, p99 ${ms(r.p99)}, ${round(r.ratePerSecond, 0)} req/s${r.errors + r.non2xx > 0 ? `, ${r.errors} errors, ${r.non2xx} non-2xx` : ''}`;

export const p6: Workload = async (ctx) => {
  const { b, profile } = ctx;
  const seconds = profile === 'full' ? 60 : 10;
  const createSeconds = profile === 'full' ? 30 : 10;
  const api = b.cloud.endpoints.api;
  const auth = { authorization: `Bearer ${b.cloud.tokens.adminToken}` };
  // A finished migration with a full history to read (one of the earlier workloads', or a fresh one that fails).
  const list = await b.admin.call<{ items: Migration[] }>(
    { method: 'get', path: '/v1/migrations' },
    { query: { limit: 1 } },
  );
  let id = list.body.items[0]?.id;
  if (!id) {
    id = await createOne(b, { imageId: 'p6-absent.raw', from: 'dc-jkt', to: ['dc-sh'], vmId: 'vm-p6' });
    await waitFor(b, id, 120_000);
  }
  const statusUrl = `${api}/v1/migrations/${id}`;
  const read = (url: string, duration = seconds) =>
    load('http', { url, method: 'GET', headers: auth, rate: READ_RATE, seconds: duration, connections: 10 });
  ctx.log(`P6: ${READ_RATE} req/s for ${seconds} s: status reads, /health, direct DynamoDB reads`);
  await read(statusUrl, 3); // warm-up: JIT, connection pools
  const health = await read(`${api}/health`);
  const status = await read(statusUrl);
  const dynamo = await load('dynamodb', {
    endpoint: b.cloud.endpoints.dynamodb,
    region: 'ap-northeast-1',
    table: process.env[ENV.tableMigrations],
    migrationId: id,
    rate: READ_RATE,
    seconds,
  });
  ctx.log(`P6: creates at ${CREATE_RATE} req/s for ${createSeconds} s (each starts a workflow)`);
  const create = await load('http', {
    url: `${api}/v1/migrations`,
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({
      vmId: 'vm-p6',
      hostId: 'bench-host',
      imageId: 'p6-absent.qcow2',
      sourceDataCenterId: 'dc-jkt',
      destinations: [{ dataCenterId: 'dc-sh' }],
    }),
    rate: CREATE_RATE,
    seconds: createSeconds,
    // Enough connections that a slow create does not hold the rate down (one request in flight per connection).
    connections: 40,
    uniqueKey: true,
  });
  return {
    id: 'P6',
    title: 'Local API under load',
    setup:
      `autocannon in a child process, fixed rate with coordinated-omission correction. Status reads: GET ` +
      `/v1/migrations/{id} of a finished migration with its history (one GetItem + one Query on DynamoDB Local), ` +
      `${READ_RATE} req/s for ${seconds} s, 10 connections, after a warm-up pass. Creates: POST /v1/migrations at ` +
      `${CREATE_RATE} req/s for ${createSeconds} s, each with a fresh Idempotency-Key (each starts a workflow).`,
    figures: [
      figure({
        id: 'P6a',
        metric: `status read p99 latency at ${READ_RATE} req/s (ms)`,
        unit: 'ms',
        value: round(status.p99, 1),
        target: { op: '<=', value: 50 },
        ratioToBaseline: round(status.p99 / dynamo.p99, 2),
        ours: summary(status),
        baseline: `its two DynamoDB Local reads sent directly: ${summary(dynamo)}; /health on the same server: ${summary(health)}`,
      }),
      figure({
        id: 'P6b',
        metric: `create p99 latency at ${CREATE_RATE} req/s (ms)`,
        unit: 'ms',
        value: round(create.p99, 1),
        target: undefined,
        ratioToBaseline: round(create.p99 / health.p99, 2),
        ours: summary(create),
        baseline: `/health on the same server: ${summary(health)}`,
        note: 'issue 7 sets no target for creates',
      }),
    ],
    details: { status, health, dynamo, create, migrationRead: id },
    findings: [],
  };
};
