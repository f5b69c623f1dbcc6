// The local S3 server (fauxqs in a child process) against the real SDK: checksums stored, copies between cache
// node buckets, listings, 8 MiB chunks, persistence across restarts, loopback only. Upload integrity checks are in
// local-s3-checksums.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CopyObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFreePort, PortInUseError } from '../../local/ports.ts';
import { type S3Server, startS3Server } from '../../local/s3/server.ts';

const EU = 'cache-eu-west-1';
const US = 'cache-us-east-1';
let dataDir: string;
let server: S3Server;
let s3: S3Client;

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('base64');

function client(endpoint: string, extra: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    ...extra,
  });
}

async function exists(bucket: string, key: string): Promise<boolean> {
  return s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
    () => true,
    (e: S3ServiceException) => (e.$metadata.httpStatusCode === 404 ? false : Promise.reject(e)),
  );
}

async function getBytes(bucket: string, key: string): Promise<Buffer> {
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from((await Body?.transformToByteArray()) ?? []);
}

function nonLoopbackIpv4(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function connectOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'vmmig-s3-'));
  server = await startS3Server({ dataDir, port: await findFreePort(), buckets: [EU, US] });
  s3 = client(server.endpoint);
});

afterAll(async () => {
  s3?.destroy();
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('local S3 server', () => {
  it('listens on loopback only, in a child process', async () => {
    expect(server.bindsLoopbackOnly).toBe(true);
    expect(server.validatesChecksums).toBe(true);
    expect(server.pid).not.toBe(process.pid);
    expect(await connectOutcome('127.0.0.1', server.port)).toBe('connected');
    const other = nonLoopbackIpv4();
    if (other !== undefined) expect(await connectOutcome(other, server.port)).toBe('ECONNREFUSED');
  });

  it('names the port and the component when the port is taken', async () => {
    const attempt = startS3Server({ dataDir: join(dataDir, 'other'), port: server.port, buckets: [] });
    await expect(attempt).rejects.toBeInstanceOf(PortInUseError);
    await expect(attempt).rejects.toThrow(`port ${server.port}`);
  });

  it('stores ChecksumSHA256 and returns it from HeadObject with ChecksumMode ENABLED', async () => {
    const body = randomBytes(4096);
    const put = await s3.send(
      new PutObjectCommand({ Bucket: EU, Key: 'c/ab/1', Body: body, ChecksumSHA256: sha256(body) }),
    );
    expect(put.ChecksumSHA256).toBe(sha256(body));
    const head = await s3.send(new HeadObjectCommand({ Bucket: EU, Key: 'c/ab/1', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumSHA256).toBe(sha256(body));
    expect(head.ContentLength).toBe(4096);
    expect(await getBytes(EU, 'c/ab/1')).toEqual(body);
  });

  it('copies between cache node buckets and keeps the SHA-256 checksum', async () => {
    const body = randomBytes(2048);
    await s3.send(
      new PutObjectCommand({ Bucket: EU, Key: 'c/cp/1', Body: body, ChecksumSHA256: sha256(body) }),
    );
    await s3.send(new CopyObjectCommand({ Bucket: US, Key: 'c/cp/1', CopySource: `${EU}/c/cp/1` }));
    const head = await s3.send(new HeadObjectCommand({ Bucket: US, Key: 'c/cp/1', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumSHA256).toBe(sha256(body));
    expect(await getBytes(US, 'c/cp/1')).toEqual(body);
  });

  it('serves byte ranges as S3 does, a suffix longer than the object selecting all of it', async () => {
    const body = randomBytes(1000);
    await s3.send(new PutObjectCommand({ Bucket: EU, Key: 'c/range/1', Body: body }));
    const get = async (range: string) => {
      const out = await s3.send(new GetObjectCommand({ Bucket: EU, Key: 'c/range/1', Range: range }));
      return { bytes: Buffer.from((await out.Body?.transformToByteArray()) ?? []), range: out.ContentRange };
    };
    expect(await get('bytes=10-19')).toEqual({ bytes: body.subarray(10, 20), range: 'bytes 10-19/1000' });
    expect(await get('bytes=-100')).toEqual({ bytes: body.subarray(900), range: 'bytes 900-999/1000' });
    // RFC 9110 §14.1.2: a suffix longer than the representation selects all of it (206, not 416).
    expect(await get('bytes=-65536')).toEqual({ bytes: body, range: 'bytes 0-999/1000' });
    const past = s3.send(new GetObjectCommand({ Bucket: EU, Key: 'c/range/1', Range: 'bytes=1000-1010' }));
    await expect(past).rejects.toMatchObject({ $metadata: { httpStatusCode: 416 } });
  });

  it('pages ListObjectsV2 in byte order without skipping or repeating keys', async () => {
    const keys = ['l/a', 'l/B', 'l/b', 'l/a-1', 'l/a_1', 'l/a.1', 'l/Z', 'l/0', 'l/9/x', 'l/9/y'];
    for (let i = 0; i < 15; i++) keys.push(`l/${i.toString(16).padStart(2, '0')}/${'f'.repeat(8)}`);
    for (const Key of keys) await s3.send(new PutObjectCommand({ Bucket: US, Key, Body: Key }));
    const seen: string[] = [];
    let ContinuationToken: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: US, Prefix: 'l/', MaxKeys: 4, ContinuationToken }),
      );
      seen.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
      ContinuationToken = page.NextContinuationToken;
      pages++;
    } while (ContinuationToken);
    expect(pages).toBe(Math.ceil(keys.length / 4));
    expect(seen).toEqual([...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));

    const grouped = await s3.send(new ListObjectsV2Command({ Bucket: US, Prefix: 'l/9', Delimiter: '/' }));
    expect(grouped.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['l/9/']);
  });

  it('keeps buckets and objects across a restart on the same data directory', async () => {
    const body = randomBytes(8 * 1024 * 1024);
    await s3.send(
      new PutObjectCommand({ Bucket: US, Key: 'c/big/1', Body: body, ChecksumSHA256: sha256(body) }),
    );
    const port = server.port;
    const pid = server.pid;
    s3.destroy();
    await server.stop();
    await server.stop(); // idempotent
    expect(() => process.kill(pid, 0)).toThrow();

    server = await startS3Server({ dataDir, port, buckets: [EU, US, 'cache-ap-south-1'] });
    s3 = client(server.endpoint);
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: US, Key: 'c/big/1', ChecksumMode: 'ENABLED' }),
    );
    expect(head.ChecksumSHA256).toBe(sha256(body));
    expect(head.ContentLength).toBe(body.length);
    expect(sha256(await getBytes(US, 'c/big/1'))).toBe(sha256(body));
    expect(await exists(EU, 'c/ab/1')).toBe(true);
    await s3.send(new PutObjectCommand({ Bucket: 'cache-ap-south-1', Key: 'k', Body: 'x' }));
  });
});

describe('fallback to fauxqs startFauxqs', () => {
  it('still serves persisted objects but reports that it binds every interface and skips checksums', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmmig-s3-fallback-'));
    const fallback = await startS3Server({ dataDir: dir, port: 0, buckets: [EU], forceFallback: true });
    const c = client(fallback.endpoint);
    try {
      expect(fallback.bindsLoopbackOnly).toBe(false);
      expect(fallback.validatesChecksums).toBe(false);
      expect(fallback.fallbackReason).toBe('fallback forced');
      await c.send(new PutObjectCommand({ Bucket: EU, Key: 'k', Body: 'v' }));
      expect((await c.send(new HeadObjectCommand({ Bucket: EU, Key: 'k' }))).ContentLength).toBe(1);
    } finally {
      c.destroy();
      await fallback.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
