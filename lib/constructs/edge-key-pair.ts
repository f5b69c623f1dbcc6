// The key pair behind the CloudFront trusted key group, generated at deploy time by a small Lambda-backed custom
// resource: the private key lands in Secrets Manager, readable by the API function's role only (an explicit Deny for
// every other principal), and the public key becomes the key group's only key.
import { CustomResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { EdgeKeyPairProperties } from '../custom-resources/edge-key-pair.ts';
import { acknowledge } from '../nag.ts';
import { BaseFunction } from './base-function.ts';

export interface EdgeKeyPairProps {
  /** The only principal that may read the private key: the role of the function that signs URLs. */
  readonly readerRoleArn: string;
  /** Bump to rotate. */
  readonly generation: number;
  readonly logRetention: logs.RetentionDays;
}

export class EdgeKeyPair extends Construct {
  readonly secret: secretsmanager.Secret;
  readonly publicKey: cloudfront.PublicKey;
  readonly keyGroup: cloudfront.KeyGroup;

  constructor(scope: Construct, id: string, props: EdgeKeyPairProps) {
    super(scope, id);
    this.secret = new secretsmanager.Secret(this, 'PrivateKey', {
      description:
        'Private key (PEM) that signs CloudFront URLs for chunk downloads; written at deploy time.',
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.secret.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyTheSignerReads',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['secretsmanager:GetSecretValue'],
        resources: ['*'],
        conditions: { StringNotEquals: { 'aws:PrincipalArn': props.readerRoleArn } },
      }),
    );
    acknowledge(
      this.secret,
      'AwsSolutions-SMG4',
      'The secret is half of a CloudFront key pair: a Secrets Manager rotation Lambda cannot replace the public ' +
        'key in the key group, so rotation is a deployment (bump context vmmig:edgeKeyGeneration, docs/deploy.md).',
    );

    const generator = new BaseFunction(this, 'Generator', {
      entry: 'lib/custom-resources/edge-key-pair.ts',
      description: 'Deploy time: generates the CloudFront signing key pair',
      timeout: Duration.seconds(30),
      logRetention: props.logRetention,
    });
    this.secret.grantWrite(generator.role);

    const properties: EdgeKeyPairProperties = {
      SecretArn: this.secret.secretArn,
      Generation: String(props.generation),
    };
    const keyPair = new CustomResource(this, 'Resource', {
      serviceToken: generator.functionArn,
      resourceType: 'Custom::EdgeKeyPair',
      properties,
    });
    this.publicKey = new cloudfront.PublicKey(this, 'PublicKey', {
      encodedKey: keyPair.getAttString('PublicKeyPem'),
      comment: `vmmig chunk download signing key, generation ${props.generation}`,
    });
    this.keyGroup = new cloudfront.KeyGroup(this, 'KeyGroup', {
      items: [this.publicKey],
      comment: 'Signers of vmmig chunk download URLs',
    });
  }
}
