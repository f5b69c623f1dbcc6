// The control plane's security and wiring: tables as lambdas/aws/tables.ts defines them, IAM on every API route but
// /health, the Lambda defaults, least-privilege grants, the secret readable by the API only, status events, alarms.
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { TABLE_DEFINITIONS } from '../../lambdas/aws/tables.ts';
import { ENV } from '../../lambdas/config.ts';
import {
  ALL_FUNCTIONS,
  API_FUNCTION,
  COLLECTOR_FUNCTIONS,
  SCHEDULED_FUNCTIONS,
  TASK_FUNCTIONS,
} from '../../lambdas/functions.ts';
import { environmentFor, type ResourceValues } from '../../lambdas/needs.ts';
import { parseTopology, TOPOLOGY_CONTEXT_KEY } from '../../protocol/topology.ts';
import { cdkJsonContext, defaultDeployment, resourcesOf } from './synth.ts';

const synth = defaultDeployment();
afterAll(() => synth.cleanup());
const template = synth.template('vmmig-control-plane');
const topology = parseTopology(cdkJsonContext()[TOPOLOGY_CONTEXT_KEY]);

type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
const actions = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

/** The logical id of the role a function runs as. */
function roleOf(functionLogicalId: string): string {
  const fn = resourcesOf(template, 'AWS::Lambda::Function')[functionLogicalId];
  if (!fn) throw new Error(`no function ${functionLogicalId}`);
  return (fn.Properties['Role'] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
}

/** Every statement of the inline policies attached to a role. */
function statementsOf(roleLogicalId: string): Statement[] {
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties['Roles'] as { Ref: string }[]).some((r) => r.Ref === roleLogicalId))
    .flatMap((p) => (p.Properties['PolicyDocument'] as { Statement: Statement[] }).Statement);
}

/** Values for every variable (their names are what is compared). */
function placeholderValues(): Record<string, unknown> {
  return {
    region: 'r',
    tableNames: Object.fromEntries(TABLE_DEFINITIONS.map((d) => [d.id, d.id])),
    controlBucket: 'c',
    controlBucketRegion: 'r',
    cacheBucketPrefix: 'p',
    edgeBaseUrl: 'e',
    stateMachineArn: 's',
    edgeKeyPairId: 'k',
    edgeDistributionId: 'd',
    workQueuePrefix: 'w',
  };
}

function functionByDescription(prefix: string): [string, { Properties: Record<string, unknown> }] {
  const found = Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).filter(([, f]) =>
    String(f.Properties['Description']).startsWith(prefix),
  );
  expect(found, prefix).toHaveLength(1);
  return found[0] as [string, { Properties: Record<string, unknown> }];
}

/** The description prefix each construct gives its functions (migration-workflow, scheduled, cache-collector). */
const prefixOf = (definition: (typeof ALL_FUNCTIONS)[number]): string =>
  definition.kind === 'scheduled'
    ? 'Scheduled: '
    : definition.kind === 'api'
      ? ''
      : Object.values(COLLECTOR_FUNCTIONS).some((f) => f.name === definition.name)
        ? 'Cache collector: '
        : 'Migration workflow: ';

const envOf = (fn: { Properties: Record<string, unknown> }) =>
  (fn.Properties['Environment'] as { Variables: Record<string, unknown> }).Variables;

describe('tables', () => {
  it.each(TABLE_DEFINITIONS.map((d) => [d.id, d] as const))(
    '%s: on demand, PITR, encrypted, keys from tables.ts',
    (_, def) => {
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
        KeySchema: [
          { AttributeName: def.partitionKey.name, KeyType: 'HASH' },
          ...(def.sortKey ? [{ AttributeName: def.sortKey.name, KeyType: 'RANGE' }] : []),
        ],
        ...(def.indexes.length > 0
          ? {
              GlobalSecondaryIndexes: Match.arrayWith(
                def.indexes.map((i) =>
                  Match.objectLike({
                    IndexName: i.name,
                    KeySchema: Match.arrayWith([{ AttributeName: i.partitionKey.name, KeyType: 'HASH' }]),
                  }),
                ),
              ),
            }
          : {}),
        ...(def.ttlAttribute
          ? { TimeToLiveSpecification: { AttributeName: def.ttlAttribute, Enabled: true } }
          : {}),
      });
    },
  );

  it('retains every table when the stack is deleted', () => {
    const tables = template.findResources('AWS::DynamoDB::Table');
    expect(Object.keys(tables)).toHaveLength(TABLE_DEFINITIONS.length);
    for (const t of Object.values(tables))
      expect((t as { DeletionPolicy: string }).DeletionPolicy).toBe('Retain');
  });
});

