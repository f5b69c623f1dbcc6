// Builds the S3 server inside the child process from fauxqs's own parts (pinned 2.4.1): file-based object
// storage, loopback-only listening, byte-ordered listings and checksum validation. If the internals cannot be
// loaded, falls back to fauxqs's public startFauxqs, which listens on 0.0.0.0 and cannot be extended.
import { join } from 'node:path';
import {
  Authorizer,
  type AuthPrincipal,
  type LocalNames,
  type SynthesizedPolicies,
} from '../iam/policies.ts';
import { Gate, s3Requests, sqsRequests } from '../iam/requests.ts';
import { checkUpload, presignedUrlExpired, s3ErrorXml } from './checksums.ts';

export interface S3AppOptions {
  readonly dataDir: string;
  readonly port: number;
  readonly host: string;
  readonly buckets: readonly string[];
  /** Testing aid: skip the internals and use the public startFauxqs. */
  readonly forceFallback?: boolean;
  /** IAM enforcement: every request is authorized against its signer's policy, as S3 and SQS do. */
  readonly iam?: { readonly policies: SynthesizedPolicies; readonly names: LocalNames };
}

export interface RunningS3App {
  readonly port: number;
  readonly bindsLoopbackOnly: boolean;
  readonly validatesChecksums: boolean;
  /** Why fauxqs's internals could not be used, in the fallback mode. */
  readonly fallbackReason?: string;
  close(): Promise<void>;
}

// The few shapes of fauxqs and Fastify we touch; fauxqs's internals are not in its package exports.
interface Headers extends Record<string, string | string[] | undefined> {}
interface Request {
  method: string;
  url: string;
  headers: Headers;
  query: unknown;
  params: unknown;
  body: unknown;
  /** Set by the IAM hook: who asked, for the 404-or-403 decision of onSend. */
  vmmigAuth?: { principal: AuthPrincipal; bucket: string; objectRead: boolean };
}
interface Reply {
  statusCode: number;
  code(status: number): Reply;
  header(name: string, value: string): Reply;
  send(payload: string): Reply;
}
interface App {
  addHook(
    name: 'onRequest' | 'preHandler',
    hook: (request: Request, reply: Reply) => Promise<Reply | undefined>,
  ): void;
  addHook(name: 'onSend', hook: (request: Request, reply: Reply, payload: unknown) => Promise<unknown>): void;
  addHook(name: 'onClose', hook: () => void): void;
  listen(options: { port: number; host: string }): Promise<string>;
  close(): Promise<void>;
}
interface StoredObject {
  key: string;
  contentLength?: number;
}
interface S3StoreLike {
  buckets: Map<string, Map<string, StoredObject>>;
  persistence: unknown;
  createBucket(name: string): void;
}
interface Persistence {
  loadS3(store: unknown): void;
  close(): void;
}
interface ListOptions {
  prefix?: string;
  delimiter?: string;
  maxKeys?: number;
  startAfter?: string;
  marker?: string;
}
type Ctor<T> = new (...args: never[]) => T;
interface FauxqsModule {
  buildApp(options: { logger: boolean; host: string; stores: Record<string, unknown> }): App;
  startFauxqs(options: Record<string, unknown>): Promise<{
    port: number;
    stop(): Promise<void>;
    createBucket(name: string): void;
  }>;
}

