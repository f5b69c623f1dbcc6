// The local edge, standing in for CloudFront: serves `<edge>/<cacheNodeId>/<object key>` from that cache node's
// bucket, streamed from S3, only for valid CloudFront-style signed URLs; GET and HEAD, single byte ranges.
import { createPublicKey } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { assertPortFree, describeListenError, LOOPBACK } from '../ports.ts';
import { type TrustedKey, verifySignedUrl } from './signature.ts';

export interface EdgeOptions {
  readonly port: number;
  readonly publicKeyPem: string;
  readonly keyPairId: string;
  readonly s3: {
    readonly endpoint: string;
    readonly region?: string;
    readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  };
  /** The bucket of a cache node, or undefined when the edge does not know it (404). */
  readonly resolveBucket: (cacheNodeId: string) => string | undefined;
  /** Keys served with `Cache-Control: immutable`; default: keys ending in a SHA-256 hex digest (chunks). */
  readonly isImmutableKey?: (key: string) => boolean;
  /** Clock in milliseconds, for tests. */
  readonly now?: () => number;
}

export interface Edge {
  readonly endpoint: string;
  readonly port: number;
  stop(): Promise<void>;
}

const WHAT = 'the local edge';
const IMMUTABLE = 'public, max-age=31536000, immutable';
const defaultImmutable = (key: string): boolean => /(?:^|\/)[0-9a-f]{64}(?:\.[A-Za-z0-9]+)?$/.test(key);

type ByteRange = { start: number; end: number } | { suffix: number };

/** One `bytes=` range, or undefined when the header is absent, malformed or asks for several (served whole). */
export function parseRange(header: string | undefined): ByteRange | undefined {
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, from = '', to = ''] = match;
  if (from === '') return to === '' ? undefined : { suffix: Number(to) };
  const start = Number(from);
  const end = to === '' ? Number.POSITIVE_INFINITY : Number(to);
  return end < start ? undefined : { start, end };
}

/** The satisfiable part of a range for an object of `size` bytes, or undefined (416). */
export function resolveRange(range: ByteRange, size: number): { start: number; end: number } | undefined {
  if ('suffix' in range) {
    return range.suffix === 0 || size === 0
      ? undefined
      : { start: Math.max(0, size - range.suffix), end: size - 1 };
  }
  return range.start >= size ? undefined : { start: range.start, end: Math.min(range.end, size - 1) };
}

function sendError(res: ServerResponse, status: number, code: string, message: string, head = false): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message.replace(/[<>&]/g, '')}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

interface ObjectMeta {
  ContentType?: string | undefined;
  ContentEncoding?: string | undefined;
  ETag?: string | undefined;
  LastModified?: Date | undefined;
  CacheControl?: string | undefined;
}

function objectHeaders(meta: ObjectMeta, immutable: boolean): Record<string, string> {
  const cacheControl = immutable ? IMMUTABLE : meta.CacheControl;
  return {
    'accept-ranges': 'bytes',
    ...(meta.ContentType ? { 'content-type': meta.ContentType } : {}),
    ...(meta.ContentEncoding ? { 'content-encoding': meta.ContentEncoding } : {}),
    ...(meta.ETag ? { etag: meta.ETag } : {}),
    ...(meta.LastModified ? { 'last-modified': meta.LastModified.toUTCString() } : {}),
    ...(cacheControl ? { 'cache-control': cacheControl } : {}),
  };
}

function s3Status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

