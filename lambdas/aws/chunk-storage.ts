// S3 adapter for cache node buckets (chunks) and the control bucket (manifests, plans). Chunks are stored in packs
// (protocol/pack.ts) under a key derived from the pack's digest, with S3's SHA-256 checksum of the pack, so S3
// itself rejects corrupted bytes and vouches for what it holds; a chunk stored alone before packs (its own digest
// as key and checksum) is still read, copied and deleted like a pack of one raw entry.
import { createHash } from 'node:crypto';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  base64Sha256,
  CHUNK_KEY_PREFIX,
  chunkKey,
  objectKeyOf,
  PACK_KEY_PREFIX,
  packKey,
  parseChunkKey,
  parsePackKey,
} from '../../protocol/chunk-key.ts';
import {
  MAX_PACK_BYTES,
  MAX_TOC_BYTES,
  openChunk,
  type PackEntry,
  PackFormatError,
  readPackToc,
  type StoredChunk,
  storedEnd,
  verifyPack,
} from '../../protocol/pack.ts';
import type { ObjectState } from '../domain/stored-objects.ts';

export interface BucketRef {
  readonly bucket: string;
  readonly region: string;
}

/** What a HEAD says of the object an entry names. */
export type ChunkState = ObjectState;

/** What a HEAD says of a stored chunk. */
export interface ChunkHead {
  readonly length: number;
  /** S3's SHA-256 checksum of the object is the digest its key names. */
  readonly checksumMatches: boolean;
}

export interface ListedChunk {
  readonly sha256: string;
  readonly size: number;
}

/** What reading a pack found. */
export type PackRead =
  | { readonly state: 'missing' }
  | { readonly state: 'corrupt'; readonly reason: string }
  | {
      readonly state: 'read';
      readonly intact: PackEntry[];
      readonly corrupt: PackEntry[];
      readonly size: number;
    };

/** What a chunk's stored bytes are, read back and hashed (HEAD only sees the checksum recorded at upload). */
export type ChunkContent = 'intact' | 'corrupt' | 'missing';

export interface PresignedPut {
  readonly url: string;
  readonly headers: Record<string, string>;
}

