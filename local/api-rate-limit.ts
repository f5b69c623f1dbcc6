// A per-principal rate limit for the local cloud's API: one token bucket per caller, answering 429 with
// Retry-After and the API's JSON error body. On AWS the HTTP API's stage throttling plays this part.

export interface RateLimit {
  /** Requests per second each principal may sustain. */
  readonly requestsPerSecond: number;
  /** Requests a principal may send at once after a quiet spell. Default: twice requestsPerSecond. */
  readonly burst?: number;
}

/**
 * Far above what agents and the CLI send (a few requests per second each, a page of URLs per request) and 2.5
 * times the heaviest benchmark (status reads at 200/s): only a runaway client meets it.
 */
export const DEFAULT_RATE_LIMIT: RateLimit = { requestsPerSecond: 500, burst: 1000 };

/** Principals idle long enough to have a full bucket are forgotten once this many are tracked. */
const MAX_TRACKED = 10_000;

export class TokenBuckets {
  readonly rate: number;
  readonly burst: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(limit.requestsPerSecond > 0) || !Number.isFinite(limit.requestsPerSecond)) {
      throw new RangeError(`requestsPerSecond must be a positive number, got ${limit.requestsPerSecond}`);
    }
    this.rate = limit.requestsPerSecond;
    this.burst = Math.max(1, Math.floor(limit.burst ?? 2 * limit.requestsPerSecond));
  }

  /** Takes a token for `key`: 0 when the request may go, else the seconds until a token is there. */
  take(key: string): number {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (!this.buckets.has(key)) {
      if (this.buckets.size >= MAX_TRACKED) this.forgetIdle(now);
      this.buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / this.rate;
  }

  private forgetIdle(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(key);
    }
  }
}

type Handler = (request: Request, env: unknown) => Response | Promise<Response>;

/**
 * Wraps the API's fetch handler. `principalOf` names the caller (requests without valid credentials share one
 * bucket, so a flood of them cannot crowd out the real principals).
 */
export function withRateLimit(
  handler: Handler,
  limit: RateLimit,
  principalOf: (request: Request) => string,
): Handler {
  const buckets = new TokenBuckets(limit);
  return (request, env) => {
    const principal = principalOf(request);
    const wait = buckets.take(principal);
    if (wait === 0) return handler(request, env);
    const retryAfter = Math.max(1, Math.ceil(wait));
    const message =
      `rate limit exceeded: ${buckets.rate} requests per second (bursts of ${buckets.burst}) per principal; ` +
      `retry after ${retryAfter} s`;
    return new Response(
      JSON.stringify({
        error: { code: 'LimitExceeded', message, principal, retryAfterSeconds: retryAfter },
      }),
      { status: 429, headers: { 'content-type': 'application/json', 'retry-after': String(retryAfter) } },
    );
  };
}
