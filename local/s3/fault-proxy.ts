// A fault-injecting proxy in front of the local S3 server, for the storage-fault suites: it fails a share of
// requests the way S3 does under stress (500 InternalError, 503 SlowDown, reset connections, slow answers) and
// records every request (method, bucket, key, time, fault, status), so tests can count what was sent and prove
// that clients back off.
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { describeListenError, LOOPBACK } from '../ports.ts';
import { s3ErrorXml } from './checksums.ts';

/**
 * - `InternalError`: 500 with S3's XML error body; the request never reaches storage.
 * - `SlowDown`: 503 with S3's XML error body (S3's "reduce your request rate").
 * - `reset`: the connection is destroyed before the request is forwarded.
 * - `reset-after`: the request is carried out, then the connection is destroyed mid-answer (a PUT that is stored
 *   but whose answer is lost; a GET whose body stops half-way).
 * - `slow`: the request is forwarded after a delay.
 */
export type FaultKind = 'InternalError' | 'SlowDown' | 'reset' | 'reset-after' | 'slow';
export const FAULT_KINDS: readonly FaultKind[] = [
  'InternalError',
  'SlowDown',
  'reset',
  'reset-after',
  'slow',
];

export interface FaultProxyOptions {
  /** The S3 server, e.g. http://127.0.0.1:7703. */
  readonly upstream: string;
  /** 0 (the default) picks a free port. */
  readonly port?: number;
  /** Share of requests that get a fault, 0…1 (default 0.1). */
  readonly faultRate?: number;
  /** The faults to choose from, uniformly (default all). */
  readonly faults?: readonly FaultKind[];
  /** Delay of a `slow` answer in milliseconds, chosen uniformly in [min, max] (default 200…1500). */
  readonly slowMs?: readonly [number, number];
  /** Seed of the fault choices, so a failing run can be replayed (default: random, see `seed`). */
  readonly seed?: number;
  /** Which requests may get random faults (default all). Scripted faults (`failNext`) ignore it. */
  readonly eligible?: (request: RequestInfo) => boolean;
}

export interface RequestInfo {
  readonly method: string;
  readonly bucket: string;
  /** The object key, '' for bucket-level requests. */
  readonly key: string;
  /** A server-side copy (PUT with x-amz-copy-source). */
  readonly copy: boolean;
}

export interface ProxyRecord extends RequestInfo {
  /** Date.now() when the request arrived. */
  readonly at: number;
  readonly fault: FaultKind | undefined;
  /** The status the client saw; undefined when the connection was reset. */
  status: number | undefined;
  /** The whole answer was handed to the client's connection. */
  completed: boolean;
}

export interface FaultProxy {
  readonly endpoint: string;
  readonly port: number;
  readonly seed: number;
  /** Every request so far, in arrival order. */
  readonly records: readonly ProxyRecord[];
  setFaultRate(rate: number): void;
  /** Fails the next `times` requests that match with `fault` (default SlowDown), whatever the fault rate. */
  failNext(match: (request: RequestInfo) => boolean, times: number, fault?: FaultKind): void;
  /** Called with each record once its answer has ended (completed or not); returns an unsubscribe function. */
  onSettled(listener: (record: ProxyRecord) => void): () => void;
  stop(): Promise<void>;
}

/** mulberry32: small, fast, seedable (numbers in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Path-style `/bucket/key…` (the local cloud always uses path style). */
export function requestInfo(req: Pick<IncomingMessage, 'method' | 'url' | 'headers'>): RequestInfo {
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
  const [, bucket = '', ...rest] = path.split('/');
  let key = rest.join('/');
  try {
    key = decodeURIComponent(key);
  } catch {
    // left encoded
  }
  return {
    method: req.method ?? 'GET',
    bucket,
    key,
    copy: req.headers['x-amz-copy-source'] !== undefined,
  };
}

