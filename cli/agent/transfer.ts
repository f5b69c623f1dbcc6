// Moving chunks over HTTP: presigned PUT to the source cache node, signed GET from the edge (a whole object, or one
// byte range of a pack). Transient failures (network, 5xx, SlowDown, a body cut off midway, a stalled connection)
// are retried with exponential backoff; an expired URL asks the caller for a new one; an object the edge does not
// have, or answers with a body of another length (or another range), is reported as such, for the caller to
// repair. CloudFront answers both an expired URL and a missing object with 403 (its origin access may not list the
// bucket, so S3 says 403 for a missing key): the URL's own expiry tells them apart.
//
// node:http(s) with keep-alive agents rather than fetch: fetch copies a Buffer body twice on the way out and hands a
// response over as web-stream pieces that arrayBuffer() concatenates, then the caller hashes it in a second pass.
// Here a body goes out as is, and a chunk comes in once, into one buffer of its length, hashed as it arrives.
import { createHash, type Hash } from 'node:crypto';
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
    /** What was wrong, when it is not only the length (another range, the whole object). */
    detail?: string,
  ) {
    super(
      detail ??
        `a body of ${atLeast ? 'more than ' : ''}${atLeast ? expected : actual} bytes, not ${expected}`,
    );
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
 * Reads a 2xx body of exactly `expected` bytes into `buf`, settling the exchange with `buf`. A body announced
 * (Content-Length) or running longer, or ending shorter, fails with WrongLength; one cut off midway fails as a
 * network failure (retried). `onPiece` sees every piece as it arrives (a hash).
 */
function receive(
  res: IncomingMessage,
  x: Exchange<Uint8Array | string>,
  buf: Uint8Array,
  expected: number,
  onPiece?: (piece: Buffer) => void,
): void {
  const announced = res.headers['content-length'];
  if (announced !== undefined && Number(announced) !== expected) {
    // Not read: it could be anything, of any size.
    res.destroy();
    x.fail(new WrongLength(expected, Number(announced)));
    return;
  }
  let at = 0;
  res.on('data', (piece: Buffer) => {
    // After a stall, an abort or an error, the buffer may already belong to the next attempt (or the caller).
    if (x.settled) return;
    x.progress();
    if (at + piece.length > expected) {
      res.destroy();
      return x.fail(new WrongLength(expected, at + piece.length, true));
    }
    buf.set(piece, at);
    onPiece?.(piece);
    at += piece.length;
  });
  res.on('end', () => {
    if (at !== expected) return x.fail(new WrongLength(expected, at));
    x.done(buf);
  });
  // Cut off midway (reset, premature close, fewer bytes than announced): a network failure, retried.
  res.on('error', (err) => x.fail(new Error(`${err.message} after ${at} of ${expected} bytes`)));
  res.on('close', () => {
    if (!res.complete) x.fail(new Error(`connection closed after ${at} of ${expected} bytes`));
  });
}

/** The error a GET answered with a non-2xx status stands for (thrown by the caller). */
function refusedGet(url: string, status: number, text: string): Error {
  if (status === 403) {
    const expiresAt = signedUrlExpiry(url);
    if (expiresAt !== undefined && expiresAt - Date.now() > EXPIRY_MARGIN_MS) {
      return new ChunkNotFound(
        `403 to a URL valid until ${new Date(expiresAt).toISOString()}: the cache node does not hold it`,
      );
    }
    return new UrlExpired(text);
  }
  if (status === 404) return new ChunkNotFound(text.slice(0, 300));
  if (retryable(status)) return new Error(`GET returned ${status}`);
  return fatal(`GET returned ${status}: ${text.slice(0, 300)}`);
}

/** The buffer a download lands in: a view of the caller's (at least `length` long), else a new one. */
function landing(length: number, into: Uint8Array | undefined): Uint8Array {
  if (into && into.length < length)
    throw new RangeError(`a buffer of ${into.length} bytes cannot hold ${length}`);
  // One buffer for every attempt: an attempt that fails midway is simply overwritten by the next.
  return into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
}

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
  const buf = landing(expectedLength, into);
  return withRetries('download', signal, async () => {
    let status = 0;
    let hash: Hash | undefined;
    const out = await exchange<Uint8Array | string>('GET', url, {}, undefined, signal, (res, x) => {
      status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) return readText(res, x);
      const h = createHash('sha256');
      hash = h;
      receive(res, x, buf, expectedLength, (piece) => h.update(piece));
    });
    if (typeof out !== 'string' && hash) return { bytes: out, sha256: hash.digest('hex') };
    throw refusedGet(url, status, typeof out === 'string' ? out : '');
  });
}

/** `bytes first-last/total` (or `bytes first-last/*`) of a 206 answer; undefined when absent or unreadable. */
function contentRange(header: string | undefined): { first: number; last: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header?.trim() ?? '');
  return m ? { first: Number(m[1]), last: Number(m[2]) } : undefined;
}

/**
 * Bytes [start, start + length) of an object (a chunk's stored bytes in a pack, or a run of them), with one range
 * GET, into `into` when given (at least `length` long) or a new buffer. The same retries as getChunk; not hashed
 * (the caller decodes, then checks each chunk's digest). The answer must be a 206 of exactly that range; a 200 (a
 * server that ignores ranges) is the whole object, so it is accepted only when the range asked for is the whole
 * object (start 0, and exactly `length` bytes). Anything else, a 416 included (the object is shorter than the
 * range), rejects with WrongLength: the object is not what the caller was told.
 */
export async function getRange(
  url: string,
  start: number,
  length: number,
  signal: AbortSignal,
  into?: Uint8Array,
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(length) || length < 1)
    throw new RangeError(`not a byte range: ${length} bytes at ${start}`);
  const buf = landing(length, into);
  const last = start + length - 1;
  return withRetries('download', signal, async () => {
    let status = 0;
    const out = await exchange<Uint8Array | string>(
      'GET',
      url,
      { range: `bytes=${start}-${last}` },
      undefined,
      signal,
      (res, x) => {
        status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) return readText(res, x);
        if (status === 206) {
          const span = contentRange(res.headers['content-range']);
          if (span && (span.first !== start || span.last !== last)) {
            res.destroy();
            return x.fail(
              new WrongLength(
                length,
                span.last - span.first + 1,
                false,
                `bytes ${span.first}-${span.last} instead of ${start}-${last}`,
              ),
            );
          }
        } else if (start !== 0) {
          // The whole object from its first byte: not the bytes asked for, whatever its length.
          res.destroy();
          const announced = res.headers['content-length'];
          return x.fail(
            new WrongLength(
              length,
              announced === undefined ? 0 : Number(announced),
              false,
              `a ${status} answer (the whole object) to a request for bytes ${start}-${last}`,
            ),
          );
        }
        receive(res, x, buf, length);
      },
    );
    if (typeof out !== 'string') return out;
    if (status === 416)
      throw new WrongLength(length, 0, false, `bytes ${start}-${last} are past the end of the object (416)`);
    throw refusedGet(url, status, out);
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
