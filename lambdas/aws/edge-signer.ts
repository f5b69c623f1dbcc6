// Signs edge (CloudFront) URLs for chunk downloads. The private key comes from the environment locally and
// from Secrets Manager on AWS; it is loaded once per process.
import { getSignedUrl } from '@aws-sdk/cloudfront-signer';

export class EdgeSigner {
  private key: Promise<string> | undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly keyPairId: string,
    private readonly loadPrivateKey: () => Promise<string>,
  ) {}

  /** `<edge>/<cacheNodeId>/<key>`, valid until `expiresAt` (canned policy). */
  async sign(cacheNodeId: string, key: string, expiresAt: Date): Promise<string> {
    this.key ??= this.loadPrivateKey();
    const privateKey = await this.key;
    const url = `${this.baseUrl.replace(/\/+$/, '')}/${cacheNodeId}/${key}`;
    return getSignedUrl({
      url,
      keyPairId: this.keyPairId,
      privateKey,
      dateLessThan: expiresAt.toISOString(),
    });
  }
}
