// The agent's --limit-rate token bucket on fake time: a burst of one second's worth, then the configured rate on
// average, callers served in order, big chunks paid for afterwards, and a stop that does not wait for the bucket.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseRate, RateLimiter } from '../../../cli/agent/rate-limit.ts';

/** Resolves to whether `p` has settled by now (after pending microtasks run). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

describe('RateLimiter', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lets one second worth through at once, then waits for the bucket to refill', async () => {
    const limiter = new RateLimiter(1000);
    expect(await settled(limiter.take(1000))).toBe(true);
    const next = limiter.take(500);
    expect(await settled(next)).toBe(false);
    await vi.advanceTimersByTimeAsync(490);
    expect(await settled(next)).toBe(false);
    await vi.advanceTimersByTimeAsync(20);
    expect(await settled(next)).toBe(true);
  });

  it('holds the average rate over many parallel callers and serves them in order', async () => {
    const limiter = new RateLimiter(1000);
    const order: number[] = [];
    const start = Date.now();
    const takes = Array.from({ length: 40 }, (_, i) => limiter.take(100).then(() => order.push(i)));
    let finished = false;
    void Promise.all(takes).then(() => {
      finished = true;
    });
    // 4000 bytes at 1000 B/s with a 1000-byte burst: not before 3 s, and done soon after.
    await vi.advanceTimersByTimeAsync(2900);
    expect(finished).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(finished).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(Date.now() - start).toBeGreaterThanOrEqual(3000);
  });

  it('sends a chunk larger than the bucket once the bucket is full, and makes the next caller pay the debt', async () => {
    const limiter = new RateLimiter(1000);
    expect(await settled(limiter.take(3000))).toBe(true); // full bucket: goes now, 2000 bytes in debt
    const next = limiter.take(1000);
    await vi.advanceTimersByTimeAsync(2900);
    expect(await settled(next)).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(await settled(next)).toBe(true);
  });

  it('does not bank idle time beyond one second worth', async () => {
    const limiter = new RateLimiter(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(await settled(limiter.take(1000))).toBe(true);
    const next = limiter.take(1000);
    await vi.advanceTimersByTimeAsync(900);
    expect(await settled(next)).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(await settled(next)).toBe(true);
  });

  it('gives up at once when the transfer is aborted, however long the wait, and serves the next caller', async () => {
    const limiter = new RateLimiter(1024);
    await limiter.take(8 << 20); // an 8 MiB chunk at 1 KiB/s: over two hours of debt
    const abort = new AbortController();
    const waiting = limiter.take(1024, abort.signal);
    waiting.catch(() => {});
    expect(await settled(waiting)).toBe(false);
    abort.abort(new Error('agent stopping'));
    expect(await settled(waiting)).toBe(true);
    await expect(waiting).rejects.toThrow('agent stopping');
    // An already aborted signal refuses before taking anything.
    await expect(limiter.take(1, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    // The bucket keeps working for the others: the debt is still owed.
    const after = limiter.take(1024);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(await settled(after)).toBe(false);
    await vi.advanceTimersByTimeAsync(8200 * 1000);
    expect(await settled(after)).toBe(true);
  });
});

describe('parseRate', () => {
  it('reads bytes per second with binary multiples', () => {
    expect(parseRate('4M')).toBe(4 * 1024 * 1024);
    expect(parseRate('500K')).toBe(500 * 1024);
    expect(parseRate('1.5G')).toBe(1.5 * 1024 ** 3);
    expect(parseRate('20MiB/s')).toBe(20 * 1024 * 1024);
    expect(parseRate(' 8mb ')).toBe(8 * 1024 * 1024);
    expect(parseRate('1000000')).toBe(1_000_000);
  });

  it('refuses what is not a rate, and rates below 1 KiB/s', () => {
    expect(() => parseRate('fast')).toThrow(/is not a rate/);
    expect(() => parseRate('4 T')).toThrow(/is not a rate/);
    expect(() => parseRate('-1M')).toThrow(/is not a rate/);
    expect(() => parseRate('100')).toThrow(/below 1 KiB\/s/);
    expect(() => parseRate('0.5K')).toThrow(/below 1 KiB\/s/);
  });
});
