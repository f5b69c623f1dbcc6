// Signs edge (CloudFront) URLs for chunk downloads. The private key comes from the environment locally and
// from Secrets Manager on AWS; it is loaded and parsed once per process.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { getSignedUrl } from '@aws-sdk/cloudfront-signer';

export class EdgeSigner {
  private key: Promise<KeyObject> | undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly keyPairId: string,
    private readonly loadPrivateKey: () => Promise<string>,
  ) {}

  /** `<edge>/<cacheNodeId>/<key>`, valid until `expiresAt` (canned policy). */
  async sign(cacheNodeId: string, key: string, expiresAt: Date): Promise<string> {
    // Parsed once: given the PEM, every signature parses it again, over half of its cost (one URL per chunk).
    this.key ??= this.loadPrivateKey().then((pem) => createPrivateKey(pem));
    const privateKey = await this.key;
    const url = `${this.baseUrl.replace(/\/+$/, '')}/${cacheNodeId}/${key}`;
    return getSignedUrl({
      url,
      keyPairId: this.keyPairId,
      // The signer hands the key to crypto's Sign.sign({ key }), which takes a KeyObject as well as a PEM; its
      // declared type names only the latter.
      privateKey: privateKey as unknown as string,
      dateLessThan: expiresAt.toISOString(),
    });
  }
}
