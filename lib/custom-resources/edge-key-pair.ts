// Deploy-time Lambda code: makes the key pair of one generation of the CloudFront trusted key group. The private key
// goes straight into that generation's secret (never into a template or a log) exactly once, on Create; the public
// key is returned for AWS::CloudFront::PublicKey. Update and Delete never write a key: a CloudFront public key is
// immutable, so a new key is a new generation (context `vmmig:edgeKeyGeneration`), i.e. new resources.
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import {
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { type CustomResourceEvent, type CustomResourceResult, respondTo } from './cfn-response.ts';

export interface EdgeKeyPairProperties {
  /** This generation's own secret; no other generation writes to it. */
  readonly SecretArn: string;
  /** The generation (context `vmmig:edgeKeyGeneration`); also part of the resource's logical id. */
  readonly Generation: string;
}

/** Thrown where writing a key would replace one that a CloudFront public key may already stand for. */
export class KeyPairImmutableError extends Error {
  override readonly name = 'KeyPairImmutableError';
}

/**
 * The physical id carries the secret's ARN and the public key (both public, ~500 of the 1,024 characters a physical
 * id may have): CloudFormation hands it back on Update and Delete, so those answer without generating a key and
 * without reading the private one, which only the signer may read.
 */
export function physicalIdOf(secretArn: string, publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return `${secretArn}|${der.toString('base64')}`;
}

export function parsePhysicalId(physicalId: string): { secretArn: string; publicKeyPem: string } {
  const [secretArn, der, ...rest] = physicalId.split('|');
  if (!secretArn || !der || rest.length > 0) {
    throw new KeyPairImmutableError(
      `physical id ${physicalId} names no key pair (made before keys had generations?); ` +
        'bump context vmmig:edgeKeyGeneration to make a new one',
    );
  }
  const publicKeyPem = createPublicKey({ key: Buffer.from(der, 'base64'), format: 'der', type: 'spki' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
  return { secretArn, publicKeyPem };
}

/**
 * The version id of the key written for this request: a retry of the same Create (Lambda retries when the answer to
 * CloudFormation failed) reuses it, and Secrets Manager refuses a second, different value under one version id.
 */
export const versionIdOf = (event: CustomResourceEvent): string =>
  createHash('sha256').update(`${event.StackId}|${event.LogicalResourceId}|${event.RequestId}`).digest('hex');

export async function edgeKeyPair(
  event: CustomResourceEvent,
  secrets: Pick<SecretsManagerClient, 'send'>,
): Promise<CustomResourceResult> {
  // Delete: nothing to undo here. The generation's secret is its own resource and goes with it; other generations'
  // secrets are not this resource's.
  if (event.RequestType === 'Delete') return { physicalResourceId: event.PhysicalResourceId };
  const props = event.ResourceProperties as unknown as EdgeKeyPairProperties;

  if (event.RequestType === 'Update') {
    // A property change, or the rollback of one: the key stays what it is. Only the secret it lives in matters; a
    // rollback returns to that secret, so only the forward change to another secret is refused.
    const { secretArn, publicKeyPem } = parsePhysicalId(event.PhysicalResourceId);
    if (props.SecretArn !== secretArn) {
      throw new KeyPairImmutableError(
        `the key pair of generation ${props.Generation} lives in ${secretArn}; a key is never moved or rewritten: ` +
          'bump context vmmig:edgeKeyGeneration for a new key pair in a new secret',
      );
    }
    return { physicalResourceId: event.PhysicalResourceId, data: { PublicKeyPem: publicKeyPem } };
  }

  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  try {
    await secrets.send(
      new PutSecretValueCommand({
        SecretId: props.SecretArn,
        SecretString: privateKey,
        ClientRequestToken: versionIdOf(event),
      }),
    );
  } catch (err) {
    if (err instanceof ResourceExistsException) {
      // An earlier attempt of this request stored its key and may have answered with its public key: never store
      // another one. Failing rolls this generation back; the next deployment makes it afresh.
      throw new KeyPairImmutableError(
        `${props.SecretArn} already holds the key this request wrote; not writing a second one`,
      );
    }
    throw err;
  }
  return { physicalResourceId: physicalIdOf(props.SecretArn, publicKey), data: { PublicKeyPem: publicKey } };
}

let client: SecretsManagerClient | undefined;

export const handler = (event: CustomResourceEvent): Promise<void> => {
  client ??= new SecretsManagerClient({});
  const secrets = client;
  return respondTo(event, (e) => edgeKeyPair(e, secrets));
};