describe('HTTP API', () => {
  it('authorizes every route with IAM except GET /health', () => {
    const routes = Object.values(resourcesOf(template, 'AWS::ApiGatewayV2::Route')).map((r) => [
      r.Properties['RouteKey'],
      r.Properties['AuthorizationType'],
    ]);
    expect(routes.sort()).toEqual([
      ['$default', 'AWS_IAM'],
      ['GET /health', 'NONE'],
    ]);
  });

  it('throttles and writes JSON access logs naming the caller', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      AccessLogSettings: {
        DestinationArn: Match.anyValue(),
        Format: Match.stringLikeRegexp('"caller":"\\$context.identity.userArn"'),
      },
    });
  });

  it('maps IAM principals like the local cloud: admin ARNs and the agent role prefix', () => {
    const [, api] = functionByDescription('Migration API');
    const env = envOf(api);
    expect(env[ENV.agentRolePrefix]).toBe('vmmig-agent-');
    expect(JSON.stringify(env[ENV.adminPrincipalArns])).toContain(':role/vmmig-admin');
    for (const name of [
      ENV.stateMachineArn,
      ENV.edgeBaseUrl,
      ENV.edgeKeyPairId,
      ENV.edgePrivateKeySecretArn,
      ENV.controlBucket,
      ENV.controlBucketRegion,
      ENV.cacheBucketPrefix,
      ...TABLE_DEFINITIONS.map((d) => d.envVar),
    ]) {
      expect(env[name], name).toBeDefined();
    }
    expect(env[ENV.edgePrivateKeyPem]).toBeUndefined();
  });
});

