// Moving one chunk over HTTP: presigned PUT to the source cache node, signed GET from the edge. Transient
// failures (network, 5xx, SlowDown) are retried with backoff; an expired URL asks the caller for a new one.
import { backoff } from '../client.ts';

export class UrlExpired extends Error {
  override readonly name = 'UrlExpired';
}

const MAX_ATTEMPTS = 6;
const retryable = (status: number) => status >= 500 || status === 429 || status === 408;

async function withRetries<T>(
  what: string,
  signal: AbortSignal,
  attempt: (n: number) => Promise<T | 'retry'>,
): Promise<T> {
  let lastError = '';
  for (let n = 0; n < MAX_ATTEMPTS; n++) {
    signal.throwIfAborted();
    try {
      const out = await attempt(n);
      if (out !== 'retry') return out;
      lastError = 'server asked to retry';
    } catch (err) {
      if (err instanceof UrlExpired || signal.aborted) throw err;
      lastError = (err as Error).message;
      if ((err as { fatal?: boolean }).fatal) throw err;
    }
    await backoff(n, 200, 5000);
  }
  throw new Error(`${what}: gave up after ${MAX_ATTEMPTS} attempts (${lastError})`);
}

export async function putChunk(
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  await withRetries('upload', signal, async () => {
    const res = await fetch(url, { method: 'PUT', headers, body, signal });
    const text = await res.text();
    if (res.ok) return true;
    if (res.status === 403 && /expired/i.test(text)) throw new UrlExpired(text);
    // BadDigest: the bytes changed on the way; sending them again is the cure.
    if (retryable(res.status) || /BadDigest/.test(text)) return 'retry';
    throw Object.assign(new Error(`PUT returned ${res.status}: ${text.slice(0, 300)}`), { fatal: true });
  });
}

export async function getChunk(url: string, signal: AbortSignal): Promise<Uint8Array> {
  return withRetries('download', signal, async () => {
    const res = await fetch(url, { signal });
    if (res.ok) return new Uint8Array(await res.arrayBuffer());
    const text = await res.text();
    if (res.status === 403) throw new UrlExpired(text);
    if (retryable(res.status)) return 'retry';
    throw Object.assign(new Error(`GET returned ${res.status}: ${text.slice(0, 300)}`), { fatal: true });
  });
}
