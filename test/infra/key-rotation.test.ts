// Rotating the CloudFront signing key is replacing it: each generation (context `vmmig:edgeKeyGeneration`) has its
// own secret, custom resource and AWS::CloudFront::PublicKey, the key group trusts the current generation and the one
// before, and signers use the current one. The generator writes a private key once, on Create, and never again.
import { createPublicKey } from 'node:crypto';
import {
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { Template } from 'aws-cdk-lib/assertions';
import type {
  CloudFormationCustomResourceCreateEvent,
  CloudFormationCustomResourceDeleteEvent,
  CloudFormationCustomResourceUpdateEvent,
} from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { EdgeSigner } from '../../lambdas/aws/edge-signer.ts';
import { ENV } from '../../lambdas/config.ts';
import {
  edgeKeyPair,
  KeyPairImmutableError,
  parsePhysicalId,
  versionIdOf,
} from '../../lib/custom-resources/edge-key-pair.ts';
import { verifySignedUrl } from '../../local/edge/signature.ts';
import { resourcesOf, synthesize } from './synth.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
type Json = Record<string, unknown>;

describe('rotation by replacement (generation 1 → 2)', () => {
  const gen1 = synthesize({ 'vmmig:edgeKeyGeneration': 1 }, { nag: false });
  const gen2 = synthesize({ 'vmmig:edgeKeyGeneration': 2 }, { nag: true });
  afterAll(() => {
    gen1.cleanup();
    gen2.cleanup();
  });
  const edge1 = gen1.template('vmmig-edge');
  const edge2 = gen2.template('vmmig-edge');
  const resources = (t: Template) => t.toJSON()['Resources'] as Resources;
  const idsOf = (t: Template, type: string) => Object.keys(resourcesOf(t, type)).sort();
  const only = <T>(items: readonly T[]): T => {
    expect(items).toHaveLength(1);
    return items[0] as T;
  };
  const publicKeyOf = (t: Template, generation: number) =>
    only(
      Object.entries(resourcesOf(t, 'AWS::CloudFront::PublicKey'))
        .filter(([, r]) => JSON.stringify(r.Properties).includes(`generation ${generation}"`))
        .map(([id]) => id),
    );
  const [pk1, pk2] = [publicKeyOf(edge1, 1), publicKeyOf(edge2, 2)];

  it('creates a new PublicKey for generation 2 instead of updating the one of generation 1', () => {
    expect(pk1).toMatch(/Gen1/);
    expect(pk2).toMatch(/Gen2/);
    expect(idsOf(edge1, 'AWS::CloudFront::PublicKey')).toEqual([pk1]);
    expect(idsOf(edge2, 'AWS::CloudFront::PublicKey')).toEqual([pk1, pk2].sort());
  });

  it('leaves every resource of generation 1 exactly as it was, so CloudFormation sends it no update', () => {
    const before = resources(edge1);
    const gen1Ids = Object.keys(before).filter((id) => id.includes('Gen1'));
    expect(gen1Ids.map((id) => before[id]?.Type).sort()).toEqual([
      'AWS::CloudFront::PublicKey',
      'AWS::SecretsManager::ResourcePolicy',
      'AWS::SecretsManager::Secret',
      'Custom::EdgeKeyPair',
    ]);
    const after = resources(edge2);
    for (const id of gen1Ids) expect(after[id], id).toEqual(before[id]);
  });

  it('gives each generation its own secret and key pair resource', () => {
    const pairs = Object.values(resourcesOf(edge2, 'Custom::EdgeKeyPair')).map((r) => r.Properties);
    expect(pairs.map((p) => [p['Generation'], p['SecretArn']])).toEqual([
      ['1', { Ref: expect.stringMatching(/^SigningKeyGen1PrivateKey/) }],
      ['2', { Ref: expect.stringMatching(/^SigningKeyGen2PrivateKey/) }],
    ]);
    expect(idsOf(edge2, 'AWS::SecretsManager::Secret')).toHaveLength(2);
  });

  it('trusts generation 1 beside generation 2 in the same key group', () => {
    const group = (t: Template) => only(Object.entries(resourcesOf(t, 'AWS::CloudFront::KeyGroup')));
    const [id1, group1] = group(edge1);
    const [id2, group2] = group(edge2);
    // The same key group: the distribution's TrustedKeyGroups do not change.
    expect(id2).toBe(id1);
    expect((group1.Properties['KeyGroupConfig'] as Json)['Items']).toEqual([{ Ref: pk1 }]);
    expect((group2.Properties['KeyGroupConfig'] as Json)['Items']).toEqual([{ Ref: pk1 }, { Ref: pk2 }]);
  });

  describe('signers switch to generation 2', () => {
    const controlPlane = gen2.template('vmmig-control-plane');
    const edgeOutputs = edge2.toJSON()['Outputs'] as Record<string, { Value: unknown }>;
    /** What a control-plane value names in the edge stack (cross-stack values arrive as Fn::GetStackOutput). */
    const inEdge = (value: unknown): unknown => {
      const ref = (value as { 'Fn::GetStackOutput'?: { StackName: string; OutputName: string } })[
        'Fn::GetStackOutput'
      ];
      expect(ref?.StackName).toBe('vmmig-edge');
      return edgeOutputs[ref?.OutputName ?? '']?.Value;
    };
    const signers = Object.values(resourcesOf(controlPlane, 'AWS::Lambda::Function'))
      .map((f) => (f.Properties['Environment'] as { Variables?: Json } | undefined)?.Variables ?? {})
      .filter((vars) => ENV.edgeKeyPairId in vars);
    const secret2 = only(idsOf(edge2, 'AWS::SecretsManager::Secret').filter((id) => id.includes('Gen2')));

    it('reads the key pair id and the secret of generation 2 from the environment', () => {
      expect(signers.length).toBeGreaterThan(0);
      for (const vars of signers) {
        expect(inEdge(vars[ENV.edgeKeyPairId])).toEqual({ Ref: pk2 });
        expect(inEdge(vars[ENV.edgePrivateKeySecretArn])).toEqual({ Ref: secret2 });
      }
    });

    it('may read the secret of generation 2 only', () => {
      const reads = Object.values(resourcesOf(controlPlane, 'AWS::IAM::Policy'))
        .flatMap(
          (p) =>
            (
              p.Properties['PolicyDocument'] as {
                Statement: { Action: string | string[]; Resource: unknown }[];
              }
            ).Statement,
        )
        .filter((s) => [s.Action].flat().includes('secretsmanager:GetSecretValue'));
      expect(reads.length).toBeGreaterThan(0);
      for (const s of reads) expect(inEdge(s.Resource)).toEqual({ Ref: secret2 });
    });
  });
});

describe('the key pair generator (custom resource handler)', () => {
  const secrets = mockClient(SecretsManagerClient);
  const client = new SecretsManagerClient({ region: 'ap-northeast-1' });
  beforeEach(() => {
    secrets.reset();
    secrets.on(PutSecretValueCommand).resolves({});
  });

  const SECRET_1 =
    'arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:SigningKeyGen1PrivateKey-AbCdEf';
  const SECRET_2 =
    'arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:SigningKeyGen2PrivateKey-GhIjKl';
  const base = {
    ServiceToken: 'arn:aws:lambda:ap-northeast-1:123456789012:function:generator',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/response',
    StackId: 'arn:aws:cloudformation:ap-northeast-1:123456789012:stack/vmmig-edge/1',
    RequestId: '6f1c2d3e-0000-4000-8000-000000000001',
    LogicalResourceId: 'SigningKeyGen1KeyPairD8275308',
    ResourceType: 'Custom::EdgeKeyPair',
  };
  const props = (SecretArn: string, Generation = '1') => ({
    ServiceToken: base.ServiceToken,
    SecretArn,
    Generation,
  });
  const create = (overrides: Partial<CloudFormationCustomResourceCreateEvent> = {}) =>
    ({
      ...base,
      RequestType: 'Create',
      ResourceProperties: props(SECRET_1),
      ...overrides,
    }) as CloudFormationCustomResourceCreateEvent;
  const update = (
    physicalId: string,
    newProps: ReturnType<typeof props>,
    oldProps: ReturnType<typeof props>,
  ): CloudFormationCustomResourceUpdateEvent => ({
    ...base,
    RequestType: 'Update',
    PhysicalResourceId: physicalId,
    ResourceProperties: newProps,
    OldResourceProperties: oldProps,
  });
  /** Creates generation 1 and forgets the calls it made. */
  const created = async () => {
    const result = await edgeKeyPair(create(), client);
    const privateKeyPem = String(secrets.commandCalls(PutSecretValueCommand)[0]?.args[0].input.SecretString);
    secrets.resetHistory();
    return { result, privateKeyPem, publicKeyPem: result.data?.['PublicKeyPem'] ?? '' };
  };

  it('Create writes one private key, whose public half verifies URLs the API signs with it', async () => {
    const result = await edgeKeyPair(create(), client);
    const puts = secrets.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input);
    expect(puts).toEqual([
      {
        SecretId: SECRET_1,
        SecretString: expect.stringMatching(/^-----BEGIN PRIVATE KEY-----\n/),
        ClientRequestToken: versionIdOf(create()),
      },
    ]);
    const privateKeyPem = String(puts[0]?.SecretString);
    const publicKeyPem = result.data?.['PublicKeyPem'] ?? '';
    expect(publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' })).toBe(publicKeyPem);
    expect(JSON.stringify(result)).not.toContain('PRIVATE KEY');
    expect(parsePhysicalId(result.physicalResourceId)).toEqual({ secretArn: SECRET_1, publicKeyPem });
    expect(result.physicalResourceId.length).toBeLessThanOrEqual(1024);

    const signer = new EdgeSigner('https://d111.cloudfront.net', 'K2JCJMDEHXQW5F', async () => privateKeyPem);
    const sha = 'ab'.padEnd(64, '1');
    const url = new URL(await signer.sign('hkg', `chunks/ab/${sha}`, new Date(Date.now() + 60_000)));
    const verdict = verifySignedUrl(
      {
        origin: url.origin,
        target: `${url.pathname}${url.search}`,
        sourceIp: '192.0.2.1',
        now: Date.now() / 1000,
      },
      [{ keyPairId: 'K2JCJMDEHXQW5F', publicKey: createPublicKey(publicKeyPem) }],
    );
    expect(verdict).toEqual({ ok: true });
  });

  it('a repeated Create of one request writes under the same version id; Secrets Manager keeps the first key', async () => {
    expect(versionIdOf(create())).toMatch(/^[0-9a-f]{64}$/);
    expect(versionIdOf(create())).toBe(versionIdOf(create()));
    expect(versionIdOf(create({ RequestId: '6f1c2d3e-0000-4000-8000-000000000002' }))).not.toBe(
      versionIdOf(create()),
    );
    secrets
      .on(PutSecretValueCommand)
      .rejects(new ResourceExistsException({ message: 'version exists', $metadata: {} }));
    await expect(edgeKeyPair(create(), client)).rejects.toThrow(KeyPairImmutableError);
    expect(secrets.commandCalls(PutSecretValueCommand)).toHaveLength(1);
  });

  it('Update generates and writes nothing and answers with the key Create made', async () => {
    const { result, publicKeyPem } = await created();
    // A property change (here the service token) and its rollback: the same key, no call to Secrets Manager.
    for (const [now, old] of [
      [{ ...props(SECRET_1), ServiceToken: 'arn:other' }, props(SECRET_1)],
      [props(SECRET_1), { ...props(SECRET_1), ServiceToken: 'arn:other' }],
    ] as const) {
      const answer = await edgeKeyPair(update(result.physicalResourceId, now, old), client);
      expect(answer).toEqual({
        physicalResourceId: result.physicalResourceId,
        data: { PublicKeyPem: publicKeyPem },
      });
    }
    expect(secrets.calls()).toHaveLength(0);
  });

  it('Update refuses to move a key to another secret, and lets the rollback return to its own', async () => {
    const { result, publicKeyPem } = await created();
    await expect(
      edgeKeyPair(update(result.physicalResourceId, props(SECRET_2, '2'), props(SECRET_1)), client),
    ).rejects.toThrow(KeyPairImmutableError);
    const rollback = await edgeKeyPair(
      update(result.physicalResourceId, props(SECRET_1), props(SECRET_2, '2')),
      client,
    );
    expect(rollback.data).toEqual({ PublicKeyPem: publicKeyPem });
    expect(secrets.calls()).toHaveLength(0);
  });

  it('Update of a key pair made before generations (no key in its physical id) fails without writing', async () => {
    await expect(
      edgeKeyPair(update('edge-key-pair', props(SECRET_1), props(SECRET_1)), client),
    ).rejects.toThrow(/bump context vmmig:edgeKeyGeneration/);
    expect(secrets.calls()).toHaveLength(0);
  });

  it('Delete calls nothing: the generation’s secret is its own resource and goes with it', async () => {
    const { result } = await created();
    const event: CloudFormationCustomResourceDeleteEvent = {
      ...base,
      RequestType: 'Delete',
      PhysicalResourceId: result.physicalResourceId,
      ResourceProperties: props(SECRET_1),
    };
    expect(await edgeKeyPair(event, client)).toEqual({ physicalResourceId: result.physicalResourceId });
    expect(secrets.calls()).toHaveLength(0);
  });
});
