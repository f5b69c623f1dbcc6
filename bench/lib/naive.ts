// The naive baseline of issue 7, the path a user would script with the AWS SDK: a whole-image multipart upload
// (lib-storage) into the source cache node's bucket, a server-side multipart copy (UploadPartCopy) into each
// destination's bucket, and a GetObject streamed to a file. Runs in its own process (bench/lib/naive-child.ts)
// so its CPU is told apart from the local cloud's.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { runTsChild } from './child.ts';

/** The local S3 server refuses request bodies above ~11 MiB: upload parts stay at 8 MiB (S3 allows 5 MiB–5 GiB). */
export const UPLOAD_PART_SIZE = 8 * 1024 * 1024;
/**
 * The local S3 server cannot store an object of 2 GiB or more (its file persistence writes a body in one call,
 * whose length is capped at 2^31 − 1). Larger images go as consecutive objects of this size, which is what a user
 * scripting against such a store would do; below it an image is one object, exactly the naive path.
 */
export const MAX_OBJECT_SIZE = 2040 * 1024 * 1024;
/**
 * Copy parts as large as S3 allows (5 GiB), so a copy is one UploadPartCopy per 5 GiB. Smaller copy parts are what
 * `aws s3 cp` would send (8 MiB), but the local S3 server reads the whole source object into memory for every
 * part and keeps it referenced until the upload completes: 8 MiB parts of a 2 GiB object would hold 512 GiB.
 */
export const COPY_PART_SIZE = 5 * 1024 * 1024 * 1024;

export interface NaiveDestination {
  /** Bucket of the destination's cache node; equal to the source bucket when they share a node (no copy). */
  readonly bucket: string;
  /** Where the destination data center writes the image. */
  readonly file: string;
}

export interface NaiveJob {
  readonly endpoint: string;
  readonly region: string;
  readonly file: string;
  readonly sourceBucket: string;
  readonly key: string;
  readonly destinations: readonly NaiveDestination[];
  /** Parallel part uploads (lib-storage queueSize); the agents use 8 parallel transfers by default. */
  readonly queueSize: number;
}

export interface NaiveResult {
  readonly bytes: number;
  /** Objects the image was stored as (1 below MAX_OBJECT_SIZE). */
  readonly objects: number;
  readonly uploadMs: number;
  /** Per destination: copy (0 when it shares the source's node) and download. */
  readonly legs: readonly {
    readonly copyMs: number;
    readonly downloadMs: number;
    readonly copied: boolean;
  }[];
  readonly totalMs: number;
  /** Bytes that crossed between cities: the upload plus every copy between cache nodes. */
  readonly wanBytes: number;
  readonly bytesDownloaded: number;
  readonly maxRssMiB: number;
}

function client(job: Pick<NaiveJob, 'endpoint' | 'region'>): S3Client {
  return new S3Client({
    endpoint: job.endpoint,
    region: job.region,
    forcePathStyle: true,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

async function copyObject(s3: S3Client, from: string, to: string, key: string, size: number): Promise<void> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: to, Key: key }));
  try {
    const parts: { ETag: string; PartNumber: number }[] = [];
    for (let start = 0, n = 1; start < size; start += COPY_PART_SIZE, n++) {
      const end = Math.min(size, start + COPY_PART_SIZE) - 1;
      const out = await s3.send(
        new UploadPartCopyCommand({
          Bucket: to,
          Key: key,
          UploadId,
          PartNumber: n,
          CopySource: `${from}/${key}`,
          CopySourceRange: `bytes=${start}-${end}`,
        }),
      );
      parts.push({ ETag: out.CopyPartResult?.ETag ?? '', PartNumber: n });
    }
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: to,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  } catch (err) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: to, Key: key, UploadId })).catch(() => {});
    throw err;
  }
}

async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new Error(`naive ${what}: ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
  }
}

/** The objects an image is stored as: `key` alone, or `key.0`, `key.1`, … of MAX_OBJECT_SIZE each. */
export function segments(key: string, size: number): { key: string; start: number; length: number }[] {
  if (size <= MAX_OBJECT_SIZE) return [{ key, start: 0, length: size }];
  const out: { key: string; start: number; length: number }[] = [];
  for (let start = 0, i = 0; start < size; start += MAX_OBJECT_SIZE, i++)
    out.push({ key: `${key}.${i}`, start, length: Math.min(MAX_OBJECT_SIZE, size - start) });
  return out;
}

/** The naive path, in this process. Destinations go one after another, as a simple script would do them. */
export async function runNaive(job: NaiveJob): Promise<NaiveResult> {
  const s3 = client(job);
  const { size } = await stat(job.file);
  const parts = segments(job.key, size);
  const started = performance.now();
  for (const seg of parts) {
    await step('multipart upload', () =>
      new Upload({
        client: s3,
        params: {
          Bucket: job.sourceBucket,
          Key: seg.key,
          Body: createReadStream(job.file, {
            start: seg.start,
            end: seg.start + seg.length - 1,
            highWaterMark: 1 << 20,
          }),
        },
        partSize: UPLOAD_PART_SIZE,
        queueSize: job.queueSize,
      }).done(),
    );
  }
  const uploadMs = performance.now() - started;
  const legs: { copyMs: number; downloadMs: number; copied: boolean }[] = [];
  for (const d of job.destinations) {
    const t0 = performance.now();
    const copied = d.bucket !== job.sourceBucket;
    if (copied) {
      for (const seg of parts)
        await step(`copy to ${d.bucket}`, () =>
          copyObject(s3, job.sourceBucket, d.bucket, seg.key, seg.length),
        );
    }
    const t1 = performance.now();
    await mkdir(dirname(d.file), { recursive: true });
    await writeFile(d.file, '');
    for (const seg of parts) {
      await step(`download from ${d.bucket}`, async () => {
        const out = await s3.send(new GetObjectCommand({ Bucket: d.bucket, Key: seg.key }));
        await pipeline(
          out.Body as NodeJS.ReadableStream,
          createWriteStream(d.file, { flags: 'r+', start: seg.start, highWaterMark: 1 << 20 }),
        );
      });
    }
    legs.push({ copyMs: t1 - t0, downloadMs: performance.now() - t1, copied });
  }
  const totalMs = performance.now() - started;
  return {
    bytes: size,
    objects: parts.length,
    uploadMs,
    legs,
    totalMs,
    wanBytes: size * (1 + legs.filter((l) => l.copied).length),
    bytesDownloaded: size * legs.length,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
  };
}

/** Deletes what the naive path stored (the server keeps object bodies in files: disk, not RAM). */
export async function cleanNaive(job: NaiveJob): Promise<void> {
  const s3 = client(job);
  const { size } = await stat(job.file);
  for (const bucket of new Set([job.sourceBucket, ...job.destinations.map((d) => d.bucket)]))
    for (const seg of segments(job.key, size))
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: seg.key })).catch(() => {});
  await Promise.all(job.destinations.map((d) => rm(d.file, { force: true })));
}

const CHILD = fileURLToPath(new URL('./naive-child.ts', import.meta.url));

/** Runs the naive path in a child process (its own event loop and CPU account) and returns its result. */
export const runNaiveProcess = (job: NaiveJob, onPid?: (pid: number) => void): Promise<NaiveResult> =>
  runTsChild<NaiveResult>('naive baseline', CHILD, [JSON.stringify(job)], onPid);