describe('Lambda functions', () => {
  const functions = resourcesOf(template, 'AWS::Lambda::Function');

  it('all run Node 24 on ARM64 with tracing, JSON logs to their own log group, and source maps', () => {
    // Workflow, scheduled, the cache collector, the API, the registry seeder.
    expect(Object.keys(functions).length).toBe(
      Object.keys(TASK_FUNCTIONS).length +
        Object.keys(SCHEDULED_FUNCTIONS).length +
        Object.keys(COLLECTOR_FUNCTIONS).length +
        2,
    );
    for (const [id, fn] of Object.entries(functions)) {
      expect(fn.Properties, id).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: expect.any(String) } },
      });
      expect(envOf(fn)['NODE_OPTIONS'], id).toBe('--enable-source-maps');
    }
    for (const lg of Object.values(resourcesOf(template, 'AWS::Logs::LogGroup'))) {
      expect(lg.Properties['RetentionInDays']).toBe(30);
    }
  });

  it('use no AWS managed policies', () => {
    for (const [id, role] of Object.entries(resourcesOf(template, 'AWS::IAM::Role'))) {
      expect(role.Properties['ManagedPolicyArns'], id).toBeUndefined();
    }
  });

  it('give each function exactly the variables its declaration derives (and the API its authorizer settings)', () => {
    const valuesWithKey = { ...placeholderValues(), edgePrivateKey: { secretArn: 'x' } } as ResourceValues;
    for (const definition of ALL_FUNCTIONS.filter((f) => f.kind !== 'api')) {
      const [, fn] = functionByDescription(`${prefixOf(definition)}${definition.description}`);
      const expected = Object.keys(environmentFor(definition.needs, valuesWithKey));
      expect(Object.keys(envOf(fn)).sort(), definition.name).toEqual(['NODE_OPTIONS', ...expected].sort());
    }
    const [, api] = functionByDescription('Migration API');
    expect(Object.keys(envOf(api)).sort()).toEqual(
      [
        'NODE_OPTIONS',
        ...Object.keys(environmentFor(API_FUNCTION.needs, valuesWithKey)),
        ENV.adminPrincipalArns,
        ENV.agentRolePrefix,
        ENV.agentAccountId,
      ].sort(),
    );
  });

  it('grant chunk access only where the code copies, presigns or evicts chunks', () => {
    const withChunks = Object.entries(functions)
      .filter(([id]) =>
        statementsOf(roleOf(id)).some((s) => JSON.stringify(s.Resource).includes('/chunks/*')),
      )
      .map(([, f]) => String(f.Properties['Description']));
    expect(withChunks.sort()).toEqual([
      expect.stringMatching(/^Cache collector: One pass of the cache collector/),
      'Migration API (the Hono app of lambdas/api)',
      expect.stringMatching(/^Migration workflow: CMN: server-side copies/),
    ]);
  });

  it('grant each function exactly the state machine actions its declaration lists; only the API stops executions', () => {
    for (const definition of ALL_FUNCTIONS) {
      const [id] = functionByDescription(`${prefixOf(definition)}${definition.description}`);
      const sfn = statementsOf(roleOf(id))
        .flatMap(actions)
        .filter((a) => a.startsWith('states:'))
        .sort();
      const e = definition.needs.executions;
      const expected = [
        ...(e?.start ? ['states:StartExecution'] : []),
        ...(e?.stop ? ['states:StopExecution'] : []),
        ...(e?.taskResponse
          ? ['states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess']
          : []),
      ].sort();
      expect(sfn, definition.name).toEqual(expected);
    }
    expect(ALL_FUNCTIONS.filter((f) => f.needs.executions?.stop).map((f) => f.name)).toEqual(['api']);
  });

  it('let only the API repair chunks (delete a corrupted one, invalidate its cached copy) and the collector evict', () => {
    const deleters = Object.keys(functions).filter((id) =>
      statementsOf(roleOf(id)).some((s) => actions(s).includes('s3:DeleteObject')),
    );
    const description = (id: string) => String(functions[id]?.Properties['Description']);
    expect(deleters.map(description).sort()).toEqual([
      `Cache collector: ${COLLECTOR_FUNCTIONS.collectGarbage.description}`,
      'Migration API (the Hono app of lambdas/api)',
    ]);
    // The collector deletes evicted packs after reading their table of contents (a pack named by an entry recorded
    // since is kept; ListBucket so that a pack already gone answers 404, not 403), and never writes at a node.
    const [collector] = functionByDescription(
      `Cache collector: ${COLLECTOR_FUNCTIONS.collectGarbage.description}`,
    );
    const atNodes = statementsOf(roleOf(collector)).filter((s) =>
      JSON.stringify(s.Resource).includes('vmmig-cn-'),
    );
    expect(atNodes.flatMap(actions).sort()).toEqual(['s3:DeleteObject', 's3:GetObject', 's3:ListBucket']);
    for (const d of atNodes.filter((s) => !actions(s).includes('s3:ListBucket')))
      expect(JSON.stringify(d.Resource)).toContain('/chunks/*');
    const api = deleters.find((id) => description(id).startsWith('Migration API')) as string;
    const invalidation = statementsOf(roleOf(api)).filter((s) =>
      actions(s).includes('cloudfront:CreateInvalidation'),
    );
    expect(invalidation).toHaveLength(1);
    expect(JSON.stringify(invalidation[0]?.Resource)).toMatch(/distribution/);
    expect(JSON.stringify(invalidation[0]?.Resource)).not.toContain('*');
    const deletes = statementsOf(roleOf(api)).filter((s) => actions(s).includes('s3:DeleteObject'));
    for (const d of deletes) expect(JSON.stringify(d.Resource)).toContain('/chunks/*');
  });

  it('let only the API read the edge private key', () => {
    const readers = Object.keys(functions).filter((id) =>
      statementsOf(roleOf(id)).some((s) => actions(s).includes('secretsmanager:GetSecretValue')),
    );
    expect(readers.map((id) => String(functions[id]?.Properties['Description']))).toEqual([
      'Migration API (the Hono app of lambdas/api)',
    ]);
  });

  it('name table indexes one by one instead of a wildcard', () => {
    for (const policy of Object.values(resourcesOf(template, 'AWS::IAM::Policy'))) {
      expect(JSON.stringify(policy.Properties['PolicyDocument'])).not.toContain('/index/*');
    }
  });
});

