// Deploy-time Lambda code: makes the key pair of the CloudFront trusted key group. The private key goes straight
// into Secrets Manager (never into a template or a log); the public key is returned for AWS::CloudFront::PublicKey.
import { generateKeyPairSync } from 'node:crypto';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { type CustomResourceEvent, type CustomResourceResult, respondTo } from './cfn-response.ts';

export interface EdgeKeyPairProperties {
  readonly SecretArn: string;
  /** Changing it (context `vmmig:edgeKeyGeneration`) rotates the key pair. */
  readonly Generation: string;
}

export const PHYSICAL_ID = 'edge-key-pair';

export async function edgeKeyPair(
  event: CustomResourceEvent,
  secrets: Pick<SecretsManagerClient, 'send'>,
): Promise<CustomResourceResult> {
  // Delete: the secret goes with its own resource. CloudFormation sends Update only when a property changed,
  // i.e. a new generation or a new secret: both want a new key pair.
  if (event.RequestType === 'Delete') return { physicalResourceId: event.PhysicalResourceId };
  const props = event.ResourceProperties as unknown as EdgeKeyPairProperties;
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  await secrets.send(new PutSecretValueCommand({ SecretId: props.SecretArn, SecretString: privateKey }));
  return { physicalResourceId: PHYSICAL_ID, data: { PublicKeyPem: publicKey } };
}

let client: SecretsManagerClient | undefined;

export const handler = (event: CustomResourceEvent): Promise<void> => {
  client ??= new SecretsManagerClient({});
  const secrets = client;
  return respondTo(event, (e) => edgeKeyPair(e, secrets));
};
