// Moving one chunk over HTTP: presigned PUT to the source cache node, signed GET from the edge. Transient
// failures (network, 5xx, SlowDown, a body cut off midway, a stalled connection) are retried with exponential
// backoff; an expired URL asks the caller for a new one; a chunk the edge does not have, or answers with a body of
// another length, is reported as such, for the caller to repair. CloudFront answers both an expired URL and a
// missing chunk with 403 (its origin access may not list the bucket, so S3 says 403 for a missing key): the URL's
// own expiry tells them apart.
//
// node:http(s) with keep-alive agents rather than fetch: fetch copies a Buffer body twice on the way out and hands a
// response over as web-stream pieces that arrayBuffer() concatenates, then the caller hashes it in a second pass.
// Here a body goes out as is, and a chunk comes in once, into one buffer of its length, hashed as it arrives.
import { createHash } from 'node:crypto';
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { backoff } from '../client.ts';

export class UrlExpired extends Error {
  override readonly name = 'UrlExpired';
}

/**
 * The cache node does not hold the chunk (lost, or deleted as corrupt): the edge answered 404, or 403 to a URL
 * that has not expired.
 */
export class ChunkNotFound extends Error {
  override readonly name = 'ChunkNotFound';
}

/**
 * The edge answered with a complete body of another length than the chunk's (announced, or as received): what the
 * cache node holds is not the chunk. Not retried here; the caller treats it like a digest mismatch.
 */
export class WrongLength extends Error {
  override readonly name = 'WrongLength';
  constructor(
    readonly expected: number,
    /** Bytes announced (Content-Length) or received; for a body longer than expected, at least expected + 1. */
    readonly actual: number,
    readonly atLeast = false,
  ) {
    super(`a body of ${atLeast ? 'more than ' : ''}${atLeast ? expected : actual} bytes, not ${expected}`);
  }
}

export const MAX_ATTEMPTS = 6;
/** Backoff before retry n (0-based): BASE·2ⁿ, capped, times a random factor in [0.5, 1]. */
export const BACKOFF_BASE_MS = 200;
export const BACKOFF_CAP_MS = 5000;
/** An attempt that makes no progress (no byte sent or received) for this long is abandoned and retried. */
export const ATTEMPT_TIMEOUT_MS = 120_000;
/** The stall timeout in force (tests shorten it). */
export const stall = { timeoutMs: ATTEMPT_TIMEOUT_MS };
/** Connections per host: above the agent's --concurrency cap (64), so parallel jobs queue only beyond it. */
export const MAX_SOCKETS = 64;
/** A request body goes out in pieces of this size (views, not copies), each one counting as progress. */
const WRITE_PIECE = 1 << 20;
/** At most this much of an error answer's body is kept (for the message); the rest is drained. */
const ERROR_BODY_KEPT = 16 * 1024;
const MAX_REDIRECTS = 5;

// Idle pooled connections are closed after 4 s (or a second before the server's `Keep-Alive: timeout=` hint), so
// a request rarely goes out on a connection the server is closing; when one does, it is retried like any reset.
const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS, timeout: 4000, scheduling: 'lifo' } as const;
export const httpAgent = new HttpAgent(agentOptions);
export const httpsAgent = new HttpsAgent(agentOptions);

const retryable = (status: number) => status >= 500 || status === 429 || status === 408;
const fatal = (message: string) => Object.assign(new Error(message), { fatal: true });

async function withRetries<T>(what: string, signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
  let lastError = '';
  for (let n = 0; n < MAX_ATTEMPTS; n++) {
    signal.throwIfAborted();
    try {
      return await attempt();
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof UrlExpired || err instanceof ChunkNotFound || err instanceof WrongLength) throw err;
      if ((err as { fatal?: boolean }).fatal) throw err;
      lastError = (err as Error).message;
    }
    if (n + 1 < MAX_ATTEMPTS) await backoff(n, BACKOFF_BASE_MS, BACKOFF_CAP_MS, signal);
  }
  throw new Error(`${what}: gave up after ${MAX_ATTEMPTS} attempts (${lastError})`);
}

/** What an answer's handler settles the exchange with, and reports progress to. */
interface Exchange<T> {
  /** Call for every piece that arrives. */
  progress(): void;
  done(value: T): void;
  fail(err: unknown): void;
  /** True once the exchange is over (failed, timed out, aborted): a late piece must be ignored. */
  readonly settled: boolean;
}
/** What to do with an answer: settle the exchange (after reading or discarding the body). */
type Handler<T> = (res: IncomingMessage, x: Exchange<T>) => void;

