// The key pairs behind the CloudFront trusted key group, one per generation (context `vmmig:edgeKeyGeneration`),
// generated at deploy time by a small Lambda-backed custom resource. Each generation has its own secret (readable by
// the API function's role only: an explicit Deny for every other principal), its own custom resource and its own
// AWS::CloudFront::PublicKey, all with the generation in their logical ids. CloudFront cannot change a public key,
// so rotating is replacing: generation N is created beside N-1, the key group trusts both (URLs signed with N-1 stay
// valid until they expire), signers switch to N, and the next bump removes N-1.
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
  /** The only principal that may read a private key: the role of the function that signs URLs. */
  readonly readerRoleArn: string;
  /** The generation signers use; bump by one to rotate. The one before stays trusted. */
  readonly generation: number;
  readonly logRetention: logs.RetentionDays;
}

interface EdgeKeyGenerationProps {
  readonly generation: number;
  readonly readerRoleArn: string;
  readonly generator: BaseFunction;
}

/** One generation: its secret, the custom resource that writes the private key into it once, its public key. */
export class EdgeKeyGeneration extends Construct {
  readonly generation: number;
  readonly secret: secretsmanager.Secret;
  readonly publicKey: cloudfront.PublicKey;

  constructor(scope: Construct, id: string, props: EdgeKeyGenerationProps) {
    super(scope, id);
    this.generation = props.generation;
    this.secret = new secretsmanager.Secret(this, 'PrivateKey', {
      description:
        `Private key (PEM), generation ${props.generation}, that signs CloudFront URLs for chunk downloads; ` +
        'written once at deploy time.',
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
      'The secret is half of a CloudFront key pair, and CloudFront cannot change a public key: rotation is a new ' +
        'generation of key pair, secret and public key, made by a deployment (bump context ' +
        'vmmig:edgeKeyGeneration, docs/deploy.md).',
    );
    // Write only: the generator never reads a private key back (see the custom resource's physical id).
    this.secret.grantWrite(props.generator.role);

    const properties: EdgeKeyPairProperties = {
      SecretArn: this.secret.secretArn,
      Generation: String(props.generation),
    };
    const keyPair = new CustomResource(this, 'KeyPair', {
      serviceToken: props.generator.functionArn,
      resourceType: 'Custom::EdgeKeyPair',
      properties,
    });
    this.publicKey = new cloudfront.PublicKey(this, 'PublicKey', {
      encodedKey: keyPair.getAttString('PublicKeyPem'),
      comment: `vmmig chunk download signing key, generation ${props.generation}`,
    });
  }
}

export class EdgeKeyPair extends Construct {
  /** The generation signers use. */
  readonly current: EdgeKeyGeneration;
  /** The generation before, still trusted so that URLs it signed stay valid; absent at generation 1. */
  readonly previous: EdgeKeyGeneration | undefined;
  readonly keyGroup: cloudfront.KeyGroup;

  constructor(scope: Construct, id: string, props: EdgeKeyPairProps) {
    super(scope, id);
    const generator = new BaseFunction(this, 'Generator', {
      entry: 'lib/custom-resources/edge-key-pair.ts',
      description: 'Deploy time: generates a CloudFront signing key pair, once per generation',
      timeout: Duration.seconds(30),
      logRetention: props.logRetention,
    });
    const generation = (n: number) =>
      new EdgeKeyGeneration(this, `Gen${n}`, {
        generation: n,
        readerRoleArn: props.readerRoleArn,
        generator,
      });
    this.previous = props.generation > 1 ? generation(props.generation - 1) : undefined;
    this.current = generation(props.generation);
    this.keyGroup = new cloudfront.KeyGroup(this, 'KeyGroup', {
      items: [this.previous, this.current].flatMap((g) => (g ? [g.publicKey] : [])),
      comment: 'Signers of vmmig chunk download URLs: the current generation and the one before',
    });
  }
}
