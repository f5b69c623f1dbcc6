// The optional `vmmig:*` context keys change what they promise and stay cdk-nag clean.
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { ENV } from '../../lambdas/config.ts';
import { synthesize } from './synth.ts';

const anchor =
  'arn:aws:rolesanywhere:ap-northeast-1:123456789012:trust-anchor/4f1c6c2e-0000-4000-8000-000000000000';
const certificateArn = 'arn:aws:acm:us-east-1:123456789012:certificate/1b2c3d4e-0000-4000-8000-000000000000';
// Values as `cdk -c key=value` passes them: text.
const synth = synthesize(
  {
    'vmmig:name': 'vmtest',
    'vmmig:account': '123456789012',
    'vmmig:edgeDomain': JSON.stringify({ domainName: 'edge.example.com', certificateArn }),
    'vmmig:rolesAnywhereTrustAnchorArn': anchor,
    'vmmig:adminPrincipalArns': '["arn:aws:iam::123456789012:role/ops"]',
    'vmmig:alarmEmail': 'ops@example.com',
    'vmmig:logRetentionDays': '90',
    'vmmig:apiThrottle': '{"rateLimit": 20, "burstLimit": 40}',
    'vmmig:edgeKeyGeneration': '3',
  },
  { nag: true },
);
afterAll(() => synth.cleanup());

describe('options', () => {
  it('vmmig:edgeDomain serves the custom domain with TLS 1.2_2021 and makes it EDGE_BASE_URL', () => {
    synth.template('vmtest-edge').hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['edge.example.com'],
        ViewerCertificate: {
          AcmCertificateArn: certificateArn,
          MinimumProtocolVersion: 'TLSv1.2_2021',
          SslSupportMethod: 'sni-only',
        },
      }),
    });
    synth.template('vmtest-control-plane').hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ [ENV.edgeBaseUrl]: 'https://edge.example.com' }) },
    });
  });

  it('vmmig:rolesAnywhereTrustAnchorArn restricts agent roles to that trust anchor', () => {
    synth.template('vmtest-control-plane').hasResourceProperties('AWS::IAM::Role', {
      RoleName: 'vmtest-agent-dc-gz',
      AssumeRolePolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Condition: {
              StringEquals: { 'aws:PrincipalTag/x509Subject/CN': 'dc-gz' },
              ArnEquals: { 'aws:SourceArn': anchor },
            },
          }),
        ]),
      },
    });
  });

  it('vmmig:adminPrincipalArns, vmmig:name and vmmig:account reach the API', () => {
    synth.template('vmtest-control-plane').hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          [ENV.adminPrincipalArns]:
            'arn:aws:iam::123456789012:role/vmtest-admin,arn:aws:iam::123456789012:role/ops',
          [ENV.agentRolePrefix]: 'vmtest-agent-',
          [ENV.cacheBucketPrefix]: 'vmtest-cn-123456789012-',
        }),
      },
    });
  });

  it('vmmig:alarmEmail subscribes to the alarm topic; vmmig:logRetentionDays and vmmig:apiThrottle apply', () => {
    const t = synth.template('vmtest-control-plane');
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
    t.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    t.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
    });
  });

  it('vmmig:edgeKeyGeneration makes that generation of the key pair and keeps only the one before it', () => {
    const pairs = synth.template('vmtest-edge').findResources('Custom::EdgeKeyPair');
    expect(Object.values(pairs).map((r) => r['Properties']['Generation'])).toEqual(['2', '3']);
  });

  it('pins every stack to vmmig:account', () => {
    expect(synth.deployment.ordered.map((s) => s.account)).toEqual(
      synth.deployment.ordered.map(() => '123456789012'),
    );
  });
});
