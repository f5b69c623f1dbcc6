// The local edge against the real S3 server and URLs signed by @aws-sdk/cloudfront-signer: what it serves, what it
// refuses (as CloudFront would), byte ranges and cache headers.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/cloudfront-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEdgeKeyPair, generateKeyPairId } from '../../local/edge/keys.ts';
import { type Edge, parseRange, resolveRange, startEdge } from '../../local/edge/server.ts';
import { decodeCloudFrontBase64, resourceMatches } from '../../local/edge/signature.ts';
import { findFreePort, PortInUseError } from '../../local/ports.ts';
import { type S3Server, startS3Server } from '../../local/s3/server.ts';

const keys = generateEdgeKeyPair();
const keyPairId = generateKeyPairId();
const BUCKETS = { eu: 'cache-eu-west-1', us: 'cache-us-east-1' } as const;
const bucketOf = (id: string): string | undefined => (BUCKETS as Record<string, string>)[id];
const chunk = randomBytes(1024 * 1024 + 17);
const chunkKey = `chunks/ab/${createHash('sha256').update(chunk).digest('hex')}`;
const big = randomBytes(8 * 1024 * 1024);
const bigKey = `chunks/cd/${createHash('sha256').update(big).digest('hex')}`;
const oddKey = 'manifests/a b+c/é.json';

let dataDir: string;
let s3Server: S3Server;
let edge: Edge;
let clock: number | undefined;

const hour = () => new Date(Date.now() + 3_600_000);
const sign = (path: string, extra: Partial<Parameters<typeof getSignedUrl>[0]> = {}): string =>
  getSignedUrl({
    url: `${edge.endpoint}${path}`,
    keyPairId,
    privateKey: keys.privateKeyPem,
    dateLessThan: hour(),
    ...extra,
  } as Parameters<typeof getSignedUrl>[0]);
const policyUrl = (path: string, policy: object, privateKey = keys.privateKeyPem): string =>
  getSignedUrl({ url: `${edge.endpoint}${path}`, keyPairId, privateKey, policy: JSON.stringify(policy) });
const epoch = (offsetSeconds: number): number => Math.floor(Date.now() / 1000) + offsetSeconds;
const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function reason(response: Response): Promise<string> {
  return /<Message>(.*)<\/Message>/.exec(await response.text())?.[1] ?? '';
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'vmmig-edge-'));
  s3Server = await startS3Server({ dataDir, port: await findFreePort(), buckets: Object.values(BUCKETS) });
  const s3 = new S3Client({
    endpoint: s3Server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  await s3.send(new PutObjectCommand({ Bucket: BUCKETS.eu, Key: chunkKey, Body: chunk }));
  await s3.send(new PutObjectCommand({ Bucket: BUCKETS.eu, Key: bigKey, Body: big }));
  await s3.send(
    new PutObjectCommand({ Bucket: BUCKETS.eu, Key: oddKey, Body: '{}', ContentType: 'application/json' }),
  );
  s3.destroy();
  edge = await startEdge({
    port: await findFreePort(),
    publicKeyPem: keys.publicKeyPem,
    keyPairId,
    s3: { endpoint: s3Server.endpoint },
    resolveBucket: bucketOf,
    now: () => clock ?? Date.now(),
  });
});

