// The CloudFront distribution: one OAC origin and one signed-only behaviour per cache node, the prefix rewrite,
// immutable caching, logs, HTTPS only, and the signing key readable by the API role only.
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { NOT_FOUND, STRIP_CACHE_NODE_PREFIX } from '../../lib/edge/functions.ts';
import { parseTopology, TOPOLOGY_CONTEXT_KEY } from '../../protocol/topology.ts';
import { cdkJsonContext, defaultDeployment, resourcesOf } from './synth.ts';

const synth = defaultDeployment();
afterAll(() => synth.cleanup());
const template = synth.template('vmmig-edge');
const topology = parseTopology(cdkJsonContext()[TOPOLOGY_CONTEXT_KEY]);

type Behavior = Record<string, unknown> & { PathPattern?: string; TargetOriginId: string };
const config = Object.values(resourcesOf(template, 'AWS::CloudFront::Distribution'))[0]?.Properties[
  'DistributionConfig'
] as {
  Origins: { Id: string; DomainName: unknown; OriginAccessControlId: unknown; S3OriginConfig: unknown }[];
  DefaultCacheBehavior: Behavior;
  CacheBehaviors: Behavior[];
  Logging: unknown;
  ViewerCertificate?: unknown;
  HttpVersion: string;
  CustomErrorResponses: unknown[];
};

/** Runs a CloudFront Function's source (cloudfront-js-2.0 is plain JavaScript) on an event. */
function runFunction(source: string, event: unknown): unknown {
  const handler = new Function(`${source}\nreturn handler;`)() as (e: unknown) => unknown;
  return handler(event);
}

describe('distribution', () => {
  it('has one origin per cache node bucket, reached through its own origin access control', () => {
    expect(config.Origins.map((o) => o.Id).sort()).toEqual(
      topology.cacheNodes.map((n) => `cache-node-${n.id}`).sort(),
    );
    for (const node of topology.cacheNodes) {
      const origin = config.Origins.find((o) => o.Id === `cache-node-${node.id}`);
      expect(JSON.stringify(origin?.DomainName)).toContain(`-${node.id}.s3.${node.region}.`);
      expect(origin?.S3OriginConfig).toEqual({ OriginAccessIdentity: '' });
      expect(origin?.OriginAccessControlId).toEqual({
        'Fn::GetAtt': [expect.stringMatching(new RegExp(`^Oac${node.id}`)), 'Id'],
      });
    }
    template.resourcePropertiesCountIs(
      'AWS::CloudFront::OriginAccessControl',
      {
        OriginAccessControlConfig: {
          OriginAccessControlOriginType: 's3',
          SigningBehavior: 'always',
          SigningProtocol: 'sigv4',
        },
      },
      topology.cacheNodes.length,
    );
  });

  it('serves /<cacheNodeId>/chunks/* from that node, signed URLs only, HTTPS only, GET/HEAD only', () => {
    const keyGroup = { Ref: expect.stringMatching(/^SigningKeyKeyGroup/) };
    expect(config.CacheBehaviors.map((b) => [b.PathPattern, b.TargetOriginId]).sort()).toEqual(
      topology.cacheNodes.map((n) => [`/${n.id}/chunks/*`, `cache-node-${n.id}`]).sort(),
    );
    for (const b of [...config.CacheBehaviors, config.DefaultCacheBehavior]) {
      expect(b).toMatchObject({
        ViewerProtocolPolicy: 'https-only',
        AllowedMethods: ['GET', 'HEAD'],
        TrustedKeyGroups: [keyGroup],
        FunctionAssociations: [{ EventType: 'viewer-request', FunctionARN: expect.anything() }],
      });
    }
  });

  it('caches chunks for a year keyed on the path only, and marks them immutable', () => {
    template.hasResourceProperties('AWS::CloudFront::CachePolicy', {
      CachePolicyConfig: {
        DefaultTTL: 31_536_000,
        MinTTL: 31_536_000,
        MaxTTL: 31_536_000,
        ParametersInCacheKeyAndForwardedToOrigin: {
          QueryStringsConfig: { QueryStringBehavior: 'none' },
          HeadersConfig: { HeaderBehavior: 'none' },
          CookiesConfig: { CookieBehavior: 'none' },
        },
      },
    });
    template.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: {
        CustomHeadersConfig: {
          Items: [{ Header: 'Cache-Control', Value: 'public, max-age=31536000, immutable', Override: true }],
        },
      },
    });
    expect(config.CustomErrorResponses).toEqual([
      { ErrorCode: 403, ErrorCachingMinTTL: 0 },
      { ErrorCode: 404, ErrorCachingMinTTL: 0 },
    ]);
  });

  it('writes standard access logs to a bucket that accepts them', () => {
    expect(config.Logging).toMatchObject({
      Bucket: { 'Fn::GetAtt': [expect.stringMatching(/^AccessLogs/), 'RegionalDomainName'] },
      Prefix: 'cloudfront/',
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerPreferred' }] },
      PublicAccessBlockConfiguration: Match.objectLike({ BlockPublicPolicy: true }),
    });
  });

  it('uses the default certificate without a custom domain (TLS floor set by the agents, see the CFR4 reason)', () => {
    // No ViewerCertificate: CloudFront's default *.cloudfront.net certificate.
    expect(config.ViewerCertificate).toBeUndefined();
    expect(config.HttpVersion).toBe('http2and3');
  });
});

