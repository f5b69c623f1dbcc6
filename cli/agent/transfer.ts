// Moving one chunk over HTTP: presigned PUT to the source cache node, signed GET from the edge. Transient
// failures (network, 5xx, SlowDown, a body cut off midway) are retried with exponential backoff; an expired URL
// asks the caller for a new one; a chunk the edge does not have is reported as such, for the caller to repair.
import { backoff } from '../client.ts';

export class UrlExpired extends Error {
  override readonly name = 'UrlExpired';
}

/** The edge answered 404: the cache node does not hold the chunk (lost, or deleted as corrupt). */
export class ChunkNotFound extends Error {
  override readonly name = 'ChunkNotFound';
}

export const MAX_ATTEMPTS = 6;
/** Backoff before retry n (0-based): BASE·2ⁿ, capped, times a random factor in [0.5, 1]. */
export const BACKOFF_BASE_MS = 200;
export const BACKOFF_CAP_MS = 5000;
/** One attempt that makes no progress for this long is abandoned and retried (a stalled connection). */
const ATTEMPT_TIMEOUT_MS = 120_000;
const retryable = (status: number) => status >= 500 || status === 429 || status === 408;

async function withRetries<T>(
  what: string,
  signal: AbortSignal,
  attempt: (signal: AbortSignal) => Promise<T | 'retry'>,
): Promise<T> {
  let lastError = '';
  for (let n = 0; n < MAX_ATTEMPTS; n++) {
    signal.throwIfAborted();
    try {
      const out = await attempt(AbortSignal.any([signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]));
      if (out !== 'retry') return out;
      lastError = 'server asked to retry';
    } catch (err) {
      if (err instanceof UrlExpired || err instanceof ChunkNotFound || signal.aborted) throw err;
      lastError = (err as Error).message;
      if ((err as { fatal?: boolean }).fatal) throw err;
    }
    if (n + 1 < MAX_ATTEMPTS) await backoff(n, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
  }
  throw new Error(`${what}: gave up after ${MAX_ATTEMPTS} attempts (${lastError})`);
}

/** A presigned PUT (a chunk, or the manifest) with the headers it was signed with. */
export async function putObject(
  what: string,
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  await withRetries(what, signal, async (attemptSignal) => {
    const res = await fetch(url, { method: 'PUT', headers, body, signal: attemptSignal });
    const text = await res.text();
    if (res.ok) return true;
    if (res.status === 403 && /expired/i.test(text)) throw new UrlExpired(text);
    // BadDigest: the bytes changed on the way; sending them again is the cure.
    if (retryable(res.status) || /BadDigest/.test(text)) return 'retry';
    throw Object.assign(new Error(`PUT returned ${res.status}: ${text.slice(0, 300)}`), { fatal: true });
  });
}

export const putChunk = (
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  signal: AbortSignal,
): Promise<void> => putObject('upload', url, headers, body, signal);

export async function getChunk(url: string, signal: AbortSignal): Promise<Uint8Array> {
  return withRetries('download', signal, async (attemptSignal) => {
    const res = await fetch(url, { signal: attemptSignal });
    // A body cut off midway rejects here, and is retried like any network failure.
    if (res.ok) return new Uint8Array(await res.arrayBuffer());
    const text = await res.text();
    if (res.status === 403) throw new UrlExpired(text);
    if (res.status === 404) throw new ChunkNotFound(text.slice(0, 300));
    if (retryable(res.status)) return 'retry';
    throw Object.assign(new Error(`GET returned ${res.status}: ${text.slice(0, 300)}`), { fatal: true });
  });
}
