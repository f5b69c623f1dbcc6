// The deploy-time custom resource handlers: the CloudFormation response protocol and the registry seeder (the key
// pair generator's tests are in key-rotation.test.ts).
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import { type CustomResourceResult, respondTo } from '../../lib/custom-resources/cfn-response.ts';
import { seed } from '../../lib/custom-resources/seed-registry.ts';
import { parseTopology, TOPOLOGY_CONTEXT_KEY, type Topology } from '../../protocol/topology.ts';
import { cdkJsonContext } from './synth.ts';

const base = {
  ServiceToken: 'arn:aws:lambda:ap-northeast-1:123456789012:function:x',
  ResponseURL: 'https://cloudformation-custom-resource-response.example/response',
  StackId: 'arn:aws:cloudformation:ap-northeast-1:123456789012:stack/vmmig-edge/1',
  RequestId: 'request-1',
  LogicalResourceId: 'RegistrySeed',
  ResourceType: 'Custom::RegistrySeed',
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
