// The agent's chunk transfers against a real HTTP server started here: digests computed as the body streams in,
// retries on 5xx, resets and bodies cut off midway, bodies of the wrong length never passed off as the chunk,
// expired URLs and missing chunks reported as such, the stall timeout counting idle time only, the caller's abort,
// and connections reused through the keep-alive agent (over http and https). Range GETs (a chunk's bytes in a
// pack): exactly the bytes asked for, or WrongLength (another range, the whole object, a range past its end).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ATTEMPT_TIMEOUT_MS,
  ChunkNotFound,
  getChunk,
  getRange,
  httpsAgent,
  MAX_ATTEMPTS,
  putChunk,
  putObject,
  stall,
  UrlExpired,
  WrongLength,
} from '../../../cli/agent/transfer.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A server answering each request with the next scripted handler (then the default), counting connections. */
class TestServer {
  readonly script: Handler[] = [];
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }[] =
    [];
  connections = 0;
  url = '';
  constructor(
    readonly server: Server,
    public fallback: Handler,
  ) {
    server.on('connection', () => {
      this.connections++;
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const pieces: Buffer[] = [];
      req.on('data', (p: Buffer) => pieces.push(p));
      req.on('end', () => {
        const body = Buffer.concat(pieces);
        this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        (this.script.shift() ?? this.fallback)(req, res, body);
      });
      // A client that goes away mid-request (abort) must not crash the server.
      req.on('error', () => {});
    });
  }
  async listen(scheme: 'http' | 'https'): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `${scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const CHUNK = randomBytes(3 * 1024 * 1024 + 17);
const DIGEST = createHash('sha256').update(CHUNK).digest('hex');
const sendChunk: Handler = (_req, res) => {
  res.writeHead(200, { 'content-length': CHUNK.length });
  res.end(CHUNK);
};
const answer =
  (status: number, text = '') =>
  (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
/** Headers announcing the whole chunk, half the body, then the connection is destroyed. */
const cutOff: Handler = (_req, res) => {
  res.writeHead(200, { 'content-length': CHUNK.length });
  res.write(CHUNK.subarray(0, CHUNK.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
};
const signal = () => new AbortController().signal;
/** Serves CHUNK as an object, honouring a single `bytes=first-last` range as S3 and CloudFront do (206). */
const sendRange: Handler = (req, res) => {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) return sendChunk(req, res, Buffer.alloc(0));
  const first = Number(m[1]);
  if (first >= CHUNK.length) {
    res.writeHead(416, { 'content-range': `bytes */${CHUNK.length}`, 'content-length': 0 });
    return res.end();
  }
  const last = Math.min(Number(m[2]), CHUNK.length - 1);
  res.writeHead(206, {
    'content-range': `bytes ${first}-${last}/${CHUNK.length}`,
    'content-length': last - first + 1,
  });
  res.end(CHUNK.subarray(first, last + 1));
};

describe('chunk transfers over node:http', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await new TestServer(createHttpServer(), sendChunk).listen('http');
  });
  afterAll(() => s.close());
  beforeEach(() => {
    s.script.length = 0;
    s.requests.length = 0;
    s.fallback = sendChunk;
    stall.timeoutMs = ATTEMPT_TIMEOUT_MS;
  });

  describe('getChunk', () => {
    it('returns the bytes and their SHA-256, computed as they arrived', async () => {
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(out.sha256).toBe(DIGEST);
      expect(Buffer.from(out.bytes).equals(CHUNK)).toBe(true);
      expect(s.requests).toHaveLength(1);
    });

    it("writes into the caller's buffer when given one (reused from chunk to chunk)", async () => {
      const into = Buffer.alloc(CHUNK.length + 4096, 7);
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal(), into);
      expect(out.sha256).toBe(DIGEST);
      expect(out.bytes.length).toBe(CHUNK.length);
      expect(out.bytes.buffer).toBe(into.buffer);
      expect(into.subarray(0, CHUNK.length).equals(CHUNK)).toBe(true);
      expect(into[CHUNK.length]).toBe(7); // nothing written past the chunk
      await expect(getChunk(`${s.url}/c`, CHUNK.length, signal(), into.subarray(0, 10))).rejects.toThrow(
        RangeError,
      );
    });

    it('retries a 5xx, a 429 and a 408, then succeeds', async () => {
      s.script.push(answer(503, '<Error><Code>SlowDown</Code></Error>'), answer(429), answer(408));
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(out.sha256).toBe(DIGEST);
      expect(s.requests).toHaveLength(4);
    });

    it('retries a connection reset midway through the body, then succeeds', async () => {
      s.script.push(cutOff, (req) => req.socket.destroy());
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(out.sha256).toBe(DIGEST);
      expect(Buffer.from(out.bytes).equals(CHUNK)).toBe(true);
      expect(s.requests).toHaveLength(3);
    });

    it('retries a chunked body cut off before its last chunk', async () => {
      s.script.push((_req, res) => {
        res.writeHead(200); // no Content-Length: chunked
        res.write(CHUNK.subarray(0, 1000), () => setTimeout(() => res.socket?.destroy(), 20));
      });
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(out.sha256).toBe(DIGEST);
      expect(s.requests).toHaveLength(2);
    });

    it('gives up after MAX_ATTEMPTS with the last cause', async () => {
      s.fallback = answer(500, 'InternalError');
      await expect(getChunk(`${s.url}/c`, CHUNK.length, signal())).rejects.toThrow(
        `download: gave up after ${MAX_ATTEMPTS} attempts (GET returned 500)`,
      );
      expect(s.requests).toHaveLength(MAX_ATTEMPTS);
    }, 20_000);

    it('rejects a complete body shorter than the chunk as WrongLength, without retrying', async () => {
      s.script.push((_req, res) => {
        res.writeHead(200, { 'content-length': 100 });
        res.end(CHUNK.subarray(0, 100));
      });
      const err = await getChunk(`${s.url}/c`, CHUNK.length, signal()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WrongLength);
      expect(err).toMatchObject({ expected: CHUNK.length, actual: 100 });
      expect(s.requests).toHaveLength(1);
    });

    it('rejects a short chunked body (no Content-Length) as WrongLength', async () => {
      s.script.push((_req, res) => {
        res.writeHead(200);
        res.end(CHUNK.subarray(0, 5000));
      });
      const err = await getChunk(`${s.url}/c`, CHUNK.length, signal()).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'WrongLength', actual: 5000 });
    });

    it('rejects a body announced longer than the chunk without reading it', async () => {
      s.script.push((_req, res) => {
        res.writeHead(200, { 'content-length': CHUNK.length + 1 });
        res.end(Buffer.concat([CHUNK, Buffer.from([0])]));
      });
      const err = await getChunk(`${s.url}/c`, CHUNK.length, signal()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WrongLength);
      expect(err).toMatchObject({ actual: CHUNK.length + 1 });
    });

    it('stops reading a chunked body that runs past the chunk length', async () => {
      let written = 0;
      s.script.push((_req, res) => {
        res.writeHead(200); // chunked, and endless: the client must stop it
        const more = () => {
          if (res.destroyed || written > 64 * CHUNK.length) return;
          written += CHUNK.length;
          if (res.write(CHUNK)) setImmediate(more);
          else res.once('drain', more);
        };
        more();
      });
      const err = await getChunk(`${s.url}/c`, CHUNK.length, signal()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WrongLength);
      expect((err as WrongLength).atLeast).toBe(true);
      expect((err as Error).message).toBe(`a body of more than ${CHUNK.length} bytes, not ${CHUNK.length}`);
      expect(written).toBeLessThan(16 * CHUNK.length);
    });

    it('reports 403 as UrlExpired and 404 as ChunkNotFound, without retrying', async () => {
      s.script.push(answer(403, 'Access denied: expired'), answer(404, 'NoSuchKey'));
      await expect(getChunk(`${s.url}/c`, CHUNK.length, signal())).rejects.toBeInstanceOf(UrlExpired);
      await expect(getChunk(`${s.url}/c`, CHUNK.length, signal())).rejects.toBeInstanceOf(ChunkNotFound);
      expect(s.requests).toHaveLength(2);
    });

    it('tells a missing chunk (403 to an unexpired signed URL, as CloudFront answers) from an expired URL', async () => {
      const inAnHour = Math.floor(Date.now() / 1000) + 3600;
      const policy = (epoch: number) =>
        Buffer.from(
          JSON.stringify({
            Statement: [{ Resource: '*', Condition: { DateLessThan: { 'AWS:EpochTime': epoch } } }],
          }),
        )
          .toString('base64')
          .replace(/\+/g, '-')
          .replace(/=/g, '_')
          .replace(/\//g, '~');
      const denied = () =>
        answer(403, '<Error><Code>AccessDenied</Code><Message>Access denied</Message></Error>');
      s.script.push(denied(), denied(), denied(), denied());
      const get = (query: string) =>
        getChunk(`${s.url}/c?${query}&Signature=x&Key-Pair-Id=K`, CHUNK.length, signal());
      await expect(get(`Expires=${inAnHour}`)).rejects.toBeInstanceOf(ChunkNotFound);
      await expect(get(`Policy=${policy(inAnHour)}`)).rejects.toBeInstanceOf(ChunkNotFound);
      await expect(get(`Expires=${inAnHour - 3600 - 10}`)).rejects.toBeInstanceOf(UrlExpired);
      // About to expire: the request may have been judged after it did.
      await expect(get(`Expires=${inAnHour - 3600 + 30}`)).rejects.toBeInstanceOf(UrlExpired);
      expect(s.requests).toHaveLength(4);
    });

    it('fails at once on another 4xx, with the status and the body', async () => {
      s.script.push(answer(400, 'InvalidArgument: bad signature'));
      await expect(getChunk(`${s.url}/c`, CHUNK.length, signal())).rejects.toThrow(
        'GET returned 400: InvalidArgument: bad signature',
      );
      expect(s.requests).toHaveLength(1);
    });

    it('follows a redirect', async () => {
      s.script.push((_req, res) => {
        res.writeHead(307, { location: '/elsewhere' });
        res.end();
      });
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(out.sha256).toBe(DIGEST);
      expect(s.requests.map((r) => r.url)).toEqual(['/c', '/elsewhere']);
    });

    it('abandons an attempt that makes no progress for the stall timeout, and retries', async () => {
      stall.timeoutMs = 300;
      s.script.push((_req, res) => {
        res.writeHead(200, { 'content-length': CHUNK.length });
        res.write(CHUNK.subarray(0, 1000)); // then nothing
      });
      const t0 = Date.now();
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(out.sha256).toBe(DIGEST);
      expect(s.requests).toHaveLength(2);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    });

    it('lets a slow body that keeps moving take longer than the stall timeout', async () => {
      stall.timeoutMs = 1000;
      s.script.push((_req, res) => {
        res.writeHead(200, { 'content-length': CHUNK.length });
        const pieces = 30;
        const size = Math.ceil(CHUNK.length / pieces);
        let i = 0;
        const timer = setInterval(() => {
          res.write(CHUNK.subarray(i * size, (i + 1) * size));
          if (++i === pieces) {
            clearInterval(timer);
            res.end();
          }
        }, 60);
      });
      const t0 = Date.now();
      const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(out.sha256).toBe(DIGEST);
      expect(s.requests).toHaveLength(1);
      expect(Date.now() - t0).toBeGreaterThan(1500);
    });

    it("honours the caller's abort: the request is destroyed and the reason thrown", async () => {
      let closed = false;
      s.script.push((_req, res) => {
        res.on('close', () => {
          closed = true;
        });
        res.writeHead(200, { 'content-length': CHUNK.length });
        res.write(CHUNK.subarray(0, 1000));
      });
      const abort = new AbortController();
      const reason = new Error('agent stopping');
      setTimeout(() => abort.abort(reason), 100);
      await expect(getChunk(`${s.url}/c`, CHUNK.length, abort.signal)).rejects.toBe(reason);
      await expect.poll(() => closed).toBe(true);
      expect(s.requests).toHaveLength(1);
      // Already aborted: nothing is sent.
      await expect(getChunk(`${s.url}/c`, CHUNK.length, abort.signal)).rejects.toBe(reason);
      expect(s.requests).toHaveLength(1);
    });

    it('reuses one keep-alive connection for successive requests', async () => {
      const before = s.connections;
      for (let i = 0; i < 5; i++) await getChunk(`${s.url}/c${i}`, CHUNK.length, signal());
      // An error answer read to its end leaves the connection reusable too.
      s.script.push(answer(404, 'NoSuchKey'));
      await expect(getChunk(`${s.url}/gone`, CHUNK.length, signal())).rejects.toBeInstanceOf(ChunkNotFound);
      await getChunk(`${s.url}/c`, CHUNK.length, signal());
      expect(s.connections - before).toBeLessThanOrEqual(1);
    });
  });

  describe('getRange', () => {
    beforeEach(() => {
      s.fallback = sendRange;
    });

    it("asks for exactly the range and returns its bytes, into the caller's buffer when given one", async () => {
      const out = await getRange(`${s.url}/p`, 1000, 5000, signal());
      expect(s.requests[0]?.headers.range).toBe('bytes=1000-5999');
      expect(Buffer.from(out).equals(CHUNK.subarray(1000, 6000))).toBe(true);
      const into = Buffer.alloc(6000, 7);
      const again = await getRange(`${s.url}/p`, 10, 100, signal(), into);
      expect(again.buffer).toBe(into.buffer);
      expect(again.length).toBe(100);
      expect(into.subarray(0, 100).equals(CHUNK.subarray(10, 110))).toBe(true);
      expect(into[100]).toBe(7);
      await expect(getRange(`${s.url}/p`, 0, 100, signal(), into.subarray(0, 99))).rejects.toThrow(
        RangeError,
      );
      await expect(getRange(`${s.url}/p`, -1, 100, signal())).rejects.toThrow(RangeError);
      await expect(getRange(`${s.url}/p`, 0, 0, signal())).rejects.toThrow(RangeError);
    });

    it('retries a 5xx and a body cut off midway, then succeeds', async () => {
      s.script.push(answer(503, 'SlowDown'), (req, res) => {
        res.writeHead(206, { 'content-length': 2_000_000, 'content-range': 'bytes 0-1999999/*' });
        res.write(CHUNK.subarray(0, 1000), () => setTimeout(() => req.socket.destroy(), 20));
      });
      const out = await getRange(`${s.url}/p`, 0, 2_000_000, signal());
      expect(Buffer.from(out).equals(CHUNK.subarray(0, 2_000_000))).toBe(true);
      expect(s.requests).toHaveLength(3);
    });

    it('accepts a 200 (a server ignoring ranges) only when the range asked for is the whole object', async () => {
      s.script.push(sendChunk, sendChunk, sendChunk);
      const whole = await getRange(`${s.url}/p`, 0, CHUNK.length, signal());
      expect(Buffer.from(whole).equals(CHUNK)).toBe(true);
      // The whole object is not the first bytes of it, nor bytes further in: not read.
      const head = await getRange(`${s.url}/p`, 0, 1000, signal()).catch((e: unknown) => e);
      expect(head).toBeInstanceOf(WrongLength);
      const inner = await getRange(`${s.url}/p`, 1000, 1000, signal()).catch((e: unknown) => e);
      expect(inner).toBeInstanceOf(WrongLength);
      expect((inner as Error).message).toBe(
        'a 200 answer (the whole object) to a request for bytes 1000-1999',
      );
      expect(s.requests).toHaveLength(3);
    });

    it('rejects another range than the one asked for as WrongLength, without retrying', async () => {
      s.script.push((_req, res) => {
        res.writeHead(206, { 'content-range': `bytes 0-99/${CHUNK.length}`, 'content-length': 100 });
        res.end(CHUNK.subarray(0, 100));
      });
      const err = await getRange(`${s.url}/p`, 100, 100, signal()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WrongLength);
      expect((err as Error).message).toBe('bytes 0-99 instead of 100-199');
      expect(s.requests).toHaveLength(1);
    });

    it('rejects a range running past the end of the object (a shorter object, or a 416) as WrongLength', async () => {
      const tail = await getRange(`${s.url}/p`, CHUNK.length - 10, 20, signal()).catch((e: unknown) => e);
      // The server answers the bytes there are: bytes first-(size-1), announced as such.
      expect(tail).toBeInstanceOf(WrongLength);
      const past = await getRange(`${s.url}/p`, CHUNK.length + 5, 20, signal()).catch((e: unknown) => e);
      expect(past).toBeInstanceOf(WrongLength);
      expect((past as Error).message).toMatch(/past the end of the object \(416\)/);
      s.script.push((_req, res) => {
        res.writeHead(206); // no Content-Range, no Content-Length: only the body's length tells
        res.end(CHUNK.subarray(0, 50));
      });
      await expect(getRange(`${s.url}/p`, 0, 100, signal())).rejects.toMatchObject({
        name: 'WrongLength',
        actual: 50,
      });
      expect(s.requests).toHaveLength(3);
    });

    it('reports 404 as ChunkNotFound and 403 to an expired URL as UrlExpired, without retrying', async () => {
      s.script.push(answer(404, 'NoSuchKey'), answer(403, 'Access denied: expired'));
      await expect(getRange(`${s.url}/p`, 0, 10, signal())).rejects.toBeInstanceOf(ChunkNotFound);
      await expect(getRange(`${s.url}/p`, 0, 10, signal())).rejects.toBeInstanceOf(UrlExpired);
      expect(s.requests).toHaveLength(2);
    });
  });

  describe('putObject', () => {
    const headers = { 'x-amz-checksum-sha256': 'abc=', 'content-type': 'application/octet-stream' };

    it('sends the body as is, with Content-Length and the signed headers', async () => {
      s.fallback = answer(200);
      await putChunk(`${s.url}/up?sig=1`, headers, CHUNK, signal());
      const [req] = s.requests;
      expect(req?.method).toBe('PUT');
      expect(req?.url).toBe('/up?sig=1');
      expect(req?.headers['content-length']).toBe(String(CHUNK.length));
      expect(req?.headers['x-amz-checksum-sha256']).toBe('abc=');
      expect(req?.headers['transfer-encoding']).toBeUndefined();
      expect(req?.body.equals(CHUNK)).toBe(true);
    });

    it('sends a Uint8Array view at an offset (not a Buffer) as is', async () => {
      s.fallback = answer(200);
      const view = new Uint8Array(CHUNK.buffer, CHUNK.byteOffset + 10, 1000);
      await putObject('manifest upload', `${s.url}/m`, {}, view, signal());
      expect(s.requests[0]?.body.equals(CHUNK.subarray(10, 1010))).toBe(true);
    });

    it('retries 503 SlowDown, a reset and BadDigest, then succeeds; reuses the connection', async () => {
      s.fallback = answer(200);
      s.script.push(
        answer(503, '<Code>SlowDown</Code>'),
        (req) => req.socket.destroy(),
        answer(400, '<Code>BadDigest</Code>'),
      );
      const before = s.connections;
      await putChunk(`${s.url}/up`, headers, CHUNK, signal());
      expect(s.requests).toHaveLength(4);
      for (const r of s.requests) expect(r.body.equals(CHUNK)).toBe(true);
      // A new connection only after the reset.
      expect(s.connections - before).toBeLessThanOrEqual(2);
    });

    it('reports 403 "expired" as UrlExpired; another 403 or 4xx fails with the status and the body', async () => {
      s.script.push(
        answer(403, '<Message>Request has expired</Message>'),
        answer(403, 'SignatureDoesNotMatch'),
      );
      await expect(putChunk(`${s.url}/up`, headers, CHUNK, signal())).rejects.toBeInstanceOf(UrlExpired);
      await expect(putChunk(`${s.url}/up`, headers, CHUNK, signal())).rejects.toThrow(
        'PUT returned 403: SignatureDoesNotMatch',
      );
      expect(s.requests).toHaveLength(2);
    });

    it("honours the caller's abort while the server holds the answer back", async () => {
      s.script.push(() => {}); // never answers
      const abort = new AbortController();
      setTimeout(() => abort.abort(new Error('stop')), 100);
      await expect(putChunk(`${s.url}/up`, headers, CHUNK, abort.signal)).rejects.toThrow('stop');
    });
  });
});

describe('chunk transfers over node:https', () => {
  let s: TestServer | undefined;
  let dir = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'transfer-tls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
    } catch {
      return; // no openssl: the https case is skipped
    }
    const cert = readFileSync(join(dir, 'cert.pem'));
    s = await new TestServer(
      createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }),
      sendChunk,
    ).listen('https');
    // Trust the test's own certificate (the agent's options are merged into each connection's).
    httpsAgent.options.ca = cert;
  });
  afterEach(() => {
    if (s) s.requests.length = 0;
  });
  afterAll(async () => {
    delete httpsAgent.options.ca;
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('downloads and uploads over TLS, reusing the connection', async (ctx) => {
    if (!s) return ctx.skip();
    s.script.push(answer(502, 'Bad Gateway'));
    const out = await getChunk(`${s.url}/c`, CHUNK.length, signal());
    expect(out.sha256).toBe(DIGEST);
    s.script.push(answer(200));
    await putChunk(`${s.url}/up`, {}, CHUNK, signal());
    expect(s.requests.map((r) => r.method)).toEqual(['GET', 'GET', 'PUT']);
    expect(s.connections).toBe(1);
  });
});
