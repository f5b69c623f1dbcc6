// Packs as every end relies on them: a chunk comes back byte for byte from its stored form, random data is stored
// raw, the table of contents is read from the tail alone (asking for more when the tail is short), a damaged entry
// or a damaged pack is found, and a pack never grows past MAX_PACK_BYTES.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type BuiltPack,
  decodeChunk,
  encodeChunk,
  MAX_PACK_BYTES,
  openChunk,
  PackBuilder,
  PackFormatError,
  readPackToc,
  tocBytes,
  verifyPack,
} from '../../../protocol/pack.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** Compresses well: one random block repeated. */
const compressible = (n: number) => Buffer.alloc(n, randomBytes(4096));

async function packOf(chunks: readonly Uint8Array[]): Promise<BuiltPack> {
  const builder = new PackBuilder();
  for (const c of chunks) {
    const { stored, encoding } = await encodeChunk(c);
    builder.add(sha(c), c.length, stored, encoding);
  }
  return builder.finish();
}

describe('chunk encoding', () => {
  it('compresses what shrinks and gives it back byte for byte', async () => {
    const raw = compressible(256 * 1024);
    const { stored, encoding } = await encodeChunk(raw);
    expect(encoding).toBe('zstd');
    expect(stored.length).toBeLessThan(raw.length / 10);
    expect(Buffer.from(await decodeChunk(stored, 'zstd', raw.length)).equals(raw)).toBe(true);
  });

  it('stores random data raw, as the same bytes', async () => {
    const raw = randomBytes(64 * 1024);
    const { stored, encoding } = await encodeChunk(raw);
    expect(encoding).toBe('raw');
    expect(stored).toBe(raw);
  });

  it('refuses stored bytes that do not decode to the announced length', async () => {
    const raw = compressible(10_000);
    const { stored } = await encodeChunk(raw);
    await expect(decodeChunk(stored, 'zstd', raw.length - 1)).rejects.toThrow(PackFormatError);
    await expect(decodeChunk(randomBytes(100), 'zstd', 100)).rejects.toThrow(PackFormatError);
    await expect(decodeChunk(randomBytes(100), 'raw', 99)).rejects.toThrow(PackFormatError);
  });

  it('opens a chunk only when the bytes are the chunk its digest names', async () => {
    const raw = compressible(10_000);
    const { stored, encoding } = await encodeChunk(raw);
    expect(await openChunk(stored, { sha256: sha(raw), length: raw.length, encoding })).toBeDefined();
    const other = compressible(10_000);
    expect(await openChunk(stored, { sha256: sha(other), length: raw.length, encoding })).toBeUndefined();
    expect(
      await openChunk(randomBytes(50), { sha256: sha(raw), length: raw.length, encoding }),
    ).toBeUndefined();
  });
});

describe('packs', () => {
  it('round trips: every entry is at its offset, decodes to its chunk, in the order added', async () => {
    const chunks = [compressible(100_000), randomBytes(70_000), compressible(30_000), randomBytes(1)];
    const pack = await packOf(chunks);
    expect(pack.sha256).toBe(sha(pack.bytes));
    expect(pack.rawBytes).toBe(chunks.reduce((n, c) => n + c.length, 0));
    expect(pack.entries.map((e) => e.sha256)).toEqual(chunks.map(sha));
    expect(pack.entries.map((e) => e.encoding)).toEqual(['zstd', 'raw', 'zstd', 'raw']);
    const toc = readPackToc(pack.sha256, pack.bytes, pack.bytes.length);
    expect(toc).toEqual({ entries: pack.entries });
    for (const [i, e] of pack.entries.entries()) {
      const bytes = await openChunk(pack.bytes.subarray(e.offset, e.offset + e.stored), e);
      expect(Buffer.from(bytes ?? []).equals(chunks[i] as Buffer)).toBe(true);
    }
    expect(await verifyPack(pack.sha256, pack.bytes)).toEqual({ intact: pack.entries, corrupt: [] });
  });

  it('keeps a chunk added twice once', async () => {
    const c = randomBytes(1000);
    const pack = await packOf([c, c]);
    expect(pack.entries).toHaveLength(1);
  });

  it('reads the table of contents from the tail alone, and asks for more when the tail is short', async () => {
    const pack = await packOf([randomBytes(5000), compressible(9000), randomBytes(300)]);
    const size = pack.bytes.length;
    const need = tocBytes(3);
    const exact = readPackToc(pack.sha256, pack.bytes.subarray(size - need), size);
    expect(exact).toEqual({ entries: pack.entries });
    expect(readPackToc(pack.sha256, pack.bytes.subarray(size - 16), size)).toEqual({ need });
    expect(readPackToc(pack.sha256, pack.bytes.subarray(size - need + 1), size)).toEqual({ need });
  });

  it('finds a damaged entry and leaves the others intact', async () => {
    const pack = await packOf([randomBytes(4000), compressible(50_000), randomBytes(4000)]);
    const damaged = Buffer.from(pack.bytes);
    const victim = pack.entries[1];
    if (!victim) throw new Error('no entry 1');
    const at = victim.offset + Math.floor(victim.stored / 2);
    damaged.writeUInt8(damaged.readUInt8(at) ^ 0xff, at);
    const { intact, corrupt } = await verifyPack(pack.sha256, damaged);
    expect(corrupt).toEqual([victim]);
    expect(intact).toEqual([pack.entries[0], pack.entries[2]]);
  });

  it('refuses what is not a well-formed pack with PackFormatError', async () => {
    const pack = await packOf([randomBytes(2000), randomBytes(3000)]);
    const size = pack.bytes.length;
    const refuse = (bytes: Uint8Array, packSize = bytes.length) =>
      expect(() => readPackToc(pack.sha256, bytes, packSize)).toThrow(PackFormatError);
    refuse(randomBytes(4096));
    refuse(new Uint8Array(5));
    // Truncated: the entries no longer add up to the pack's size.
    refuse(pack.bytes.subarray(100), size - 100);
    // Another version.
    const version = Buffer.from(pack.bytes);
    version.writeUInt32BE(99, size - 12);
    refuse(version);
    // An entry count that does not fit the pack.
    const count = Buffer.from(pack.bytes);
    count.writeUInt32BE(1_000_000, size - 16);
    refuse(count);
    const none = Buffer.from(pack.bytes);
    none.writeUInt32BE(0, size - 16);
    refuse(none);
    // An unknown encoding.
    const encoding = Buffer.from(pack.bytes);
    encoding[size - tocBytes(2) + 40] = 7;
    refuse(encoding);
    await expect(verifyPack(pack.sha256, randomBytes(4096))).rejects.toThrow(PackFormatError);
  });

  it('never grows past MAX_PACK_BYTES, and always takes one chunk', () => {
    const builder = new PackBuilder();
    const big = Buffer.alloc(4 * 1024 * 1024);
    expect(builder.fits(MAX_PACK_BYTES)).toBe(false);
    builder.add('a'.repeat(64), big.length, big, 'raw');
    builder.add('b'.repeat(64), big.length, big, 'raw');
    expect(builder.fits(big.length)).toBe(false);
    expect(() => builder.add('c'.repeat(64), big.length, big, 'raw')).toThrow(RangeError);
    expect(builder.fits(1024 * 1024)).toBe(true);
    expect(builder.finish().bytes.length).toBeLessThanOrEqual(MAX_PACK_BYTES);
    expect(() => new PackBuilder().finish()).toThrow(RangeError);
    expect(new PackBuilder().fits(8 * 1024 * 1024)).toBe(true);
  });
});
