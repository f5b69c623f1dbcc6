// Cache node buckets: named prefix + id, versioned, encrypted, private, TLS only, lifecycle, readable by the
// distribution only, and standing replication exactly for the configured pairs.
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTopology, TOPOLOGY_CONTEXT_KEY } from '../../protocol/topology.ts';
import { cdkJsonContext, defaultDeployment, resourcesOf } from './synth.ts';

const synth = defaultDeployment();
afterAll(() => synth.cleanup());
const topology = parseTopology(cdkJsonContext()[TOPOLOGY_CONTEXT_KEY]);

const bucketName = (id: string) => ({ 'Fn::Join': ['', ['vmmig-cn-', { Ref: 'AWS::AccountId' }, `-${id}`]] });

describe.each(topology.cacheNodes.map((n) => [n.id, n] as const))('cache node %s', (id) => {
  const template = synth.template(`vmmig-cache-node-${id}`);

  it('keeps its chunk bucket when the stack goes, and a redeploy adopts it (--import-existing-resources)', () => {
    // CloudFormation imports an existing resource into a change set only when it has a custom name and a Retain
    // deletion policy; a fixed name that is deleted with the stack would be fine too, but chunks are worth keeping.
    template.hasResource('AWS::S3::Bucket', {
      Properties: Match.objectLike({ BucketName: bucketName(id) }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('has its chunk bucket named CACHE_BUCKET_PREFIX + id, versioned, encrypted, private, logged', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: bucketName(id),
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LoggingConfiguration: { DestinationBucketName: Match.anyValue(), LogFilePrefix: 'chunks/' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }),
        ]),
      },
    });
  });

  it('refuses plain HTTP and TLS below 1.2, and lets only this distribution read chunks/', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^Chunks') },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Deny', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudfront.amazonaws.com' },
            Action: 's3:GetObject',
            Resource: {
              'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Chunks'), 'Arn'] }, '/chunks/*']],
            },
            Condition: {
              StringEquals: {
                'AWS:SourceArn': {
                  'Fn::Join': [
                    '',
                    Match.arrayWith([
                      Match.objectLike({
                        'Fn::GetStackOutput': Match.objectLike({
                          StackName: 'vmmig-edge',
                          Region: topology.homeRegion,
                        }),
                      }),
                    ]),
                  ],
                },
              },
            },
          }),
        ]),
      },
    });
  });

  it('replicates chunks exactly to the configured targets', () => {
    const targets = topology.replicationPairs.filter((p) => p.from === id).map((p) => p.to);
    const chunks = Object.values(resourcesOf(template, 'AWS::S3::Bucket')).find(
      (b) => JSON.stringify(b.Properties['BucketName']) === JSON.stringify(bucketName(id)),
    );
    const replication = chunks?.Properties['ReplicationConfiguration'] as
      | { Rules: { Destination: { Bucket: unknown }; Filter: unknown; Status: string }[] }
      | undefined;
    if (targets.length === 0) {
      expect(replication).toBeUndefined();
      template.resourceCountIs('AWS::IAM::Role', 0);
      return;
    }
    expect(replication?.Rules.map((r) => JSON.stringify(r.Destination.Bucket)).sort()).toEqual(
      targets
        .map((to) =>
          JSON.stringify({
            'Fn::Join': ['', ['arn:aws:s3:::vmmig-cn-', { Ref: 'AWS::AccountId' }, `-${to}`]],
          }),
        )
        .sort(),
    );
    for (const rule of replication?.Rules ?? []) {
      expect(rule).toMatchObject({ Status: 'Enabled', Filter: { Prefix: 'chunks/' } });
    }
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 's3.amazonaws.com' } })],
      },
    });
  });
});

it('deploys every replication target before its source', () => {
  for (const pair of topology.replicationPairs) {
    const from = synth.deployment.cacheNodes.get(pair.from);
    const to = synth.deployment.cacheNodes.get(pair.to);
    expect(from?.dependencies).toContain(to);
  }
});
