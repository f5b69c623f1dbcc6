// The source agent's packer (DESIGN §3): the chunks to upload are encoded (zstd on the libuv threadpool, several at
// once), grouped in image order into packs of PACK_TARGET_BYTES, and each sealed pack is PUT to the source cache node
// and reported while the next ones are built, a few packs in flight. Only the chunks of a pack the server read back
// and verified count as done; those of a rejected pack are left for the next round.
import type { z } from '@hono/zod-openapi';
import {
  createPackUploadUrl,
  type ManifestUploadUrl,
  type PacksVerified,
  reportStoredPacks,
  type UploadChunk,
} from '../../protocol/api/agent.ts';
import {
  type BuiltPack,
  type Encoding,
  encodeChunk,
  PACK_TARGET_BYTES,
  PackBuilder,
} from '../../protocol/pack.ts';
import type { ApiClient } from '../client.ts';
import type { RateLimiter } from './rate-limit.ts';
import { putObject, UrlExpired } from './transfer.ts';

/** Packs uploading (and being verified) at once: enough that the agent is never what a migration waits for. */
export const MAX_PACKS_IN_FLIGHT = 4;
/** Fresh URLs asked for one pack before it is left for the next round. */
const URL_ATTEMPTS = 3;

interface Encoded {
  readonly chunk: UploadChunk;
  readonly stored: Uint8Array;
  readonly encoding: Encoding;
}

export interface PackUploadOptions {
  readonly client: ApiClient;
  readonly migrationId: string;
  /** A chunk's bytes from the image, checked against its digest (throws when the image changed). */
  readonly read: (chunk: UploadChunk) => Promise<Uint8Array>;
  /** Chunks read and encoded at once. */
  readonly concurrency: number;
  readonly packsInFlight?: number;
  readonly limiter?: RateLimiter | undefined;
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
  /** Called once per verified pack, before the pack counts as sent. */
  readonly verified: (pack: BuiltPack) => Promise<void>;
}

export interface PackUploadStats {
  chunks: number;
  packs: number;
  /** Uncompressed bytes of the chunks in verified packs. */
  rawBytes: number;
  /** Bytes of the verified packs: what crossed the network for them. */
  wireBytes: number;
  /** Packs the server rejected, or that could not be sent or reported (their chunks go again next round). */
  unsent: number;
}

export class PackUploader {
  readonly stats: PackUploadStats = { chunks: 0, packs: 0, rawBytes: 0, wireBytes: 0, unsent: 0 };
  private builder = new PackBuilder();
  /** Chunks being read and encoded, in image order. */
  private readonly window: Promise<Encoded>[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly o: PackUploadOptions) {}

  /** Queues chunks, in image order; resolves when they are taken in (encoding and uploads go on behind). */
  async add(chunks: readonly UploadChunk[]): Promise<void> {
    for (const chunk of chunks) {
      this.check();
      const encoding = this.encode(chunk);
      // Awaited in order later; a failure meanwhile must not count as unhandled.
      encoding.catch(() => {});
      this.window.push(encoding);
      if (this.window.length >= Math.max(1, this.o.concurrency)) await this.takeOne();
    }
  }

  /**
   * Packs what is left, and waits until every pack is sent and reported; the uploader can take more chunks after
   * (the next round). Throws the first failure. The stats count every round so far.
   */
  async finish(): Promise<PackUploadStats> {
    while (this.window.length > 0) await this.takeOne();
    if (this.builder.count > 0) await this.seal();
    await Promise.all(this.inFlight);
    this.check();
    return this.stats;
  }

  /** Waits for whatever is still reading or sending (after a failure, before the image and journal close). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.window, ...this.inFlight]);
  }

  private check(): void {
    if (this.failure) throw this.failure.error;
  }

  private async encode(chunk: UploadChunk): Promise<Encoded> {
    const raw = await this.o.read(chunk);
    return { chunk, ...(await encodeChunk(raw)) };
  }

  private async takeOne(): Promise<void> {
    const next = this.window.shift();
    if (!next) return;
    const { chunk, stored, encoding } = await next;
    if (!this.builder.fits(stored.length)) await this.seal();
    this.builder.add(chunk.sha256, chunk.length, stored, encoding);
    if (this.builder.size >= PACK_TARGET_BYTES) await this.seal();
  }

  /** Closes the pack being built and sends it, once a slot is free. */
  private async seal(): Promise<void> {
    const pack = this.builder.finish();
    this.builder = new PackBuilder();
    const slots = Math.max(1, Math.min(this.o.packsInFlight ?? MAX_PACKS_IN_FLIGHT, this.o.concurrency));
    while (this.inFlight.size >= slots) await Promise.race(this.inFlight);
    this.check();
    const sending: Promise<void> = this.send(pack)
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
  }

  private async send(pack: BuiltPack): Promise<void> {
    const { client, migrationId, signal } = this.o;
    const params = { migrationId };
    const name = `pack ${pack.sha256.slice(0, 12)}`;
    await this.o.limiter?.take(pack.bytes.length, signal);
    for (let attempt = 1; ; attempt++) {
      const target = await client.call<z.infer<typeof ManifestUploadUrl>>(createPackUploadUrl, {
        params,
        json: { sha256: pack.sha256, size: pack.bytes.length },
      });
      try {
        await putObject(name, target.body.url, target.body.headers, pack.bytes, signal);
        break;
      } catch (err) {
        if (!(err instanceof UrlExpired)) throw err;
        if (attempt >= URL_ATTEMPTS) {
          this.o.log(`${migrationId}: ${name} not sent (its URL expired ${attempt} times); it goes again`);
          this.stats.unsent++;
          return;
        }
      }
    }
    let report: z.infer<typeof PacksVerified>;
    try {
      report = (
        await client.call<z.infer<typeof PacksVerified>>(reportStoredPacks, {
          params,
          json: { packs: [pack.sha256] },
        })
      ).body;
    } catch (err) {
      if (signal.aborted) throw err;
      // Not indexed, so the completion check finds its chunks missing: they go again in the next round.
      this.o.log(`${migrationId}: ${name} could not be reported (${(err as Error).message}); it goes again`);
      this.stats.unsent++;
      return;
    }
    const rejected = report.rejected.find((r) => r.sha256 === pack.sha256);
    if (rejected) {
      this.o.log(`${migrationId}: ${name} rejected (${rejected.reason}); its chunks go again`);
      this.stats.unsent++;
      return;
    }
    await this.o.verified(pack);
    this.stats.packs++;
    this.stats.chunks += pack.entries.length;
    this.stats.rawBytes += pack.rawBytes;
    this.stats.wireBytes += pack.bytes.length;
  }
}