export async function startEdge(options: EdgeOptions): Promise<Edge> {
  await assertPortFree(options.port, WHAT);
  const trusted: TrustedKey[] = [
    { keyPairId: options.keyPairId, publicKey: createPublicKey(options.publicKeyPem) },
  ];
  const isImmutable = options.isImmutableKey ?? defaultImmutable;
  const now = options.now ?? Date.now;
  const s3 = new S3Client({
    endpoint: options.s3.endpoint,
    region: options.s3.region ?? 'us-east-1',
    forcePathStyle: true,
    credentials: options.s3.credentials ?? { accessKeyId: 'local', secretAccessKey: 'local' },
    // A pipe, like CloudFront: digests are checked by the agents, not here.
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      sendError(res, 403, 'MethodNotAllowed', 'This distribution only allows GET and HEAD requests.');
      return;
    }
    const target = req.url ?? '/';
    const verdict = verifySignedUrl(
      {
        origin: `http://${req.headers.host ?? `${LOOPBACK}:${port}`}`,
        target,
        sourceIp: req.socket.remoteAddress ?? '',
        now: Math.floor(now() / 1000),
      },
      trusted,
    );
    if (!verdict.ok) return sendError(res, 403, 'AccessDenied', verdict.reason, head);

    const path = target.split('?', 1)[0] ?? '';
    const match = /^\/([^/]+)\/(.+)$/.exec(path);
    let cacheNodeId: string;
    let key: string;
    try {
      cacheNodeId = decodeURIComponent(match?.[1] ?? '');
      key = decodeURIComponent(match?.[2] ?? '');
    } catch {
      return sendError(res, 400, 'InvalidURI', 'The path is not valid percent-encoding.', head);
    }
    if (!match) return sendError(res, 404, 'NotFound', 'Expected /<cacheNodeId>/<key>.', head);
    const bucket = options.resolveBucket(cacheNodeId);
    if (bucket === undefined)
      return sendError(res, 404, 'NoSuchCacheNode', `Unknown cache node ${cacheNodeId}.`, head);

    const range = parseRange(req.headers.range);
    const ifNoneMatch = req.headers['if-none-match'];
    try {
      if (head || range !== undefined) {
        // Ranges are resolved here against the object's size, so suffix and open ranges behave as in S3.
        const meta = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        const size = meta.ContentLength ?? 0;
        const headers = objectHeaders(meta, isImmutable(key));
        if (ifNoneMatch !== undefined && ifNoneMatch === meta.ETag) {
          res.writeHead(304, headers);
          return void res.end();
        }
        const span = range === undefined ? undefined : resolveRange(range, size);
        if (range !== undefined && span === undefined) {
          res.setHeader('content-range', `bytes */${size}`);
          return sendError(res, 416, 'InvalidRange', 'The requested range is not satisfiable', head);
        }
        if (span !== undefined) headers['content-range'] = `bytes ${span.start}-${span.end}/${size}`;
        headers['content-length'] = String(span === undefined ? size : span.end - span.start + 1);
        if (head) {
          res.writeHead(span === undefined ? 200 : 206, headers);
          return void res.end();
        }
        const out = await s3.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            Range: `bytes=${span?.start}-${span?.end}`,
            IfMatch: meta.ETag,
          }),
        );
        res.writeHead(206, headers);
        await pipeline(out.Body as Readable, res);
        return;
      }
      const out = await s3.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(ifNoneMatch === undefined ? {} : { IfNoneMatch: ifNoneMatch }),
        }),
      );
      const headers = objectHeaders(out, isImmutable(key));
      headers['content-length'] = String(out.ContentLength ?? 0);
      res.writeHead(200, headers);
      await pipeline(out.Body as Readable, res);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const status = s3Status(err);
      if (status === 304) {
        res.writeHead(304, ifNoneMatch === undefined ? {} : { etag: String(ifNoneMatch) });
        return void res.end();
      }
      if (status === 404) return sendError(res, 404, 'NoSuchKey', 'The specified key does not exist.', head);
      // CloudFront passes the origin's refusal on: with origin access control and no s3:ListBucket in the bucket
      // policy, S3 answers a missing key with 403, and so does the edge (the viewer cannot tell the difference).
      if (status === 403) return sendError(res, 403, 'AccessDenied', 'Access Denied', head);
      if (status === 412)
        return sendError(res, 412, 'PreconditionFailed', 'The object changed during the request.', head);
      sendError(
        res,
        502,
        'BadGateway',
        `The origin failed: ${err instanceof Error ? err.message : String(err)}`,
        head,
      );
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(describeListenError(err, options.port, WHAT)));
    server.listen({ host: LOOPBACK, port: options.port, exclusive: true }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;

  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    port,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => s3.destroy());
      return stopping;
    },
  };
}