/**
 * One HTTP exchange (one attempt): follows redirects as fetch would, abandons the exchange when no byte moves for
 * the stall timeout, and destroys it when the caller's signal aborts.
 */
function exchange<T>(
  method: 'GET' | 'PUT',
  url: string,
  headers: Record<string, string>,
  body: Uint8Array | undefined,
  signal: AbortSignal,
  handle: Handler<T>,
  redirects = 0,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return reject(fatal(`not a URL: ${url.slice(0, 200)}`));
    }
    const https = target.protocol === 'https:';
    if (!https && target.protocol !== 'http:')
      return reject(fatal(`unsupported protocol ${target.protocol}`));
    let req: ClientRequest | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (err: unknown) => {
      if (settled) return;
      finish();
      req?.destroy();
      reject(err);
    };
    const done = (value: T) => {
      if (settled) return;
      finish();
      // Answered before the whole body went out (an early refusal): that connection cannot carry another request.
      if (req && !req.writableEnded) req.destroy();
      resolve(value);
    };
    const onAbort = () => fail(signal.reason);
    const progress = () => timer?.refresh();
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });

    const sent: OutgoingHttpHeaders = { ...headers };
    if (body) sent['content-length'] = body.length;
    req = (https ? httpsRequest : httpRequest)(target, {
      method,
      headers: sent,
      agent: https ? httpsAgent : httpAgent,
    });
    req.on('error', fail);
    // The clock starts when the request has a connection (waiting for a free one in the pool is not a stall).
    req.once('socket', (socket) => {
      if (settled) return;
      timer = setTimeout(
        () => fail(new Error(`no progress for ${stall.timeoutMs / 1000} s`)),
        stall.timeoutMs,
      );
      if (socket.connecting) socket.once('connect', progress);
    });
    req.on('response', (res) => {
      progress();
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      const redirect =
        location !== undefined &&
        (status === 301 || status === 302 || status === 307 || status === 308 || (status === 303 && !body));
      if (!redirect) {
        return handle(res, {
          progress,
          done,
          fail,
          get settled() {
            return settled;
          },
        });
      }
      res.resume();
      if (redirects >= MAX_REDIRECTS)
        return fail(fatal(`${method} redirected more than ${MAX_REDIRECTS} times`));
      finish();
      // The next hop has its own connection, clock and abort listener.
      exchange(method, new URL(location, target).href, headers, body, signal, handle, redirects + 1).then(
        resolve,
        reject,
      );
    });
    if (!body) {
      req.end();
      return;
    }
    // The body in pieces (subarray views, no copies): each piece handed to the kernel counts as progress, so a slow
    // but moving upload is never taken for a stalled one.
    const write = (at: number) => {
      const request = req as ClientRequest;
      while (at < body.length && !settled) {
        const piece = body.subarray(at, Math.min(at + WRITE_PIECE, body.length));
        at += piece.length;
        const more = request.write(piece, progress);
        if (!more && at < body.length) {
          request.once('drain', () => write(at));
          return;
        }
      }
      if (!settled) request.end();
    };
    write(0);
  });
}

/** Reads an answer's body as text (its first ERROR_BODY_KEPT bytes; the rest is drained). */
const readText: Handler<string> = (res, { progress, done, fail }) => {
  const pieces: Buffer[] = [];
  let kept = 0;
  res.on('data', (piece: Buffer) => {
    progress();
    if (kept < ERROR_BODY_KEPT) {
      pieces.push(piece);
      kept += piece.length;
    }
  });
  res.on('end', () => done(Buffer.concat(pieces).toString('utf8', 0, Math.min(kept, ERROR_BODY_KEPT))));
  res.on('error', fail);
  res.on('close', () => {
    if (!res.complete) fail(new Error(`connection closed before the end of a ${res.statusCode} answer`));
  });
};

/** A presigned PUT (a chunk, or the manifest) with the headers it was signed with. */
export async function putObject(
  what: string,
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  await withRetries(what, signal, async () => {
    let status = 0;
    const text = await exchange<string>('PUT', url, headers, body, signal, (res, x) => {
      status = res.statusCode ?? 0;
      readText(res, x);
    });
    if (status >= 200 && status < 300) return;
    if (status === 403 && /expired/i.test(text)) throw new UrlExpired(text);
    // BadDigest: the bytes changed on the way; sending them again is the cure.
    if (retryable(status) || /BadDigest/.test(text)) throw new Error(`PUT returned ${status}`);
    throw fatal(`PUT returned ${status}: ${text.slice(0, 300)}`);
  });
}