describe('signing key', () => {
  it('feeds the generated public key of generation 1 into the only key of the trusted key group', () => {
    // Rotation (generation 2 and later) is in key-rotation.test.ts.
    template.resourceCountIs('AWS::CloudFront::PublicKey', 1);
    template.hasResourceProperties('AWS::CloudFront::PublicKey', {
      PublicKeyConfig: {
        EncodedKey: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SigningKeyGen1KeyPair'), 'PublicKeyPem'] },
      },
    });
    template.hasResourceProperties('AWS::CloudFront::KeyGroup', {
      KeyGroupConfig: { Items: [{ Ref: Match.stringLikeRegexp('^SigningKeyGen1PublicKey') }] },
    });
    template.hasResourceProperties('Custom::EdgeKeyPair', {
      Generation: '1',
      SecretArn: { Ref: Match.stringLikeRegexp('^SigningKeyGen1PrivateKey') },
    });
  });

  it('denies reading the private key to every principal but the API role', () => {
    template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      ResourcePolicy: {
        Statement: [
          {
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 'secretsmanager:GetSecretValue',
            Condition: {
              StringNotEquals: {
                'aws:PrincipalArn': {
                  'Fn::Join': ['', ['arn:aws:iam::', { Ref: 'AWS::AccountId' }, ':role/vmmig-api']],
                },
              },
            },
          },
        ],
      },
    });
  });

  it('lets the generator write the key but not read it', () => {
    const statements = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).flatMap(
      (p) => (p.Properties['PolicyDocument'] as { Statement: { Action: string | string[] }[] }).Statement,
    );
    const all = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(all).toContain('secretsmanager:PutSecretValue');
    expect(all).not.toContain('secretsmanager:GetSecretValue');
  });
});

describe('CloudFront Functions', () => {
  const sha = 'ab'.padEnd(64, '0');

  it('maps /<cacheNodeId>/chunks/<hh>/<sha256> to the bucket key chunks/<hh>/<sha256>', () => {
    const out = runFunction(STRIP_CACHE_NODE_PREFIX, {
      request: { uri: `/hkg/chunks/ab/${sha}`, querystring: {} },
    });
    expect(out).toEqual({ uri: `/chunks/ab/${sha}`, querystring: {} });
  });

  it('leaves nothing to the origin for a bare prefix', () => {
    expect(runFunction(STRIP_CACHE_NODE_PREFIX, { request: { uri: '/hkg' } })).toEqual({ uri: '/' });
  });

  it('answers 404 outside the cache node paths', () => {
    expect(runFunction(NOT_FOUND, { request: { uri: '/index.html' } })).toEqual({
      statusCode: 404,
      statusDescription: 'Not Found',
    });
  });

  it('uses the cloudfront-js-2.0 runtime', () => {
    template.resourcePropertiesCountIs(
      'AWS::CloudFront::Function',
      { FunctionConfig: Match.objectLike({ Runtime: 'cloudfront-js-2.0' }) },
      2,
    );
  });
});