const drain = (req: IncomingMessage) =>
  new Promise<void>((resolve) => {
    if (req.readableEnded) return resolve();
    req.on('end', resolve);
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    req.resume();
  });

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(options.upstream);
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = prng(seed);
  const faults = options.faults ?? FAULT_KINDS;
  const [slowMin, slowMax] = options.slowMs ?? [200, 1500];
  let faultRate = options.faultRate ?? 0.1;
  const scripted: { match: (r: RequestInfo) => boolean; left: number; fault: FaultKind }[] = [];
  const records: ProxyRecord[] = [];
  const listeners = new Set<(record: ProxyRecord) => void>();
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });

  const chooseFault = (info: RequestInfo): FaultKind | undefined => {
    const script = scripted.find((s) => s.left > 0 && s.match(info));
    if (script) {
      script.left--;
      return script.fault;
    }
    if (options.eligible && !options.eligible(info)) return undefined;
    if (faults.length === 0 || random() >= faultRate) return undefined;
    return faults[Math.floor(random() * faults.length)];
  };

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const info = requestInfo(req);
    const fault = chooseFault(info);
    const record: ProxyRecord = { ...info, at: Date.now(), fault, status: undefined, completed: false };
    records.push(record);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      for (const listener of listeners) listener(record);
    };
    res.on('finish', () => {
      record.completed = true;
      settle();
    });
    res.on('close', settle);
    const reset = () => {
      record.status = undefined;
      req.socket.destroy();
      settle();
    };

    if (fault === 'reset') {
      reset();
      return;
    }
    if (fault === 'InternalError' || fault === 'SlowDown') {
      void drain(req).then(() => {
        const [status, message] =
          fault === 'SlowDown'
            ? [503, 'Please reduce your request rate.']
            : [500, 'We encountered an internal error. Please try again.'];
        const body = s3ErrorXml(fault, message, `/${info.bucket}/${info.key}`);
        record.status = status;
        res.writeHead(status, {
          'content-type': 'application/xml',
          'content-length': Buffer.byteLength(body),
          'x-amz-request-id': 'FAULTPROXY',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    const forward = () => {
      const out = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent,
        },
        (answer) => {
          record.status = answer.statusCode;
          if (fault === 'reset-after') {
            // Stored (or read), but the client never learns: half the body at most, then the line drops.
            const length = Number(answer.headers['content-length'] ?? 0);
            if (req.method === 'HEAD' || !(length > 1)) {
              answer.resume();
              reset();
              return;
            }
            res.writeHead(answer.statusCode ?? 500, answer.headers);
            let sent = 0;
            answer.on('data', (piece: Buffer) => {
              if (sent >= length / 2) return;
              const part = piece.subarray(0, Math.max(0, Math.ceil(length / 2) - sent));
              sent += part.length;
              if (sent < length / 2) res.write(part);
              else {
                answer.destroy();
                // Headers and half the body reach the client before the line drops.
                res.write(part, () => setTimeout(reset, 20));
              }
            });
            return;
          }
          res.writeHead(answer.statusCode ?? 500, answer.headers);
          answer.pipe(res);
          answer.on('error', reset);
        },
      );
      out.on('error', () => {
        // The S3 server went away (a restart): the client sees a dropped connection, as from S3.
        if (!res.headersSent) reset();
        else res.destroy();
      });
      req.pipe(out);
      req.on('error', () => out.destroy());
      // The client hung up (an agent killed mid-transfer): let go of the S3 side too.
      res.on('close', () => {
        if (!record.completed) out.destroy();
      });
    };
    if (fault === 'slow') setTimeout(forward, slowMin + random() * (slowMax - slowMin));
    else forward();
  }

  const server = createServer(handle);
  server.keepAliveTimeout = 5000;
  const requested = options.port ?? 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(describeListenError(err, requested, 'the S3 fault proxy')));
    server.listen({ host: LOOPBACK, port: requested, exclusive: true }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : requested;

  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    port,
    seed,
    records,
    setFaultRate(rate) {
      faultRate = rate;
    },
    failNext(match, times, fault = 'SlowDown') {
      scripted.push({ match, left: times, fault });
    },
    onSettled(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => agent.destroy());
      return stopping;
    },
  };
}
