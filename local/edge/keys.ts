// Key pairs for signed edge URLs: CloudFront takes an RSA 2048 public key in PEM (SPKI); the signer takes the
// private key in PEM. The local cloud generates one and persists it; tests generate their own.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

export interface EdgeKeyPair {
  readonly publicKeyPem: string;
  readonly privateKeyPem: string;
}

export function generateEdgeKeyPair(): EdgeKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

/** An id shaped like CloudFront public key ids (`K` and 13 upper-case letters or digits). */
export function generateKeyPairId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  return `K${[...randomBytes(13)].map((b) => alphabet[b % alphabet.length]).join('')}`;
}
