// S3 adapter for cache node buckets (chunks) and the control bucket (manifests, plans). Chunks are stored once
// per cache node under a digest-derived key with S3's SHA-256 checksum, so S3 itself rejects corrupted bytes and
// vouches for what it holds.
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
import { base64Sha256, CHUNK_KEY_PREFIX, chunkKey, parseChunkKey } from '../../protocol/chunk-key.ts';

export interface BucketRef {
  readonly bucket: string;
  readonly region: string;
}

export type ChunkState = 'present' | 'missing' | 'mismatch';

/** What a HEAD says of a stored chunk. */
export interface StoredChunk {
  readonly length: number;
  /** S3's SHA-256 checksum of the object is the digest its key names. */
  readonly checksumMatches: boolean;
}

export interface ListedChunk {
  readonly sha256: string;
  readonly size: number;
}

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

  /** A presigned PUT for one chunk. The checksum is a signed header: S3 refuses a body that does not match. */
  async presignChunkPut(
    node: BucketRef,
    sha256: string,
    length: number,
    expiresIn: number,
  ): Promise<PresignedPut> {
    const checksum = base64Sha256(sha256);
    const url = await getSignedUrl(
      this.client(node.region),
      new PutObjectCommand({
        Bucket: node.bucket,
        Key: chunkKey(sha256),
        ContentLength: length,
        ChecksumSHA256: checksum,
        ContentType: 'application/octet-stream',
      }),
      { expiresIn, unhoistableHeaders: new Set(['x-amz-checksum-sha256']) },
    );
    return {
      url,
      headers: { 'content-type': 'application/octet-stream', 'x-amz-checksum-sha256': checksum },
    };
  }

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

  /** Server-side copy between cache nodes; S3 recomputes the SHA-256 of the copy. */
  async copyChunk(from: BucketRef, to: BucketRef, sha256: string): Promise<void> {
    const key = chunkKey(sha256);
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

  /** Reads a chunk back and hashes it: the only way to see bytes that changed after they were stored. */
  async inspectChunk(node: BucketRef, sha256: string, length: number): Promise<ChunkContent> {
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
  async headChunk(node: BucketRef, sha256: string): Promise<StoredChunk | undefined> {
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
    const chunks: ListedChunk[] = [];
    let token: string | undefined;
    for (;;) {
      const out = await this.client(node.region).send(
        new ListObjectsV2Command({
          Bucket: node.bucket,
          Prefix: CHUNK_KEY_PREFIX,
          MaxKeys: options.limit - chunks.length,
          ...(token
            ? { ContinuationToken: token }
            : options.after
              ? { StartAfter: chunkKey(options.after) }
              : {}),
        }),
      );
      for (const o of out.Contents ?? []) {
        const sha256 = o.Key === undefined ? undefined : parseChunkKey(o.Key);
        if (sha256) chunks.push({ sha256, size: o.Size ?? 0 });
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
      if (!token) return { chunks, truncated: false };
      if (chunks.length >= options.limit) return { chunks, truncated: true };
    }
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
