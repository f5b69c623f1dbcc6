// `vmmig estimate --image FILE --to DC`: before any upload, how much of an image the cache nodes already hold
// (a changed VM moves only its changed chunks).

import { createEstimate, type Estimate, MAX_ESTIMATE_CHUNKS } from '../../protocol/api/estimate.ts';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';
import { isZeroChunk } from '../../protocol/manifest.ts';
import type { ApiClient } from '../client.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes } from '../render.ts';

export async function estimate(
  client: ApiClient,
  opts: { image: string; to: string; from?: string; json?: boolean },
): Promise<number> {
  const image = await collectChunks(chunkFile(opts.image));
  const distinct = [
    ...new Map(image.chunks.map((c) => [c.sha256, { sha256: c.sha256, length: c.length }])).values(),
  ];
  const payload = distinct.filter((c) => !isZeroChunk(c.sha256, c.length));
  const add = (a: { chunks: number; bytes: number }, b: { chunks: number; bytes: number }) => ({
    chunks: a.chunks + b.chunks,
    bytes: a.bytes + b.bytes,
  });
  let total: Estimate | undefined;
  for (let i = 0; i < payload.length; i += MAX_ESTIMATE_CHUNKS) {
    const { body } = await client.call<Estimate>(createEstimate, {
      json: {
        destinationDataCenterId: opts.to,
        ...(opts.from ? { sourceDataCenterId: opts.from } : {}),
        chunks: payload.slice(i, i + MAX_ESTIMATE_CHUNKS),
      },
    });
    total = total
      ? {
          chunks: total.chunks + body.chunks,
          bytes: total.bytes + body.bytes,
          ...(total.source && body.source
            ? { source: { ...total.source, cached: add(total.source.cached, body.source.cached) } }
            : {}),
          destination: {
            ...total.destination,
            cached: add(total.destination.cached, body.destination.cached),
          },
          cachedAnywhere: add(total.cachedAnywhere, body.cachedAnywhere),
          toUpload: add(total.toUpload, body.toUpload),
          toCopy: add(total.toCopy, body.toCopy),
        }
      : body;
  }
  const payloadBytes = payload.reduce((n, c) => n + c.length, 0);
  const result = {
    image: opts.image,
    size: image.size,
    sha256: image.sha256,
    chunks: image.chunks.length,
    estimate: total ?? null,
  };
  if (opts.json || !process.stdout.isTTY) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return EXIT.ok;
  }
  const out = [
    `${opts.image}: ${formatBytes(image.size)}, ${image.chunks.length} chunks, ${payload.length} distinct and non-zero (${formatBytes(payloadBytes)}); the other ${formatBytes(image.size - payloadBytes)} are zeros or repeats and never travel`,
  ];
  if (total) {
    if (total.source)
      out.push(
        `  cached at the source's cache node ${total.source.cacheNodeId}: ${formatBytes(total.source.cached.bytes)} (${total.source.cached.chunks} chunks)`,
      );
    out.push(
      `  cached at the destination's cache node ${total.destination.cacheNodeId}: ${formatBytes(total.destination.cached.bytes)} (${total.destination.cached.chunks} chunks)`,
      `  cached on any cache node: ${formatBytes(total.cachedAnywhere.bytes)}`,
      `  a migration would upload ${formatBytes(total.toUpload.bytes)} (${total.toUpload.chunks} chunks) and copy ${formatBytes(total.toCopy.bytes)} between cache nodes`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return EXIT.ok;
}
