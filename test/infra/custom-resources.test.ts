// The deploy-time custom resource handlers: the CloudFormation response protocol, the key pair generator (its
// public key verifies what the API's signer signs with the private key it stored), and the registry seeder.
import { createPublicKey } from 'node:crypto';
import type { PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import { EdgeSigner } from '../../lambdas/aws/edge-signer.ts';
import { type CustomResourceResult, respondTo } from '../../lib/custom-resources/cfn-response.ts';
import { edgeKeyPair } from '../../lib/custom-resources/edge-key-pair.ts';
import { seed } from '../../lib/custom-resources/seed-registry.ts';
import { verifySignedUrl } from '../../local/edge/signature.ts';
import { parseTopology, TOPOLOGY_CONTEXT_KEY, type Topology } from '../../protocol/topology.ts';
import { cdkJsonContext } from './synth.ts';

const base = {
  ServiceToken: 'arn:aws:lambda:ap-northeast-1:123456789012:function:x',
  ResponseURL: 'https://cloudformation-custom-resource-response.example/response',
  StackId: 'arn:aws:cloudformation:ap-northeast-1:123456789012:stack/vmmig-edge/1',
  RequestId: 'request-1',
  LogicalResourceId: 'SigningKey',
  ResourceType: 'Custom::EdgeKeyPair',
};
const createEvent = (props: Record<string, string>): CloudFormationCustomResourceEvent => ({
  ...base,
  RequestType: 'Create',
  ResourceProperties: { ServiceToken: base.ServiceToken, ...props },
});

/** A fetch that records what the handler sends to CloudFormation. */
function recorder(status = 200) {
  const sent: { url: string; init: RequestInit }[] = [];
  const send = (async (url: string, init: RequestInit) => {
    sent.push({ url, init });
    return new Response(null, { status });
  }) as unknown as typeof fetch;
  return { sent, send, body: () => JSON.parse(String(sent[0]?.init.body)) as Record<string, unknown> };
}

describe('CloudFormation response', () => {
  it('reports SUCCESS with the physical id and data to the presigned URL', async () => {
    const r = recorder();
    await respondTo(createEvent({}), async () => ({ physicalResourceId: 'p-1', data: { A: 'b' } }), r.send);
    expect(r.sent[0]?.url).toBe(base.ResponseURL);
    expect(r.sent[0]?.init.method).toBe('PUT');
    expect(r.body()).toEqual({
      Status: 'SUCCESS',
      PhysicalResourceId: 'p-1',
      Data: { A: 'b' },
      StackId: base.StackId,
      RequestId: base.RequestId,
      LogicalResourceId: base.LogicalResourceId,
    });
  });

  it('reports FAILED with the reason; a failed Create gets a physical id so the rollback can proceed', async () => {
    const r = recorder();
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const work = async (): Promise<CustomResourceResult> => {
      throw new TypeError('no topology');
    };
    await respondTo(createEvent({}), work, r.send);
    expect(r.body()).toMatchObject({
      Status: 'FAILED',
      Reason: 'TypeError: no topology',
      PhysicalResourceId: 'request-1',
    });
    expect(logged).toHaveBeenCalledOnce();
    logged.mockRestore();
  });

  it('fails loudly when CloudFormation refuses the response', async () => {
    const r = recorder(403);
    await expect(
      respondTo(createEvent({}), async () => ({ physicalResourceId: 'p' }), r.send),
    ).rejects.toThrow(/HTTP 403/);
  });
});

describe('edge key pair', () => {
  it('stores a private key whose public half verifies URLs the API signs with it', async () => {
    const puts: PutSecretValueCommand['input'][] = [];
    const secrets = { send: async (c: PutSecretValueCommand) => void puts.push(c.input) } as never;
    const result = await edgeKeyPair(createEvent({ SecretArn: 'arn:secret', Generation: '1' }), secrets);

    expect(puts).toHaveLength(1);
    expect(puts[0]?.SecretId).toBe('arn:secret');
    const privateKeyPem = String(puts[0]?.SecretString);
    const publicKeyPem = result.data?.['PublicKeyPem'] ?? '';
    expect(publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' })).toBe(publicKeyPem);
    expect(JSON.stringify(result)).not.toContain('PRIVATE KEY');

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

  it('leaves the secret alone on Delete', async () => {
    const secrets = { send: async () => expect.unreachable('no call on delete') } as never;
    const result = await edgeKeyPair(
      {
        ...base,
        RequestType: 'Delete',
        PhysicalResourceId: 'edge-key-pair',
        ResourceProperties: { ServiceToken: '' },
      },
      secrets,
    );
    expect(result).toEqual({ physicalResourceId: 'edge-key-pair' });
  });
});

describe('registry seed', () => {
  it('seeds the topology of the Topology property, buckets named CACHE_BUCKET_PREFIX + id', async () => {
    const topology = parseTopology(cdkJsonContext()[TOPOLOGY_CONTEXT_KEY]);
    const calls: { topology: Topology; hkgBucket: string }[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const result = await seed(
      createEvent({ Topology: JSON.stringify(topology), CacheBucketPrefix: 'vmmig-cn-123456789012-' }),
      async (t, bucketFor) => {
        calls.push({ topology: t, hkgBucket: bucketFor('hkg') });
        return { createdCacheNodes: ['hkg'], createdDataCenters: ['dc-gz', 'dc-sh'] };
      },
    );
    log.mockRestore();
    expect(calls).toEqual([{ topology, hkgBucket: 'vmmig-cn-123456789012-hkg' }]);
    expect(result).toEqual({
      physicalResourceId: 'registry-seed',
      data: { CreatedCacheNodes: 'hkg', CreatedDataCenters: 'dc-gz,dc-sh' },
    });
  });

  it('refuses a topology that does not validate, naming the field', async () => {
    const bad = { ...parseTopology(cdkJsonContext()[TOPOLOGY_CONTEXT_KEY]), homeRegion: 'nowhere' };
    await expect(
      seed(createEvent({ Topology: JSON.stringify(bad), CacheBucketPrefix: 'p-' }), async () =>
        expect.unreachable(),
      ),
    ).rejects.toThrow(/topology\.homeRegion/);
  });
});
