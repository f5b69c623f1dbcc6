// Request checks fauxqs does not make. The body of a PutObject/UploadPart must match its x-amz-checksum-* value
// (header, presigned-URL query parameter, or aws-chunked trailer) and its Content-MD5, else 400 BadDigest, as S3
// answers: our data path relies on S3 rejecting corrupted chunk uploads. Presigned URLs expire and must be sent
// with the headers they sign. Signatures themselves are not verified.
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'SHA1' | 'SHA256';

const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, SHA1: 20, SHA256: 32 };
const ALGORITHMS = Object.keys(DIGEST_BYTES) as ChecksumAlgorithm[];
const headerName = (algorithm: ChecksumAlgorithm): string => `x-amz-checksum-${algorithm.toLowerCase()}`;

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Base64 checksum of `data` as S3 computes it for x-amz-checksum-<algorithm>. */
export function computeChecksum(algorithm: ChecksumAlgorithm, data: Uint8Array): string {
  if (algorithm === 'CRC32' || algorithm === 'CRC32C') {
    const value = Buffer.alloc(4);
    value.writeUInt32BE(algorithm === 'CRC32' ? crc32(data) >>> 0 : crc32c(data));
    return value.toString('base64');
  }
  return createHash(algorithm === 'SHA1' ? 'sha1' : 'sha256')
    .update(data)
    .digest('base64');
}

export interface UploadRequest {
  readonly headers: Record<string, string | string[] | undefined>;
  readonly query: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export type UploadCheck =
  | {
      readonly ok: true;
      /** The payload with any aws-chunked framing removed. */
      readonly body: Buffer;
      /** Headers to set before the store sees the request (checksums found in the query or the trailer). */
      readonly setHeaders: Record<string, string>;
      /** Content-Encoding without `aws-chunked`; undefined means remove the header. */
      readonly contentEncoding: string | undefined;
    }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

const first = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;
const fail = (code: string, message: string, status = 400): UploadCheck => ({
  ok: false,
  status,
  code,
  message,
});

/** Splits an aws-chunked body (`<hex>[;chunk-signature=..]\r\n<data>\r\n ... 0\r\n<trailers>\r\n`). */
export function decodeAwsChunked(
  buf: Buffer,
): { body: Buffer; trailers: Record<string, string> } | undefined {
  const chunks: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', offset);
    if (lineEnd === -1) return undefined;
    const size = Number.parseInt(buf.subarray(offset, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
    if (Number.isNaN(size) || size < 0) return undefined;
    offset = lineEnd + 2;
    if (size === 0) break;
    if (
      offset + size + 2 > buf.length ||
      buf.toString('latin1', offset + size, offset + size + 2) !== '\r\n'
    ) {
      return undefined;
    }
    chunks.push(buf.subarray(offset, offset + size));
    offset += size + 2;
  }
  const trailers: Record<string, string> = {};
  for (const line of buf.subarray(offset).toString('latin1').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { body: Buffer.concat(chunks), trailers };
}

/** Checks one upload body against every checksum the request declares. */
export function checkUpload(request: UploadRequest): UploadCheck {
  // Signatures are not verified locally, but a presigned URL's signed headers must at least be sent, as S3
  // refuses the request otherwise: this catches an uploader that drops the x-amz-checksum-sha256 header.
  for (const name of (first(request.query['X-Amz-SignedHeaders']) ?? '').split(';')) {
    if (name !== '' && request.headers[name.toLowerCase()] === undefined) {
      return fail(
        'SignatureDoesNotMatch',
        `The presigned URL signs the header ${name}, which the request lacks.`,
        403,
      );
    }
  }
  let body = request.body;
  let trailers: Record<string, string> = {};
  const encodings = (first(request.headers['content-encoding']) ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const chunked = encodings.includes('aws-chunked');
  if (chunked) {
    const decoded = decodeAwsChunked(body);
    if (decoded === undefined)
      return fail('IncompleteBody', 'The request body is not valid aws-chunked encoding.');
    body = decoded.body;
    trailers = decoded.trailers;
    const declared = first(request.headers['x-amz-decoded-content-length']);
    if (declared !== undefined && Number(declared) !== body.length) {
      return fail(
        'IncompleteBody',
        'You did not provide the number of bytes specified by the Content-Length HTTP header.',
      );
    }
  }

  const setHeaders: Record<string, string> = {};
  for (const algorithm of ALGORITHMS) {
    const name = headerName(algorithm);
    const fromHeader = first(request.headers[name]);
    const fromQuery = first(request.query[name]);
    const expected = trailers[name] ?? fromHeader ?? fromQuery;
    if (expected === undefined) continue;
    if (fromHeader === undefined) setHeaders[name] = expected;
    if (Buffer.from(expected, 'base64').length !== DIGEST_BYTES[algorithm]) {
      return fail('InvalidRequest', `Value for ${name} header is invalid.`);
    }
    if (computeChecksum(algorithm, body) !== expected) {
      return fail('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    }
  }

  const md5 = first(request.headers['content-md5']);
  if (md5 !== undefined) {
    if (Buffer.from(md5, 'base64').length !== 16) {
      return fail('InvalidDigest', 'The Content-MD5 you specified was invalid.');
    }
    if (createHash('md5').update(body).digest('base64') !== md5) {
      return fail('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
  }

  const rest = encodings.filter((e) => e !== 'aws-chunked');
  return {
    ok: true,
    body,
    setHeaders,
    contentEncoding: chunked
      ? rest.length > 0
        ? rest.join(',')
        : undefined
      : first(request.headers['content-encoding']),
  };
}

/** A presigned URL past X-Amz-Date + X-Amz-Expires is refused by S3 with 403 AccessDenied; fauxqs serves it. */
export function presignedUrlExpired(
  query: Record<string, string | string[] | undefined>,
  nowMs: number,
): boolean {
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(first(query['X-Amz-Date']) ?? '');
  const expires = Number(first(query['X-Amz-Expires']));
  if (!date || !Number.isFinite(expires)) return false;
  const [, y, mo, d, h, mi, s] = date.map(Number) as number[];
  const signedAt = Date.UTC(y ?? 0, (mo ?? 1) - 1, d ?? 1, h ?? 0, mi ?? 0, s ?? 0);
  return nowMs > signedAt + expires * 1000;
}

const escapeXml = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** S3's XML error document. */
export function s3ErrorXml(code: string, message: string, resource?: string): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Error>',
    `  <Code>${escapeXml(code)}</Code>`,
    `  <Message>${escapeXml(message)}</Message>`,
    ...(resource === undefined ? [] : [`  <Resource>${escapeXml(resource)}</Resource>`]),
    `  <RequestId>${randomBytes(8).toString('hex').toUpperCase()}</RequestId>`,
    '  <HostId>vmmig-local-s3</HostId>',
    '</Error>',
  ].join('\n');
}
