// HTTP client for the migration API, driven by the same route definitions the server validates with
// (protocol/api/*), so a path or method cannot drift between them.
import type { RouteConfig } from '@hono/zod-openapi';
import type { ErrorBody } from '../protocol/api/common.ts';
import { type Auth, bearer } from './auth.ts';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly body: ErrorBody | undefined,
    fallback: string,
  ) {
    super(body?.error.message ?? fallback);
  }
  get code(): string | undefined {
    return this.body?.error.code;
  }
}

/** The API could not be reached at all (refused, unresolvable, no answer in time), after the retries. */
export class ApiUnreachableError extends Error {
  override readonly name = 'ApiUnreachableError';
  constructor(
    readonly endpoint: string,
    readonly url: string,
    cause: unknown,
    /** What the user can do about it (where the endpoint came from and how to change it). */
    readonly hint?: string,
  ) {
    super(`cannot reach the API at ${endpoint} (${networkReason(cause)})`, { cause });
  }
}

/** `connect ECONNREFUSED 127.0.0.1:7700` rather than fetch's bare `fetch failed`. */
export function networkReason(err: unknown): string {
  const e = err as (Error & { code?: string; cause?: unknown }) | undefined;
  if (e?.name === 'TimeoutError') return 'no answer in time';
  const cause = e?.cause as (Error & { code?: string }) | undefined;
  if (cause?.message) return cause.message;
  return e?.code ?? e?.message ?? String(err);
}

export interface CallInput {
  readonly params?: Record<string, string>;
  readonly query?: Record<string, string | number | undefined>;
  readonly json?: unknown;
  readonly headers?: Record<string, string>;
  /** Aborts the call (e.g. a long poll when the agent stops). */
  readonly signal?: AbortSignal;
}

export interface ApiResponse<T> {
  readonly status: number;
  readonly body: T;
}

const RETRYABLE = new Set([429, 500, 502, 503, 504]);

export class ApiClient {
  private readonly auth: Auth;

  /** `credentials`: a bearer token (local cloud) or an Auth such as `sigv4(region)` (AWS). */
  constructor(
    readonly endpoint: string,
    credentials: string | Auth,
    private readonly options: {
      readonly retries?: number;
      readonly timeoutMs?: number;
      /** Added to the error when the endpoint cannot be reached: how to start or find the API. */
      readonly unreachableHint?: string;
    } = {},
  ) {
    this.auth = typeof credentials === 'string' ? bearer(credentials) : credentials;
  }

  url(route: Pick<RouteConfig, 'path'>, input: CallInput = {}): string {
    const path = route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = input.params?.[name];
      if (value === undefined) throw new Error(`missing path parameter ${name} for ${route.path}`);
      return encodeURIComponent(value);
    });
    const url = new URL(path, this.endpoint.endsWith('/') ? this.endpoint : `${this.endpoint}/`);
    for (const [k, v] of Object.entries(input.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** Calls a route; 2xx and the statuses listed in `accept` resolve, others throw ApiError. */
  async call<T>(
    route: Pick<RouteConfig, 'path' | 'method'>,
    input: CallInput = {},
    accept: number[] = [],
  ): Promise<ApiResponse<T>> {
    const retries = this.options.retries ?? 4;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      const url = new URL(this.url(route, input));
      const method = route.method.toUpperCase();
      const body = input.json !== undefined ? JSON.stringify(input.json) : undefined;
      let signed = false;
      try {
        // Signed per attempt: SigV4 signatures carry a timestamp.
        const headers = await this.auth({
          method,
          url,
          headers: {
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...input.headers,
          },
          ...(body !== undefined ? { body } : {}),
        });
        signed = true;
        res = await fetch(url, {
          method,
          headers,
          ...(body !== undefined ? { body } : {}),
          signal: AbortSignal.any([
            AbortSignal.timeout(this.options.timeoutMs ?? 60_000),
            ...(input.signal ? [input.signal] : []),
          ]),
        });
      } catch (err) {
        // Network failure: the API may be restarting. Retry idempotent calls with backoff.
        if (input.signal?.aborted || (attempt >= retries && !signed)) throw err;
        if (attempt >= retries)
          throw new ApiUnreachableError(this.endpoint, url.toString(), err, this.options.unreachableHint);
        await backoff(attempt, undefined, undefined, input.signal);
        continue;
      }
      if (RETRYABLE.has(res.status) && attempt < retries) {
        await res.body?.cancel();
        // Rate limited or briefly unavailable: wait as long as the server asks (capped), else back off.
        const after = Number(res.headers.get('retry-after'));
        if ((res.status === 429 || res.status === 503) && Number.isFinite(after) && after > 0) {
          await sleep(Math.min(after, 30) * 1000, input.signal);
        } else await backoff(attempt, undefined, undefined, input.signal);
        continue;
      }
      const text = await res.text();
      const answer = text ? (safeJson(text) as T) : (undefined as T);
      if (res.ok || accept.includes(res.status)) return { status: res.status, body: answer };
      throw new ApiError(
        res.status,
        answer as ErrorBody | undefined,
        `${route.method.toUpperCase()} ${route.path}: HTTP ${res.status}`,
      );
    }
  }
}

/** Waits BASE·2^attempt ms (capped) times a random factor in [0.5, 1]; an abort ends the wait at once (rejects). */
export function backoff(attempt: number, baseMs = 250, capMs = 8000, signal?: AbortSignal): Promise<void> {
  return sleep(Math.min(capMs, baseMs * 2 ** attempt) * (0.5 + Math.random() / 2), signal);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (!signal) return new Promise((r) => setTimeout(r, ms));
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', done);
      resolve();
    }, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { error: { code: 'InternalError', message: text.slice(0, 500) } };
  }
}