export const putChunk = (
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  signal: AbortSignal,
): Promise<void> => putObject('upload', url, headers, body, signal);

/**
 * A chunk's bytes and their SHA-256, computed as they arrive, into one buffer: `into` if given (a caller reusing
 * buffers from chunk to chunk; at least expectedLength long), else a new one of the chunk's length. A body cut off
 * midway is retried; a complete body of another length rejects with WrongLength (a longer one is not read past the
 * expected length).
 */
export async function getChunk(
  url: string,
  expectedLength: number,
  signal: AbortSignal,
  into?: Uint8Array,
): Promise<{ bytes: Uint8Array; sha256: string }> {
  if (into && into.length < expectedLength)
    throw new RangeError(`a buffer of ${into.length} bytes cannot hold ${expectedLength}`);
  // One buffer for every attempt: an attempt that fails midway is simply overwritten by the next.
  const buf = into ? into.subarray(0, expectedLength) : Buffer.allocUnsafe(expectedLength);
  return withRetries('download', signal, async () => {
    let status = 0;
    const out = await exchange<{ bytes: Uint8Array; sha256: string } | string>(
      'GET',
      url,
      {},
      undefined,
      signal,
      (res, x) => {
        status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) return readText(res, x);
        const announced = res.headers['content-length'];
        if (announced !== undefined && Number(announced) !== expectedLength) {
          // Not read: it could be anything, of any size.
          res.destroy();
          return x.fail(new WrongLength(expectedLength, Number(announced)));
        }
        const hash = createHash('sha256');
        let at = 0;
        res.on('data', (piece: Buffer) => {
          // After a stall, an abort or an error, the buffer may already belong to the next attempt (or the caller).
          if (x.settled) return;
          x.progress();
          if (at + piece.length > expectedLength) {
            res.destroy();
            return x.fail(new WrongLength(expectedLength, at + piece.length, true));
          }
          buf.set(piece, at);
          hash.update(piece);
          at += piece.length;
        });
        res.on('end', () => {
          if (at !== expectedLength) return x.fail(new WrongLength(expectedLength, at));
          x.done({ bytes: buf, sha256: hash.digest('hex') });
        });
        // Cut off midway (reset, premature close, fewer bytes than announced): a network failure, retried.
        res.on('error', (err) => x.fail(new Error(`${err.message} after ${at} of ${expectedLength} bytes`)));
        res.on('close', () => {
          if (!res.complete) x.fail(new Error(`connection closed after ${at} of ${expectedLength} bytes`));
        });
      },
    );
    if (typeof out !== 'string') return out;
    if (status === 403) {
      const expiresAt = signedUrlExpiry(url);
      if (expiresAt !== undefined && expiresAt - Date.now() > EXPIRY_MARGIN_MS) {
        throw new ChunkNotFound(
          `403 to a URL valid until ${new Date(expiresAt).toISOString()}: the cache node does not hold it`,
        );
      }
      throw new UrlExpired(out);
    }
    if (status === 404) throw new ChunkNotFound(out.slice(0, 300));
    if (retryable(status)) throw new Error(`GET returned ${status}`);
    throw fatal(`GET returned ${status}: ${out.slice(0, 300)}`);
  });
}

/** A 403 to a URL with less than this left before it expires (clock skew, a slow request) counts as expiry. */
const EXPIRY_MARGIN_MS = 60_000;

/**
 * When a CloudFront signed URL stops being valid (ms since the epoch): its canned policy's `Expires`, or its custom
 * policy's DateLessThan. Undefined for an unsigned URL or one that cannot be read.
 */
export function signedUrlExpiry(url: string): number | undefined {
  let params: URLSearchParams;
  try {
    params = new URL(url).searchParams;
  } catch {
    return undefined;
  }
  const expires = params.get('Expires');
  if (expires !== null) return /^\d+$/.test(expires) ? Number(expires) * 1000 : undefined;
  const policy = params.get('Policy');
  if (policy === null) return undefined;
  try {
    // CloudFront's URL-safe base64: - for +, _ for =, ~ for /.
    const json = Buffer.from(
      policy.replace(/-/g, '+').replace(/_/g, '=').replace(/~/g, '/'),
      'base64',
    ).toString('utf8');
    const epoch = (
      JSON.parse(json) as { Statement?: { Condition?: { DateLessThan?: Record<string, unknown> } }[] }
    ).Statement?.[0]?.Condition?.DateLessThan?.['AWS:EpochTime'];
    return typeof epoch === 'number' ? epoch * 1000 : undefined;
  } catch {
    return undefined;
  }
}