/** S3 lists keys in UTF-8 byte order; fauxqs sorts with localeCompare but pages with `<`, which skips keys. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function listInByteOrder(store: S3StoreLike, bucket: string, options: ListOptions, original: unknown) {
  const objects = store.buckets.get(bucket);
  if (!objects) return (original as (b: string, o: ListOptions) => unknown).call(store, bucket, options); // NoSuchBucket
  const prefix = options.prefix ?? '';
  const maxKeys = options.maxKeys ?? 1000;
  const after = options.startAfter ?? options.marker ?? '';
  const sorted = [...objects.values()]
    .filter((o) => o.key.startsWith(prefix))
    .sort((a, b) => byteOrder(a.key, b.key));
  const result: StoredObject[] = [];
  const prefixes = new Set<string>();
  let isTruncated = false;
  for (const obj of sorted) {
    if (after !== '' && byteOrder(obj.key, after) <= 0) continue;
    const cut = options.delimiter ? obj.key.indexOf(options.delimiter, prefix.length) : -1;
    const common =
      cut >= 0 && options.delimiter ? obj.key.slice(0, cut + options.delimiter.length) : undefined;
    if (common !== undefined && (prefixes.has(common) || (after !== '' && byteOrder(common, after) <= 0)))
      continue;
    if (result.length + prefixes.size >= maxKeys) {
      isTruncated = true;
      break;
    }
    if (common === undefined) result.push(obj);
    else prefixes.add(common);
  }
  return { objects: result, commonPrefixes: [...prefixes].sort(byteOrder), isTruncated };
}

async function loadInternals() {
  const appUrl = import.meta.resolve('fauxqs');
  const load = async <T>(path: string, name: string): Promise<T> => {
    const mod = (await import(new URL(path, appUrl).href)) as Record<string, unknown>;
    if (typeof mod[name] !== 'function') throw new Error(`fauxqs internals: ${name} not found in ${path}`);
    return mod[name] as T;
  };
  return {
    fauxqs: (await import('fauxqs')) as unknown as FauxqsModule,
    S3Store: await load<Ctor<S3StoreLike>>('./s3/s3Store.js', 'S3Store'),
    SqsStore: await load<Ctor<unknown>>('./sqs/sqsStore.js', 'SqsStore'),
    SnsStore: await load<Ctor<unknown>>('./sns/snsStore.js', 'SnsStore'),
    FileS3Persistence: await load<new (dir: string) => Persistence>(
      './s3/fileS3Persistence.js',
      'FileS3Persistence',
    ),
  };
}

async function startFallback(options: S3AppOptions, fallbackReason: string): Promise<RunningS3App> {
  const { startFauxqs } = (await import('fauxqs')) as unknown as FauxqsModule;
  const server = await startFauxqs({
    port: options.port,
    logger: false,
    s3StorageDir: join(options.dataDir, 's3'),
  });
  for (const bucket of options.buckets) server.createBucket(bucket);
  return {
    port: server.port,
    bindsLoopbackOnly: false,
    validatesChecksums: false,
    fallbackReason,
    close: () => server.stop(),
  };
}

export async function startS3App(options: S3AppOptions): Promise<RunningS3App> {
  let internals: Awaited<ReturnType<typeof loadInternals>>;
  try {
    if (options.forceFallback) throw new Error('fallback forced');
    internals = await loadInternals();
  } catch (err) {
    return startFallback(options, err instanceof Error ? err.message : String(err));
  }
  const { fauxqs, S3Store, SqsStore, SnsStore, FileS3Persistence } = internals;

  const s3Store = new S3Store();
  const originalList = Object.getPrototypeOf(s3Store).listObjects as unknown;
  Object.assign(s3Store, {
    listObjects: (bucket: string, listOptions: ListOptions = {}) =>
      listInByteOrder(s3Store, bucket, listOptions, originalList),
  });
  // As startFauxqs does: load persisted state first, then attach persistence so loading writes nothing.
  const persistence = new FileS3Persistence(join(options.dataDir, 's3'));
  persistence.loadS3(s3Store);
  s3Store.persistence = persistence;
  for (const bucket of options.buckets) s3Store.createBucket(bucket);

  const sqsStore = new SqsStore() as { host?: string };
  const app = fauxqs.buildApp({
    logger: false,
    host: options.host,
    stores: { s3Store, sqsStore, snsStore: new SnsStore() },
  });
  // Queue URLs from the request's Host (http://127.0.0.1:<port>/000000000000/<name>), which resolves here.
  sqsStore.host = '';
  app.addHook('onClose', () => persistence.close());
  if (options.iam) enforceIam(app, new Gate(new Authorizer(options.iam.policies, options.iam.names)));
  app.addHook('onRequest', async (request, reply) => {
    if (!presignedUrlExpired((request.query ?? {}) as Record<string, string | undefined>, Date.now()))
      return undefined;
    return reply
      .code(403)
      .header('content-type', 'application/xml')
      .send(s3ErrorXml('AccessDenied', 'Request has expired'));
  });
  app.addHook('preHandler', async (request) => {
    suffixRangeAsS3(s3Store, request);
    return undefined;
  });
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'PUT') return undefined;
    const params = (request.params ?? {}) as Record<string, string | undefined>;
    const query = (request.query ?? {}) as Record<string, string | undefined>;
    if (!params['*'] || request.headers['x-amz-copy-source'] !== undefined || 'renameObject' in query) {
      return undefined;
    }
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const check = checkUpload({ headers: request.headers, query, body });
    if (!check.ok) {
      const { bucket = '', '*': key = '' } = params;
      const resource = `/${bucket}/${key}`;
      return reply
        .code(check.status)
        .header('content-type', 'application/xml')
        .send(s3ErrorXml(check.code, check.message, resource));
    }
    request.body = check.body;
    Object.assign(request.headers, check.setHeaders);
    if (check.contentEncoding === undefined) delete request.headers['content-encoding'];
    else request.headers['content-encoding'] = check.contentEncoding;
    return undefined;
  });
  const address = await app.listen({ port: options.port, host: options.host });
  return {
    port: Number(new URL(address).port),
    bindsLoopbackOnly: true,
    validatesChecksums: true,
    close: () => app.close(),
  };
}

/**
 * A suffix range longer than the object (`bytes=-N`, N > size) selects the whole object, as S3 does (RFC 9110
 * §14.1.2: "the entire representation is used"): 206 with Content-Range `bytes 0-<size-1>/<size>`. fauxqs answers
 * 416; the request is rewritten to the range S3 would serve.
 */