const statusOf = (err: unknown) =>
  (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
const isNotFound = (err: unknown) =>
  statusOf(err) === 404 || ['NotFound', 'NoSuchKey'].includes((err as Error).name);
/** The SDK checks a GET's bytes against the stored checksum and throws this when they differ. */
const isChecksumMismatch = (err: unknown) => /checksum mismatch/i.test((err as Error).message ?? '');
/** Reading a body can fail after the SDK returned (a dropped connection): the SDK does not retry that. */
const BODY_READ_ATTEMPTS = 3;

export class ChunkStorage {
  constructor(private readonly client: (region: string) => S3Client) {}

  /** Present = stored with the expected length and SHA-256 checksum. */
  async chunkState(node: BucketRef, sha256: string, length: number): Promise<ChunkState> {
    try {
      const head = await this.client(node.region).send(
        new HeadObjectCommand({ Bucket: node.bucket, Key: chunkKey(sha256), ChecksumMode: 'ENABLED' }),
      );
      const ok = head.ContentLength === length && head.ChecksumSHA256 === base64Sha256(sha256);
      return ok ? 'present' : 'mismatch';
    } catch (err) {
      if (isNotFound(err)) return 'missing';
      throw err;
    }
  }

  /** Reads a chunk back and hashes it: the only way to see bytes that changed after they were stored. */
  private async inspectChunk(node: BucketRef, sha256: string, length: number): Promise<ChunkContent> {
    return this.readWithRetries(async () => {
      let bytes: Uint8Array;
      try {
        const out = await this.client(node.region).send(
          new GetObjectCommand({ Bucket: node.bucket, Key: chunkKey(sha256) }),
        );
        bytes = (await out.Body?.transformToByteArray()) ?? new Uint8Array();
      } catch (err) {
        if (isNotFound(err)) return 'missing';
        if (isChecksumMismatch(err)) return 'corrupt';
        throw err;
      }
      const ok = bytes.length === length && createHash('sha256').update(bytes).digest('hex') === sha256;
      return ok ? 'intact' : 'corrupt';
    });
  }

  async deleteChunk(node: BucketRef, sha256: string): Promise<void> {
    await this.client(node.region).send(
      new DeleteObjectCommand({ Bucket: node.bucket, Key: chunkKey(sha256) }),
    );
  }

  /** A stored chunk's size and whether S3's SHA-256 checksum of it is its digest; undefined when absent. */
  async headChunk(node: BucketRef, sha256: string): Promise<ChunkHead | undefined> {
    try {
      const head = await this.client(node.region).send(
        new HeadObjectCommand({ Bucket: node.bucket, Key: chunkKey(sha256), ChecksumMode: 'ENABLED' }),
      );
      return {
        length: head.ContentLength ?? 0,
        checksumMatches: head.ChecksumSHA256 === base64Sha256(sha256),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Up to `limit` chunks a cache node's bucket holds after the digest `after`, in digest order (chunk keys sort as
   * their digests do). Keys under chunks/ that are not chunk keys are skipped. `truncated`: more may follow.
   */
  async listChunks(
    node: BucketRef,
    options: { after?: string; limit: number },
  ): Promise<{ chunks: ListedChunk[]; truncated: boolean }> {
    // Pack keys sort after every chunk key (chunks/p/ > chunks/ff/): the chunks stored alone end there.
    const { items, truncated } = await this.listDigests(node, CHUNK_KEY_PREFIX, chunkKey, parseChunkKey, {
      ...options,
      stopAt: PACK_KEY_PREFIX,
    });
    return { chunks: items, truncated };
  }

  // ---- packs (protocol/pack.ts) and the objects index entries name

  /** A presigned PUT for one pack; its key and checksum are the pack's SHA-256, so S3 refuses other bytes. */
  async presignPackPut(
    node: BucketRef,
    sha256: string,
    size: number,
    expiresIn: number,
  ): Promise<PresignedPut> {
    return this.presignPut(node, packKey(sha256), sha256, size, expiresIn, 'application/octet-stream');
  }

  /**
   * Whether the object an index entry names is stored intact as far as S3 vouches (HEAD: its SHA-256 checksum is the
   * digest its key names; a chunk stored alone must also have the chunk's length).
   */
  async objectState(node: BucketRef, at: StoredChunk): Promise<ChunkState> {
    if (at.pack === undefined) return this.chunkState(node, at.sha256, at.length);
    try {
      const head = await this.client(node.region).send(
        new HeadObjectCommand({ Bucket: node.bucket, Key: packKey(at.pack), ChecksumMode: 'ENABLED' }),
      );
      const ok = head.ChecksumSHA256 === base64Sha256(at.pack) && (head.ContentLength ?? 0) >= storedEnd(at);
      return ok ? 'present' : 'mismatch';
    } catch (err) {
      if (isNotFound(err)) return 'missing';
      throw err;
    }
  }

  /** Server-side copy of the object an entry names (a whole pack); S3 recomputes the SHA-256 of the copy. */
  async copyObject(from: BucketRef, to: BucketRef, at: StoredChunk): Promise<void> {
    const key = objectKeyOf(at);
    await this.client(to.region).send(
      new CopyObjectCommand({
        Bucket: to.bucket,
        Key: key,
        CopySource: `${from.bucket}/${key}`,
        ChecksumAlgorithm: 'SHA256',
        MetadataDirective: 'COPY',
      }),
    );
  }

  async deleteObject(node: BucketRef, at: StoredChunk): Promise<void> {
    await this.client(node.region).send(
      new DeleteObjectCommand({ Bucket: node.bucket, Key: objectKeyOf(at) }),
    );
  }

  /** Reads the chunk an entry names back (a range of its pack), decodes and hashes it. */
  async inspectEntry(node: BucketRef, at: StoredChunk): Promise<ChunkContent> {
    if (at.pack === undefined) return this.inspectChunk(node, at.sha256, at.length);
    const offset = at.offset ?? 0;
    const stored = at.stored ?? at.length;
    const bytes = await this.readRange(node, packKey(at.pack), offset, stored);
    if (bytes === undefined) return 'missing';
    if (bytes.length !== stored) return 'corrupt';
    const entry = { sha256: at.sha256, length: at.length, encoding: at.encoding ?? 'raw' } as const;
    return (await openChunk(bytes, entry)) ? 'intact' : 'corrupt';
  }

  /**
   * Reads a whole pack and checks every entry (decoded, hashed): what an upload report is verified with, so
   * nothing is indexed that a destination would refuse.
   */
  async readPack(node: BucketRef, pack: string): Promise<PackRead> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.getBytes(node, packKey(pack), MAX_PACK_BYTES);
    } catch (err) {
      if (err instanceof RangeError) return { state: 'corrupt', reason: err.message };
      if (isChecksumMismatch(err)) return { state: 'corrupt', reason: 'S3 checksum mismatch' };
      throw err;
    }
    if (bytes === undefined) return { state: 'missing' };
    if (createHash('sha256').update(bytes).digest('hex') !== pack)
      return { state: 'corrupt', reason: 'the pack does not hash to its name' };
    try {
      return { state: 'read', size: bytes.length, ...(await verifyPack(pack, bytes)) };
    } catch (err) {
      if (err instanceof PackFormatError) return { state: 'corrupt', reason: err.message };
      throw err;
    }
  }

  /**
   * A pack's table of contents, read from its end (one or two range GETs); undefined when the pack is not there.
   * Throws PackFormatError for an object that is not a well-formed pack.
   */
  async packToc(node: BucketRef, pack: string): Promise<PackEntry[] | undefined> {
    const key = packKey(pack);
    let want = 64 * 1024;
    for (let round = 0; round < 2; round++) {
      const tail = await this.readTail(node, key, want);
      if (tail === undefined) return undefined;
      const toc = readPackToc(pack, tail.bytes, tail.size);
      if ('entries' in toc) return toc.entries;
      if (toc.need > MAX_TOC_BYTES) throw new PackFormatError(`a table of ${toc.need} bytes`);
      want = toc.need;
    }
    throw new PackFormatError('the table of contents could not be read');
  }

  /**
   * Up to `limit` packs a node's bucket holds after the pack `after`, in digest order, with their sizes.
   */
  async listPacks(
    node: BucketRef,
    options: { after?: string; limit: number },
  ): Promise<{ packs: ListedChunk[]; truncated: boolean }> {
    const { items, truncated } = await this.listDigests(
      node,
      PACK_KEY_PREFIX,
      packKey,
      parsePackKey,
      options,
    );
    return { packs: items, truncated };
  }

  /**
   * Up to `limit` objects under `prefix` whose keys name a digest (`parse`), after the digest `after`, in key (so
   * digest) order; other keys are skipped, and the listing ends at the first key starting with `stopAt`.
   */
  private async listDigests(
    node: BucketRef,
    prefix: string,
    keyOf: (sha256: string) => string,
    parse: (key: string) => string | undefined,
    options: { after?: string; limit: number; stopAt?: string },
  ): Promise<{ items: ListedChunk[]; truncated: boolean }> {
    const items: ListedChunk[] = [];
    let token: string | undefined;
    for (;;) {
      const out = await this.client(node.region).send(
        new ListObjectsV2Command({
          Bucket: node.bucket,
          Prefix: prefix,
          MaxKeys: options.limit - items.length,
          ...(token
            ? { ContinuationToken: token }
            : options.after
              ? { StartAfter: keyOf(options.after) }
              : {}),
        }),
      );
      for (const o of out.Contents ?? []) {
        if (options.stopAt !== undefined && o.Key?.startsWith(options.stopAt))
          return { items, truncated: false };
        const sha256 = o.Key === undefined ? undefined : parse(o.Key);
        if (sha256) items.push({ sha256, size: o.Size ?? 0 });
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
      if (!token) return { items, truncated: false };
      if (items.length >= options.limit) return { items, truncated: true };
    }
  }

  /** Bytes [offset, offset + length) of an object; undefined when it is not there. */
  private async readRange(
    node: BucketRef,
    key: string,
    offset: number,
    length: number,
  ): Promise<Uint8Array | undefined> {
    return this.readWithRetries(async () => {
      try {
        const out = await this.client(node.region).send(
          new GetObjectCommand({
            Bucket: node.bucket,
            Key: key,
            Range: `bytes=${offset}-${offset + length - 1}`,
          }),
        );
        return (await out.Body?.transformToByteArray()) ?? new Uint8Array();
      } catch (err) {
        if (isNotFound(err)) return undefined;
        // Past the end of the object: what was asked for is not there.
        if (statusOf(err) === 416) return new Uint8Array();
        throw err;
      }
    });
  }

  /** The last `length` bytes of an object (all of it when shorter) and its size; undefined when absent. */
  private async readTail(
    node: BucketRef,
    key: string,
    length: number,
  ): Promise<{ bytes: Uint8Array; size: number } | undefined> {
    return this.readWithRetries(async () => {
      try {
        const out = await this.client(node.region).send(
          new GetObjectCommand({ Bucket: node.bucket, Key: key, Range: `bytes=-${length}` }),
        );
        const bytes = (await out.Body?.transformToByteArray()) ?? new Uint8Array();
        const total = /\/(\d+)$/.exec(out.ContentRange ?? '')?.[1];
        return { bytes, size: total === undefined ? bytes.length : Number(total) };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
  }

  /** Runs a read again when its body broke off midway (the SDK retries only until the answer's headers). */
  private async readWithRetries<T>(read: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await read();
      } catch (err) {
        if (attempt >= BODY_READ_ATTEMPTS || statusOf(err) !== undefined || err instanceof RangeError)
          throw err;
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt * (0.5 + Math.random() / 2)));
      }
    }
  }

  // ---- control bucket

  /** A presigned PUT for a control object whose SHA-256 is known: storage refuses any other bytes. */
  async presignPut(
    target: BucketRef,
    key: string,
    sha256: string,
    length: number,
    expiresIn: number,
    contentType = 'application/json',
  ): Promise<PresignedPut> {
    const checksum = base64Sha256(sha256);
    const url = await getSignedUrl(
      this.client(target.region),
      new PutObjectCommand({
        Bucket: target.bucket,
        Key: key,
        ContentType: contentType,
        ContentLength: length,
        ChecksumSHA256: checksum,
      }),
      { expiresIn, unhoistableHeaders: new Set(['x-amz-checksum-sha256']) },
    );
    return { url, headers: { 'content-type': contentType, 'x-amz-checksum-sha256': checksum } };
  }

  /** Reads an object fully, refusing more than `maxBytes`; undefined when absent. */
  async getBytes(target: BucketRef, key: string, maxBytes: number): Promise<Uint8Array | undefined> {
    return this.readWithRetries(async () => {
      try {
        const out = await this.client(target.region).send(
          new GetObjectCommand({ Bucket: target.bucket, Key: key }),
        );
        if ((out.ContentLength ?? 0) > maxBytes) {
          out.Body?.transformToWebStream().cancel();
          throw new RangeError(
            `object ${key} is ${out.ContentLength} bytes, over the ${maxBytes}-byte limit`,
          );
        }
        const bytes = (await out.Body?.transformToByteArray()) ?? new Uint8Array();
        if (out.ContentLength !== undefined && bytes.length !== out.ContentLength) {
          throw Object.assign(
            new Error(`object ${key}: read ${bytes.length} of ${out.ContentLength} bytes`),
            {
              code: 'ERR_STREAM_PREMATURE_CLOSE',
            },
          );
        }
        return bytes;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
  }

  /** The first `length` bytes of an object (all of it when shorter); undefined when absent. */
  async getHead(target: BucketRef, key: string, length: number): Promise<Uint8Array | undefined> {
    return this.readRange(target, key, 0, length);
  }

  /** Whether an object is there (HEAD, nothing read). */
  async exists(target: BucketRef, key: string): Promise<boolean> {
    try {
      await this.client(target.region).send(new HeadObjectCommand({ Bucket: target.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async putJson(target: BucketRef, key: string, value: unknown): Promise<void> {
    await this.client(target.region).send(
      new PutObjectCommand({
        Bucket: target.bucket,
        Key: key,
        Body: JSON.stringify(value),
        ContentType: 'application/json',
      }),
    );
  }

  async getJson<T>(target: BucketRef, key: string, maxBytes = 256 * 1024 * 1024): Promise<T | undefined> {
    const bytes = await this.getBytes(target, key, maxBytes);
    return bytes && (JSON.parse(Buffer.from(bytes).toString('utf8')) as T);
  }
}
