// Where chunks live in a cache node's bucket: the same key in every bucket, derived from a digest, with its first
// two hex digits as a prefix so S3 spreads the request load over 256 prefixes. Packs (protocol/pack.ts) are under
// chunks/p/, named by the SHA-256 of the pack; a chunk stored alone (the format before packs, still read) is under
// chunks/<hh>/, named by its own digest. Both share the chunks/ prefix that IAM grants, the edge's behaviours and
// the buckets' lifecycle rules name.
const SHA256_HEX = /^[0-9a-f]{64}$/;
const CHUNK_KEY = /^chunks\/([0-9a-f]{2})\/([0-9a-f]{64})$/;
const PACK_KEY = /^chunks\/p\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

export const CHUNK_KEY_PREFIX = 'chunks/';
export const PACK_KEY_PREFIX = 'chunks/p/';

export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}

function checkSha256(sha256: string): void {
  if (!SHA256_HEX.test(sha256)) {
    throw new TypeError(`not a SHA-256 digest (64 lowercase hex digits): ${JSON.stringify(sha256)}`);
  }
}

/** `chunks/<first two hex digits>/<sha256>`. */
export function chunkKey(sha256: string): string {
  checkSha256(sha256);
  return `${CHUNK_KEY_PREFIX}${sha256.slice(0, 2)}/${sha256}`;
}

/** The digest a chunk key names, or undefined if the key is not a well-formed chunk key. */
export function parseChunkKey(key: string): string | undefined {
  const m = CHUNK_KEY.exec(key);
  if (m === null || m[1] !== m[2]?.slice(0, 2)) return undefined;
  return m[2];
}

/** `chunks/p/<first two hex digits>/<sha256 of the pack>`. */
export function packKey(sha256: string): string {
  checkSha256(sha256);
  return `${PACK_KEY_PREFIX}${sha256.slice(0, 2)}/${sha256}`;
}

/** The pack digest a pack key names, or undefined if the key is not a well-formed pack key. */
export function parsePackKey(key: string): string | undefined {
  const m = PACK_KEY.exec(key);
  if (m === null || m[1] !== m[2]?.slice(0, 2)) return undefined;
  return m[2];
}

/** The object holding a chunk: its pack, or (stored before packs) the chunk's own object. */
export function objectKeyOf(entry: { readonly sha256: string; readonly pack?: string | undefined }): string {
  return entry.pack === undefined ? chunkKey(entry.sha256) : packKey(entry.pack);
}

/** The digest as S3's x-amz-checksum-sha256 header (and ChecksumSHA256 field) wants it: base64. */
export function base64Sha256(sha256: string): string {
  checkSha256(sha256);
  return Buffer.from(sha256, 'hex').toString('base64');
}

/** Back from S3's base64 checksum to lowercase hex; undefined if it is not a 32-byte value. */
export function hexSha256FromBase64(base64: string): string | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(base64)) return undefined;
  const bytes = Buffer.from(base64, 'base64');
  return bytes.length === 32 ? bytes.toString('hex') : undefined;
}
