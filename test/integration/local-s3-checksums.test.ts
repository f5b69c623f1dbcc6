// Upload integrity on the local S3 server, against the real SDK and presigned URLs: a body that does not match
// its declared checksum (header, presigned query, signed header, aws-chunked trailer, Content-MD5) is refused.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../../local/ports.ts';
import { computeChecksum, decodeAwsChunked } from '../../local/s3/checksums.ts';
import { type S3Server, startS3Server } from '../../local/s3/server.ts';

const EU = 'cache-eu-west-1';
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

async function errorOf(promise: Promise<unknown>): Promise<S3ServiceException> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(S3ServiceException);
  return err as S3ServiceException;
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

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'vmmig-s3-checksums-'));
  server = await startS3Server({ dataDir, port: await findFreePort(), buckets: [EU] });
  s3 = client(server.endpoint);
});

afterAll(async () => {
  s3?.destroy();
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('checksum helpers', () => {
  it('computes the checksums S3 documents', () => {
    const data = Buffer.from('123456789');
    expect(computeChecksum('CRC32', data)).toBe(Buffer.from('cbf43926', 'hex').toString('base64'));
    expect(computeChecksum('CRC32C', data)).toBe(Buffer.from('e3069283', 'hex').toString('base64'));
    expect(computeChecksum('SHA256', data)).toBe(sha256(data));
  });

  it('decodes aws-chunked bodies with trailers and refuses truncated ones', () => {
    const framed = Buffer.from('5;chunk-signature=x\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n');
    expect(decodeAwsChunked(framed)).toEqual({
      body: Buffer.from('hello'),
      trailers: { 'x-amz-checksum-crc32': 'AAAAAA==' },
    });
    expect(decodeAwsChunked(Buffer.from('a\r\nhello\r\n0\r\n'))).toBeUndefined();
  });
});

describe('local S3 server: upload integrity', () => {
  it('rejects a PutObject whose body does not match ChecksumSHA256 with 400 BadDigest, storing nothing', async () => {
    const err = await errorOf(
      s3.send(
        new PutObjectCommand({
          Bucket: EU,
          Key: 'c/bad/1',
          Body: Buffer.from('corrupted'),
          ChecksumSHA256: sha256(Buffer.from('original')),
        }),
      ),
    );
    expect(err.name).toBe('BadDigest');
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(await exists(EU, 'c/bad/1')).toBe(false);
  });

  it('enforces the checksum carried in a presigned PUT URL', async () => {
    const body = randomBytes(1024);
    const url = await getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: EU, Key: 'c/pre/1', ChecksumSHA256: sha256(body) }),
      {
        expiresIn: 300,
      },
    );
    expect(new URL(url).searchParams.get('x-amz-checksum-sha256')).toBe(sha256(body));

    const corrupted = Buffer.from(body);
    corrupted[10] = (corrupted[10] ?? 0) ^ 0xff;
    const rejected = await fetch(url, { method: 'PUT', body: corrupted });
    expect(rejected.status).toBe(400);
    expect(await rejected.text()).toMatch(/<Code>BadDigest<\/Code>/);
    expect(await exists(EU, 'c/pre/1')).toBe(false);

    const accepted = await fetch(url, { method: 'PUT', body });
    expect(accepted.status).toBe(200);
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: EU, Key: 'c/pre/1', ChecksumMode: 'ENABLED' }),
    );
    expect(head.ChecksumSHA256).toBe(sha256(body));
  });

  it('enforces a checksum kept as a signed header of a presigned URL, and requires that header', async () => {
    const body = randomBytes(2048);
    const checksum = sha256(body);
    const url = await getSignedUrl(
      s3,
      new PutObjectCommand({
        Bucket: EU,
        Key: 'c/pre/2',
        ChecksumSHA256: checksum,
        ContentLength: body.length,
      }),
      { expiresIn: 300, unhoistableHeaders: new Set(['x-amz-checksum-sha256']) },
    );
    expect(new URL(url).searchParams.get('X-Amz-SignedHeaders')).toContain('x-amz-checksum-sha256');
    const put = (data: Buffer, headers: Record<string, string>) =>
      fetch(url, { method: 'PUT', body: data, headers });

    const missing = await put(body, {});
    expect(missing.status).toBe(403);
    expect(await missing.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    const corrupted = Buffer.from(body);
    corrupted[0] = (corrupted[0] ?? 0) ^ 1;
    expect((await put(corrupted, { 'x-amz-checksum-sha256': checksum })).status).toBe(400);
    expect(await exists(EU, 'c/pre/2')).toBe(false);
    expect((await put(body, { 'x-amz-checksum-sha256': checksum })).status).toBe(200);
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: EU, Key: 'c/pre/2', ChecksumMode: 'ENABLED' }),
    );
    expect(head.ChecksumSHA256).toBe(checksum);
  });

  it('refuses expired presigned URLs with 403 AccessDenied', async () => {
    await s3.send(new PutObjectCommand({ Bucket: EU, Key: 'c/old/1', Body: 'x' }));
    const signingDate = new Date(Date.now() - 3_600_000);
    const put = await getSignedUrl(s3, new PutObjectCommand({ Bucket: EU, Key: 'c/old/2' }), {
      expiresIn: 60,
      signingDate,
    });
    const expired = await fetch(put, { method: 'PUT', body: 'x' });
    expect(expired.status).toBe(403);
    expect(await expired.text()).toContain('<Message>Request has expired</Message>');
    const get = await getSignedUrl(s3, new GetObjectCommand({ Bucket: EU, Key: 'c/old/1' }), {
      expiresIn: 60,
      signingDate,
    });
    expect((await fetch(get)).status).toBe(403);
    const fresh = await getSignedUrl(s3, new GetObjectCommand({ Bucket: EU, Key: 'c/old/1' }), {
      expiresIn: 60,
    });
    expect((await fetch(fresh)).status).toBe(200);
  });

  it('rejects uploads to presigned URLs with the SDK default empty-body CRC32, unless WHEN_REQUIRED', async () => {
    // The presigner computes a CRC32 of the (absent) body and puts it in the URL, as real S3 would also reject.
    const defaultUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: EU, Key: 'c/crc/1' }), {
      expiresIn: 300,
    });
    expect(new URL(defaultUrl).searchParams.get('x-amz-checksum-crc32')).toBe('AAAAAA==');
    expect((await fetch(defaultUrl, { method: 'PUT', body: 'data' })).status).toBe(400);

    const presigner = client(server.endpoint, { requestChecksumCalculation: 'WHEN_REQUIRED' });
    const url = await getSignedUrl(presigner, new PutObjectCommand({ Bucket: EU, Key: 'c/crc/1' }), {
      expiresIn: 300,
    });
    presigner.destroy();
    expect(new URL(url).searchParams.has('x-amz-checksum-crc32')).toBe(false);
    expect((await fetch(url, { method: 'PUT', body: 'data' })).status).toBe(200);
  });

  it('checks SDK streaming uploads whose checksum travels in an aws-chunked trailer', async () => {
    const body = randomBytes(8 * 1024 * 1024);
    let encoding: unknown;
    const streaming = client(server.endpoint);
    streaming.middlewareStack.add(
      (next) => async (args) => {
        encoding = (args.request as { headers: Record<string, string> }).headers['content-encoding'];
        return next(args);
      },
      { step: 'deserialize', name: 'captureEncoding' },
    );
    await streaming.send(
      new PutObjectCommand({
        Bucket: EU,
        Key: 'c/stream/1',
        Body: Readable.from([body]),
        ContentLength: body.length,
        ChecksumAlgorithm: 'SHA256',
      }),
    );
    streaming.destroy();
    expect(encoding).toContain('aws-chunked');
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: EU, Key: 'c/stream/1', ChecksumMode: 'ENABLED' }),
    );
    expect(head.ChecksumSHA256).toBe(sha256(body));
    expect(head.ContentEncoding).toBeUndefined();
    expect(sha256(await getBytes(EU, 'c/stream/1'))).toBe(sha256(body));

    const data = Buffer.from('chunk bytes');
    const framed = `${data.length.toString(16)}\r\n${data}\r\n0\r\nx-amz-checksum-sha256:${sha256(Buffer.from('other'))}\r\n\r\n`;
    const rejected = await fetch(`${server.endpoint}/${EU}/c/stream/2`, {
      method: 'PUT',
      headers: {
        'content-encoding': 'aws-chunked',
        'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        'x-amz-decoded-content-length': String(data.length),
        'x-amz-trailer': 'x-amz-checksum-sha256',
      },
      body: framed,
    });
    expect(rejected.status).toBe(400);
    expect(await rejected.text()).toContain('<Code>BadDigest</Code>');
    expect(await exists(EU, 'c/stream/2')).toBe(false);
  });

  it('rejects an UploadPart with a mismatched checksum and a PutObject with a wrong Content-MD5', async () => {
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: EU, Key: 'c/mp/1', ChecksumAlgorithm: 'SHA256' }),
    );
    const part = await errorOf(
      s3.send(
        new UploadPartCommand({
          Bucket: EU,
          Key: 'c/mp/1',
          UploadId,
          PartNumber: 1,
          Body: Buffer.from('part'),
          ChecksumSHA256: sha256(Buffer.from('trap')),
        }),
      ),
    );
    expect(part.name).toBe('BadDigest');
    const md5 = await errorOf(
      s3.send(
        new PutObjectCommand({
          Bucket: EU,
          Key: 'c/md5/1',
          Body: Buffer.from('abc'),
          ContentMD5: createHash('md5').update('abd').digest('base64'),
        }),
      ),
    );
    expect(md5.name).toBe('BadDigest');
  });
});