describe('principals', () => {
  it('has one agent role per data center, assumable through Roles Anywhere by that CN only', () => {
    for (const dc of topology.dataCenters) {
      template.hasResourceProperties('AWS::IAM::Role', {
        RoleName: `vmmig-agent-${dc.id}`,
        AssumeRolePolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: ['sts:AssumeRole', 'sts:TagSession'],
              Principal: { Service: 'rolesanywhere.amazonaws.com' },
              Condition: Match.objectLike({
                StringEquals: Match.objectLike({ 'aws:PrincipalTag/x509Subject/CN': dc.id }),
              }),
            }),
          ]),
        },
      });
    }
    template.hasResourceProperties('AWS::RolesAnywhere::Profile', {
      RoleArns: Match.arrayWith([{ 'Fn::GetAtt': [Match.stringLikeRegexp('PrincipalsAgentdcgz'), 'Arn'] }]),
    });
  });

  it('lets agents and the admin role invoke this API, and each agent read its own work queue, and nothing else', () => {
    const policies = Object.entries(resourcesOf(template, 'AWS::IAM::Policy')).filter(([id]) =>
      id.startsWith('Principals'),
    );
    expect(policies).toHaveLength(topology.dataCenters.length + 1);
    const invoke = {
      Effect: 'Allow',
      Action: 'execute-api:Invoke',
      Resource: {
        'Fn::Join': [
          '',
          [
            expect.stringMatching(/^arn:aws:execute-api:[a-z0-9-]+:$/),
            { Ref: 'AWS::AccountId' },
            ':',
            { Ref: expect.stringMatching(/^ApiHttpApi/) },
            '/*/*/*',
          ],
        ],
      },
    };
    const ownQueue = (dc: string) => ({
      Effect: 'Allow',
      Action: ['sqs:DeleteMessage', 'sqs:ReceiveMessage'],
      Resource: {
        'Fn::Join': [
          '',
          [
            expect.stringMatching(/^arn:aws:sqs:[a-z0-9-]+:$/),
            { Ref: 'AWS::AccountId' },
            `:vmmig-work-${dc}`,
          ],
        ],
      },
    });
    const agents = topology.dataCenters.map((dc) => [`PrincipalsAgent${dc.id.replace(/-/g, '')}`, dc.id]);
    for (const [id, policy] of policies) {
      const dc = agents.find(([prefix]) => id.startsWith(prefix as string))?.[1];
      expect(policy.Properties['PolicyDocument'], id).toEqual({
        Version: '2012-10-17',
        Statement: dc ? [invoke, ownQueue(dc)] : [invoke],
      });
    }
  });
});

describe('control bucket', () => {
  it('is versioned, encrypted, private, logged, TLS only and aborts incomplete uploads', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
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
      LoggingConfiguration: { DestinationBucketName: Match.anyValue(), LogFilePrefix: 'control/' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});

describe('operations', () => {
  it('emits Migration Status Changed events from history items with a status', () => {
    template.hasResourceProperties('AWS::Pipes::Pipe', {
      Source: { 'Fn::GetAtt': [Match.stringLikeRegexp('TablesMigrations'), 'StreamArn'] },
      SourceParameters: {
        FilterCriteria: {
          Filters: [{ Pattern: Match.stringLikeRegexp('"status":\\{"S":\\[\\{"exists":true\\}\\]\\}') }],
        },
      },
      TargetParameters: {
        EventBridgeEventBusParameters: { Source: 'vmmig', DetailType: 'Migration Status Changed' },
      },
    });
  });

  it('alarms on failed executions, API 5xx and throttling, into the alarm topic', () => {
    const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm'));
    const described = alarms.map((a) => String(a.Properties['AlarmDescription']));
    for (const what of [
      /failed or timed out/,
      /5xx/,
      /function was throttled/,
      /table throttled/,
      /Step Functions throttled/,
    ]) {
      expect(
        described.some((d) => what.test(d)),
        String(what),
      ).toBe(true);
    }
    for (const a of alarms)
      expect(a.Properties['AlarmActions']).toEqual([{ Ref: expect.stringMatching(/^OperationsAlarms/) }]);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('runs backup policies every minute through EventBridge Scheduler', () => {
    const [runner] = functionByDescription('Scheduled: Backup policies');
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Target: { Arn: { 'Fn::GetAtt': [runner, 'Arn'] } },
    });
  });

  it('seeds the registry from the topology at deploy time', () => {
    template.hasResourceProperties('Custom::RegistrySeed', {
      Topology: JSON.stringify(topology),
      CacheBucketPrefix: { 'Fn::Join': ['', ['vmmig-cn-', { Ref: 'AWS::AccountId' }, '-']] },
    });
  });
});
