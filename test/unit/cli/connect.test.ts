// Where the CLI finds the API and which credentials it uses: an agent runs with its own data center's token, never
// the admin's; errors say where it looked and what to do.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiClient, ApiUnreachableError } from '../../../cli/client.ts';
import { CliError, connect, UsageError } from '../../../cli/config.ts';
import { EXIT } from '../../../cli/exit-codes.ts';
import { agentToken, loadOrCreateTokens } from '../../../local/tokens.ts';
import { listDataCenters } from '../../../protocol/api/registry.ts';

let server: Server;
let api: string;
const seen: (string | undefined)[] = [];
let dataDir: string;
const env = ['VMMIG_ENDPOINT', 'VMMIG_TOKEN', 'VMMIG_DATA_DIR', 'VMMIG_AUTH'] as const;
let saved: Record<string, string | undefined>;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.headers.authorization);
    res.setHeader('content-type', 'application/json');
    res.end('{"items":[]}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  api = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

beforeEach(async () => {
  saved = Object.fromEntries(env.map((k) => [k, process.env[k]]));
  for (const k of env) delete process.env[k];
  seen.length = 0;
  dataDir = await mkdtemp(join(tmpdir(), 'vmmig-connect-'));
});
afterEach(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await rm(dataDir, { recursive: true, force: true });
});

/** A data directory as a running local cloud leaves it: tokens, and local.json naming this process. */
async function runningCloud() {
  const tokens = loadOrCreateTokens(dataDir);
  await writeFile(
    join(dataDir, 'local.json'),
    JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), dataDir, endpoints: { api } }),
  );
  return tokens;
}

const bearerOf = async (client: ApiClient) => {
  await client.call(listDataCenters);
  return seen.at(-1);
};

describe('connect', () => {
  it('an agent uses its data center’s agent token by default; an admin command the admin token', async () => {
    const tokens = await runningCloud();
    expect(await bearerOf(connect({ dataDir }, 'dc-gz'))).toBe(`Bearer ${agentToken(tokens, 'dc-gz')}`);
    expect(await bearerOf(connect({ dataDir }))).toBe(`Bearer ${tokens.adminToken}`);
  });

  it('an agent refuses the admin token, from VMMIG_TOKEN or --token, and another data center’s token', async () => {
    const tokens = await runningCloud();
    process.env['VMMIG_TOKEN'] = tokens.adminToken;
    expect(() => connect({ dataDir }, 'dc-gz')).toThrow(/VMMIG_TOKEN is an admin token.*agent of dc-gz/);
    delete process.env['VMMIG_TOKEN'];
    expect(() => connect({ dataDir, endpoint: api, token: tokens.adminToken }, 'dc-gz')).toThrow(UsageError);
    expect(() => connect({ dataDir, token: agentToken(tokens, 'dc-sh') }, 'dc-gz')).toThrow(
      /--token is the agent token of dc-sh, not of --vrn dc-gz/,
    );
    expect(seen).toEqual([]);
    // The admin token stays fine for admin commands.
    expect(await bearerOf(connect({ dataDir, token: tokens.adminToken }))).toBe(
      `Bearer ${tokens.adminToken}`,
    );
  });

  it('no local cloud: names the directory and where it came from, how to start one and how to name another', () => {
    process.env['VMMIG_DATA_DIR'] = dataDir;
    let error: unknown;
    try {
      connect({});
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(EXIT.unavailable);
    const text = (error as Error).message;
    expect(text).toContain(`no local cloud runs on ${dataDir} (VMMIG_DATA_DIR)`);
    expect(text).toContain(`npm start -- --data-dir ${dataDir}`);
    expect(text).toMatch(/--data-dir DIR or set VMMIG_DATA_DIR=DIR/);
    expect(text).toMatch(/--endpoint URL \(or VMMIG_ENDPOINT\)/);
  });
});

describe('ApiClient', () => {
  it('an endpoint nobody listens on: names the URL and the network error, not just "fetch failed"', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const address = closed.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise<void>((r) => closed.close(() => r()));
    const client = new ApiClient(`http://127.0.0.1:${port}`, 't', {
      retries: 0,
      unreachableHint: 'start it',
    });
    const error = await client.call(listDataCenters).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ApiUnreachableError);
    expect((error as Error).message).toBe(
      `cannot reach the API at http://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port})`,
    );
    expect((error as ApiUnreachableError).hint).toBe('start it');
  });
});
