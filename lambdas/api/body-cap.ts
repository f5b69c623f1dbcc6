// The request body cap (MAX_BODY_BYTES). A streamed (chunked) body is counted as it is read. A body over the cap is
// read on, and dropped, up to DRAIN_BYTES before the 413 goes out: answering while the client is still sending
// makes the local server reset the connection, and the client would see that instead of the answer. (Hono's
// bodyLimit answers at once.) Beyond DRAIN_BYTES the answer goes out anyway.
import type { Context, MiddlewareHandler } from 'hono';

/** How much of an over-long body is read and dropped before answering anyway. */
const DRAIN_BYTES = 16 * 1024 * 1024;

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, budget: number): Promise<void> {
  for (let read = 0; read < budget; ) {
    const more = await reader.read();
    if (more.done) return;
    read += more.value.length;
  }
  await reader.cancel().catch(() => {});
}

export function bodyCap(maxSize: number, tooLarge: (c: Context) => Response): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    if (!raw.body) return next();
    const announced = raw.headers.get('content-length');
    if (announced !== null && !raw.headers.has('transfer-encoding')) {
      const length = Number(announced);
      if (length <= maxSize) return next();
      if (length <= DRAIN_BYTES) await drain(raw.body.getReader(), DRAIN_BYTES);
      return tooLarge(c);
    }
    const reader = raw.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxSize) {
        await drain(reader, DRAIN_BYTES - size);
        return tooLarge(c);
      }
      chunks.push(value);
    }
    const body = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      body.set(chunk, at);
      at += chunk.length;
    }
    c.req.raw = new Request(raw, { body });
    return next();
  };
}
