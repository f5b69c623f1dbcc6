import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { base64Sha256, chunkKey, hexSha256FromBase64, parseChunkKey } from '../../../protocol/chunk-key.ts';

const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

describe('chunk keys', () => {
  it('puts a chunk under its first two hex digits', () => {
    expect(chunkKey(EMPTY)).toBe(`chunks/e3/${EMPTY}`);
  });

  it('parses back what it makes', () => {
    fc.assert(
      fc.property(hex64, (sha) => {
        expect(parseChunkKey(chunkKey(sha))).toBe(sha);
      }),
    );
  });

  it('refuses anything but 64 lowercase hex digits', () => {
    for (const bad of [EMPTY.toUpperCase(), EMPTY.slice(1), `${EMPTY}0`, '', `../${EMPTY.slice(3)}`]) {
      expect(() => chunkKey(bad)).toThrow(/64 lowercase hex/);
    }
  });

  it('does not parse keys that are not chunk keys', () => {
    for (const key of [
      `chunks/e4/${EMPTY}`,
      `chunks/${EMPTY}`,
      `chunks/E3/${EMPTY.toUpperCase()}`,
      `manifests/e3/${EMPTY}`,
      `chunks/e3/${EMPTY}.tmp`,
    ]) {
      expect(parseChunkKey(key)).toBeUndefined();
    }
  });
});

describe('S3 checksum header', () => {
  it('is the digest in base64', () => {
    expect(base64Sha256(EMPTY)).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    expect(base64Sha256(EMPTY)).toBe(createHash('sha256').update('').digest('base64'));
    expect(() => base64Sha256('xyz')).toThrow();
  });

  it('converts back to hex', () => {
    fc.assert(
      fc.property(hex64, (sha) => {
        expect(hexSha256FromBase64(base64Sha256(sha))).toBe(sha);
      }),
    );
    expect(hexSha256FromBase64('AAAA')).toBeUndefined();
  });
});