function suffixRangeAsS3(store: S3StoreLike, request: Request): void {
  if (request.method !== 'GET') return;
  const range = request.headers['range'];
  const suffix = typeof range === 'string' ? /^bytes=-(\d+)$/.exec(range.trim())?.[1] : undefined;
  if (suffix === undefined) return;
  const params = (request.params ?? {}) as Record<string, string | undefined>;
  const size = store.buckets.get(params['bucket'] ?? '')?.get(params['*'] ?? '')?.contentLength;
  if (size !== undefined && size > 0 && Number(suffix) > size)
    request.headers['range'] = `bytes=0-${size - 1}`;
}

const SQS_TARGET = 'AmazonSQS.';

/**
 * IAM as S3 and SQS apply it: each request is authorized against its signer's identity policy and the bucket
 * policy (403 AccessDenied); and a GET or HEAD of a missing key answers 403, not 404, to a caller that may not
 * list the bucket (S3's HeadObject/GetObject "Permissions": without s3:ListBucket, 403 for a missing key).
 */
function enforceIam(app: App, gate: Gate): void {
  const queryOf = (request: Request) => (request.query ?? {}) as Record<string, string | undefined>;
  const denied = (reply: Reply, message: string, code = 'AccessDenied') =>
    reply.code(403).header('content-type', 'application/xml').send(s3ErrorXml(code, message));
  app.addHook('onRequest', async (request, reply) => {
    const target = request.headers['x-amz-target'];
    if (typeof target === 'string' && target.startsWith(SQS_TARGET)) return undefined; // after the body: preHandler
    const path = request.url.split('?')[0] ?? '/';
    const query = queryOf(request);
    const verdict = gate.check(request.headers, query, () =>
      s3Requests(request.method, path, query, request.headers),
    );
    if (!verdict.ok) return denied(reply, verdict.message, verdict.code);
    const [bucket = '', ...key] = decodeURIComponent(path.replace(/^\//, '')).split('/');
    request.vmmigAuth = {
      principal: verdict.principal,
      bucket,
      objectRead: (request.method === 'GET' || request.method === 'HEAD') && key.join('/') !== '',
    };
    return undefined;
  });
  app.addHook('preHandler', async (request, reply) => {
    const target = request.headers['x-amz-target'];
    if (typeof target !== 'string' || !target.startsWith(SQS_TARGET)) return undefined;
    const raw = request.body;
    let body: Record<string, unknown> = {};
    try {
      body = (Buffer.isBuffer(raw) ? JSON.parse(raw.toString('utf8')) : (raw ?? {})) as Record<
        string,
        unknown
      >;
    } catch {
      // Malformed: the SQS handler answers it.
    }
    const verdict = gate.check(request.headers, {}, (region) =>
      sqsRequests(target.slice(SQS_TARGET.length), body, region, gate.authorizer.account),
    );
    if (verdict.ok) return undefined;
    return reply
      .code(403)
      .header('content-type', 'application/x-amz-json-1.0')
      .send(
        JSON.stringify({
          __type: 'com.amazon.coral.service#AccessDeniedException',
          message: verdict.message,
        }),
      );
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const auth = request.vmmigAuth;
    if (!auth?.objectRead || reply.statusCode !== 404) return payload;
    const list = { action: 's3:ListBucket', resource: `arn:aws:s3:::${auth.bucket}` };
    if (gate.authorizer.allows(auth.principal, list)) return payload;
    reply.code(403);
    reply.header('content-type', 'application/xml');
    return request.method === 'HEAD' ? '' : s3ErrorXml('AccessDenied', 'Access Denied');
  });
}
