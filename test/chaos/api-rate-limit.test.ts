// The local API's per-principal rate limit (issue 6 item 8): a token bucket per caller. Over it, a 429 with
// Retry-After and a JSON error; other principals go on unhindered; after Retry-After the caller is served again;
// the CLI's client waits and retries by itself. `vmmig local --rate-limit N` sets it.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../../cli/client.ts';
import { DEFAULT_RATE_LIMIT, TokenBuckets } from '../../local/api-rate-limit.ts';
import { listDataCenters } from '../../protocol/api/registry.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { expectRejected, sender } from './support/fuzz.ts';

// The machine may be shared and busy: whole migrations run in some tests.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });
describe('token buckets', () => {
  it('allow a burst, then the sustained rate, per key', () => {
    let now = 0;
    const b = new TokenBuckets({ requestsPerSecond: 2, burst: 3 }, () => now);
    expect([b.take('a'), b.take('a'), b.take('a')]).toEqual([0, 0, 0]);
    expect(b.take('a')).toBeCloseTo(0.5);
    expect(b.take('b')).toBe(0);
    now += 500;
    expect(b.take('a')).toBe(0);
    expect(b.take('a')).toBeCloseTo(0.5);
    now += 60_000;
    // A quiet spell refills to the burst, never beyond.
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a') > 0]).toEqual([0, 0, 0, true]);
  });

  it('default to twice the rate as the burst, and refuse a rate that is not positive', () => {
    expect(new TokenBuckets({ requestsPerSecond: 7 }).burst).toBe(14);
    expect(() => new TokenBuckets({ requestsPerSecond: 0 })).toThrow(/positive/);
    expect(DEFAULT_RATE_LIMIT.requestsPerSecond).toBeGreaterThanOrEqual(200);
  });
});

describe('the local API', () => {
  const RATE = 2;
  const BURST = 4;
  let t: TestCloud;
  let send: ReturnType<typeof sender>;

  beforeAll(async () => {
    t = await startTestCloud({
      agents: false,
      policyTickMs: 0,
      rateLimit: { requestsPerSecond: RATE, burst: BURST },
    });
    send = sender(t);
  });
  afterAll(() => t?.dispose());

  /** `n` requests at once (sent one by one, a busy machine could spread them over seconds of refills). */
  const burst = (token: string | null, n: number) =>
    Promise.all(Array.from({ length: n }, () => send({ method: 'get', path: '/v1/data-centers', token })));

  it('answers 429 with Retry-After and a JSON error once a principal spends its burst; others are served', async () => {
    const started = performance.now();
    const admin = await burst(t.cloud.tokens.adminToken, 5 * BURST);
    const elapsed = (performance.now() - started) / 1000;
    const served = admin.filter((r) => r.status === 200).length;
    // The burst, plus what the rate refilled meanwhile.
    expect(served).toBeGreaterThanOrEqual(BURST);
    expect(served).toBeLessThanOrEqual(BURST + Math.ceil(elapsed * RATE) + 1);
    const refused = admin.find((r) => r.status === 429);
    if (!refused) throw new Error('never throttled');
    expectRejected(refused, { statuses: [429], code: 'LimitExceeded' });
    expect(refused.json.error?.message).toMatch(/2 requests per second \(bursts of 4\) per principal/);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(refused.json.error?.['retryAfterSeconds']).toBe(retryAfter);

    // Another principal, and callers without credentials (one shared bucket), are not held up by the admin.
    expect(
      (await send({ method: 'get', path: '/v1/data-centers', token: t.cloud.agentToken('dc-gz') })).status,
    ).toBe(200);
    expect((await send({ method: 'get', path: '/health', token: null })).status).toBe(200);

    await new Promise((r) => setTimeout(r, retryAfter * 1000));
    expect((await send({ method: 'get', path: '/v1/data-centers' })).status).toBe(200);
  });

  it('counts requests that fail authentication in one shared bucket, apart from the real principals', async () => {
    const anonymous = await burst('not-a-token', 5 * BURST);
    expect(anonymous.some((r) => r.status === 429)).toBe(true);
    expect(anonymous.filter((r) => r.status !== 429).every((r) => r.status === 401)).toBe(true);
    expect(
      (await send({ method: 'get', path: '/v1/data-centers', token: t.cloud.agentToken('dc-osa') })).status,
    ).toBe(200);
  });

  it("the CLI's client backs off and retries a 429 by itself", async () => {
    const client = new ApiClient(t.cloud.endpoints.api, t.cloud.agentToken('dc-sh'), { retries: 6 });
    const answers = await Promise.all(
      Array.from({ length: BURST + 4 }, () => client.call<{ items: unknown[] }>(listDataCenters)),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
  });

  it('vmmig local takes --rate-limit N (and refuses a non-number)', async () => {
    const help = await t.vmmig(['local', '--help']);
    expect(help.stdout).toMatch(/--rate-limit <n>/);
    const bad = await t.vmmig(['local', '--rate-limit', 'lots']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/rate-limit must be an integer/);
  });
});
