import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EdgeSigner } from '../../../../lambdas/aws/edge-signer.ts';
import { generateEdgeKeyPair } from '../../../../local/edge/keys.ts';
import { verifySignedUrl } from '../../../../local/edge/signature.ts';

describe('EdgeSigner', () => {
  const keys = generateEdgeKeyPair();
  const trusted = [{ keyPairId: 'K2JCJMDEHXQW5F', publicKey: createPublicKey(keys.publicKeyPem) }];
  const verdict = (signed: string, now = Date.now() / 1000) => {
    const url = new URL(signed);
    return verifySignedUrl(
      { origin: url.origin, target: `${url.pathname}${url.search}`, sourceIp: '192.0.2.1', now },
      trusted,
    );
  };

  it('signs canned-policy URLs the edge accepts until they expire, loading the key once', async () => {
    let loads = 0;
    const signer = new EdgeSigner('http://127.0.0.1:8080/', 'K2JCJMDEHXQW5F', async () => {
      loads++;
      return keys.privateKeyPem;
    });
    const expires = new Date(Date.now() + 60_000);
    const sha = 'cd'.padEnd(64, '2');
    const urls = await Promise.all(
      ['a', 'b', 'c'].map((n) => signer.sign('nrt', `chunks/cd/${sha}${n}`, expires)),
    );
    expect(loads).toBe(1);
    for (const url of urls) {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:8080\/nrt\/chunks\/cd\//);
      expect(verdict(url)).toEqual({ ok: true });
      expect(verdict(url, expires.getTime() / 1000 + 1)).toEqual({
        ok: false,
        reason: 'Request has expired',
      });
    }
    // A URL signed for one key does not open another.
    const other = new URL(urls[0] as string);
    other.pathname = other.pathname.replace(/a$/, 'b');
    expect(verdict(other.href)).toEqual({ ok: false, reason: 'Invalid signature' });
  });
});