afterAll(async () => {
  await edge?.stop();
  await s3Server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('helpers', () => {
  it('parses single byte ranges and resolves them like S3', () => {
    expect(parseRange('bytes=0-9')).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=5-')).toEqual({ start: 5, end: Number.POSITIVE_INFINITY });
    expect(parseRange('bytes=-3')).toEqual({ suffix: 3 });
    for (const ignored of [undefined, 'bytes=0-1,4-5', 'items=0-1', 'bytes=9-2', 'bytes=-']) {
      expect(parseRange(ignored)).toBeUndefined();
    }
    expect(resolveRange({ suffix: 50 }, 10)).toEqual({ start: 0, end: 9 });
    expect(resolveRange({ start: 3, end: 99 }, 10)).toEqual({ start: 3, end: 9 });
    expect(resolveRange({ start: 10, end: 12 }, 10)).toBeUndefined();
    expect(resolveRange({ suffix: 0 }, 10)).toBeUndefined();
  });

  it('matches CloudFront resource wildcards and decodes its base64', () => {
    expect(resourceMatches('http://e/eu/*', 'http://e/eu/chunks/x')).toBe(true);
    expect(resourceMatches('http://e/eu/*', 'http://e/us/chunks/x')).toBe(false);
    expect(resourceMatches('http*://e/eu/a?c', 'https://e/eu/abc')).toBe(true);
    expect(resourceMatches('http://e/eu/a.c', 'http://e/eu/abc')).toBe(false);
    expect(decodeCloudFrontBase64('-_~_').toString('base64')).toBe(
      Buffer.from('+=/=', 'base64').toString('base64'),
    );
  });
});

describe('local edge', () => {
  it('serves a chunk for a canned-policy URL, streamed with CloudFront-like headers', async () => {
    const response = await fetch(sign(`/eu/${chunkKey}`));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(chunk.length));
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('etag')).toBe(`"${createHash('md5').update(chunk).digest('hex')}"`);
    expect(response.headers.get('cache-control')).toContain('immutable');
    expect(sha(new Uint8Array(await response.arrayBuffer()))).toBe(sha(chunk));

    const large = await fetch(sign(`/eu/${bigKey}`, { algorithm: 'SHA256' }));
    expect(large.status).toBe(200);
    expect(sha(new Uint8Array(await large.arrayBuffer()))).toBe(sha(big));
  });

  it('answers HEAD with the headers only, and serves non-chunk keys without immutable', async () => {
    const head = await fetch(sign(`/eu/${chunkKey}`), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(chunk.length));
    expect((await head.arrayBuffer()).byteLength).toBe(0);

    const odd = await fetch(sign(`/eu/${oddKey}`));
    expect(odd.status).toBe(200);
    expect(await odd.text()).toBe('{}');
    expect(odd.headers.get('content-type')).toBe('application/json');
    expect(odd.headers.get('cache-control')).toBeNull();
  });

  it('serves byte ranges: 206 with Content-Range, 416 when unsatisfiable, whole object for multi-ranges', async () => {
    const url = sign(`/eu/${chunkKey}`);
    const size = chunk.length;
    const cases: [string, number, number][] = [
      ['bytes=0-99', 0, 99],
      ['bytes=1048570-', 1048570, size - 1],
      ['bytes=-10', size - 10, size - 1],
      [`bytes=-${size + 5}`, 0, size - 1],
      [`bytes=100-${size + 1000}`, 100, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const response = await fetch(url, { headers: { range } });
      expect(response.status, range).toBe(206);
      expect(response.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
      expect(response.headers.get('content-length')).toBe(String(end - start + 1));
      expect(Buffer.from(await response.arrayBuffer()).equals(chunk.subarray(start, end + 1)), range).toBe(
        true,
      );
    }
    const unsatisfiable = await fetch(url, { headers: { range: `bytes=${size}-` } });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers.get('content-range')).toBe(`bytes */${size}`);
    const multi = await fetch(url, { headers: { range: 'bytes=0-1,5-6' } });
    expect(multi.status).toBe(200);
    expect((await multi.arrayBuffer()).byteLength).toBe(size);
    const headRange = await fetch(url, { method: 'HEAD', headers: { range: 'bytes=10-19' } });
    expect(headRange.status).toBe(206);
    expect(headRange.headers.get('content-range')).toBe(`bytes 10-19/${size}`);
  });

  it('answers 304 to If-None-Match with the current ETag', async () => {
    const url = sign(`/eu/${chunkKey}`);
    const etag = (await fetch(url, { method: 'HEAD' })).headers.get('etag') ?? '';
    expect((await fetch(url, { headers: { 'if-none-match': etag } })).status).toBe(304);
  });

  it('refuses missing, expired, tampered and foreign signatures with 403', async () => {
    const unsigned = await fetch(`${edge.endpoint}/eu/${chunkKey}`);
    expect(unsigned.status).toBe(403);
    expect(await reason(unsigned)).toMatch(/Missing Key-Pair-Id/);

    const expired = await fetch(sign(`/eu/${chunkKey}`, { dateLessThan: new Date(Date.now() - 60_000) }));
    expect(expired.status).toBe(403);
    expect(await reason(expired)).toBe('Request has expired');

    const good = new URL(sign(`/eu/${chunkKey}`));
    const signature = good.searchParams.get('Signature') ?? '';
    const flipped = new URL(good);
    flipped.searchParams.set('Signature', `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`);
    expect(await reason(await fetch(flipped))).toBe('Invalid signature');

    const extended = new URL(good);
    extended.searchParams.set('Expires', String(Number(good.searchParams.get('Expires')) + 3600));
    expect(await reason(await fetch(extended))).toBe('Invalid signature');

    const otherId = await fetch(sign(`/eu/${chunkKey}`, { keyPairId: generateKeyPairId() }));
    expect(otherId.status).toBe(403);
    expect(await reason(otherId)).toBe('Unknown Key-Pair-Id');

    const otherKey = await fetch(
      sign(`/eu/${chunkKey}`, { privateKey: generateEdgeKeyPair().privateKeyPem }),
    );
    expect(otherKey.status).toBe(403);
    expect(await reason(otherKey)).toBe('Invalid signature');

    const repointed = await fetch(sign(`/eu/${chunkKey}`).replace('/eu/', '/us/'));
    expect(repointed.status).toBe(403);

    const withQuery = sign(`/eu/${chunkKey}?part=1`);
    expect((await fetch(withQuery)).status).toBe(200);
    expect((await fetch(withQuery.replace('part=1', 'part=2'))).status).toBe(403);
  });

  it('treats Expires as exclusive: valid until the second before', async () => {
    const expires = epoch(600);
    const url = sign(`/eu/${chunkKey}`, { dateLessThan: new Date(expires * 1000) });
    try {
      clock = expires * 1000 - 1;
      expect((await fetch(url, { method: 'HEAD' })).status).toBe(200);
      clock = expires * 1000;
      expect((await fetch(url, { method: 'HEAD' })).status).toBe(403);
    } finally {
      clock = undefined;
    }
  });

  it('honours custom policies: wildcard resource, DateGreaterThan and IpAddress', async () => {
    const policy = (resource: string, extra: object = {}) => ({
      Statement: [
        { Resource: resource, Condition: { DateLessThan: { 'AWS:EpochTime': epoch(3600) }, ...extra } },
      ],
    });
    const wildcard = new URL(policyUrl(`/eu/${chunkKey}`, policy(`${edge.endpoint}/eu/chunks/*`)));
    expect((await fetch(wildcard)).status).toBe(200);
    const sibling = new URL(`${edge.endpoint}/eu/${bigKey}`);
    sibling.search = wildcard.search;
    expect((await fetch(sibling, { method: 'HEAD' })).status).toBe(200);
    const elsewhere = new URL(`${edge.endpoint}/us/${chunkKey}`);
    elsewhere.search = wildcard.search;
    const refused = await fetch(elsewhere);
    expect(refused.status).toBe(403);
    expect(await reason(refused)).toMatch(/Resource does not match/);

    const future = policy(`${edge.endpoint}/eu/*`, { DateGreaterThan: { 'AWS:EpochTime': epoch(600) } });
    const early = await fetch(policyUrl(`/eu/${chunkKey}`, future));
    expect(early.status).toBe(403);
    expect(await reason(early)).toBe('Request is not yet valid');
    const started = policy(`${edge.endpoint}/eu/*`, { DateGreaterThan: { 'AWS:EpochTime': epoch(-600) } });
    expect((await fetch(policyUrl(`/eu/${chunkKey}`, started))).status).toBe(200);

    const loopback = policy(`${edge.endpoint}/eu/*`, { IpAddress: { 'AWS:SourceIp': '127.0.0.1/32' } });
    expect((await fetch(policyUrl(`/eu/${chunkKey}`, loopback))).status).toBe(200);
    const remote = policy(`${edge.endpoint}/eu/*`, { IpAddress: { 'AWS:SourceIp': '10.0.0.0/8' } });
    expect((await fetch(policyUrl(`/eu/${chunkKey}`, remote))).status).toBe(403);

    const forged = policyUrl(
      `/eu/${chunkKey}`,
      policy(`${edge.endpoint}/*`),
      generateEdgeKeyPair().privateKeyPem,
    );
    expect((await fetch(forged)).status).toBe(403);
  });

  it('answers 404 for an unknown cache node or a missing object, once the signature is valid', async () => {
    const unknownNode = await fetch(sign(`/ap/${chunkKey}`));
    expect(unknownNode.status).toBe(404);
    expect(await unknownNode.text()).toContain('NoSuchCacheNode');
    const missing = await fetch(sign(`/eu/chunks/ff/${'0'.repeat(64)}`));
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('NoSuchKey');
    expect((await fetch(sign(`/eu/chunks/ff/${'0'.repeat(64)}`), { method: 'HEAD' })).status).toBe(404);
  });

  it('allows only GET and HEAD', async () => {
    for (const method of ['PUT', 'POST', 'DELETE', 'OPTIONS']) {
      const response = await fetch(sign(`/eu/${chunkKey}`), {
        method,
        ...(method === 'PUT' ? { body: 'x' } : {}),
      });
      expect(response.status, method).toBe(403);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
    }
  });

  it('names the port and the component when the port is taken', async () => {
    const attempt = startEdge({
      port: edge.port,
      publicKeyPem: keys.publicKeyPem,
      keyPairId,
      s3: { endpoint: s3Server.endpoint },
      resolveBucket: () => undefined,
    });
    await expect(attempt).rejects.toBeInstanceOf(PortInUseError);
    await expect(attempt).rejects.toThrow(/local edge/);
  });
});
