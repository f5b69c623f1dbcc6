// The migration API (draft: CVMM): an HTTP API with IAM authorization on every route but /health, in front of the
// same Hono app the local cloud serves (lambdas/api/lambda.ts). Stage throttling and JSON access logs.
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/config.ts';
import { acknowledge } from '../nag.ts';
import { BaseFunction } from './base-function.ts';
import { API_ACCESS, bindService, type ServiceResources } from './service-access.ts';

export interface MigrationApiProps {
  readonly resources: ServiceResources;
  readonly stateMachine: sfn.StateMachine;
  readonly edgeKeyPairId: string;
  readonly edgePrivateKey: secretsmanager.Secret;
  /** ADMIN_PRINCIPAL_ARNS. */
  readonly adminPrincipalArns: readonly string[];
  readonly agentRolePrefix: string;
  /** The CloudFront distribution: a chunk repair invalidates the chunk's cached copy. */
  readonly edgeDistributionId: string;
  readonly edgeDistributionArn: string;
  /** Fixed so the edge stack can let only this role read the signing key. */
  readonly roleName: string;
  readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };
  readonly logRetention: logs.RetentionDays;
}

export class MigrationApi extends Construct {
  readonly handler: BaseFunction;
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: MigrationApiProps) {
    super(scope, id);
    this.handler = new BaseFunction(this, 'Handler', {
      entry: 'lambdas/api/lambda.ts',
      description: 'Migration API (the Hono app of lambdas/api)',
      memorySize: 1024,
      // API Gateway gives up on the integration after 30 s.
      timeout: Duration.seconds(29),
      logRetention: props.logRetention,
      roleName: props.roleName,
    });
    bindService(this.handler, props.resources, API_ACCESS);
    this.handler
      .bindStateMachine(ENV.stateMachineArn, props.stateMachine, API_ACCESS.executions ?? {})
      .bindSecret(ENV.edgePrivateKeySecretArn, props.edgePrivateKey)
      .setEnvironment(ENV.edgeKeyPairId, props.edgeKeyPairId)
      .setEnvironment(ENV.edgeDistributionId, props.edgeDistributionId)
      .setEnvironment(ENV.adminPrincipalArns, props.adminPrincipalArns.join(','))
      .setEnvironment(ENV.agentRolePrefix, props.agentRolePrefix)
      // Agent roles are accepted from this deployment's account only.
      .setEnvironment(ENV.agentAccountId, Stack.of(this).account);
    this.handler.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['cloudfront:CreateInvalidation'],
        resources: [props.edgeDistributionArn],
      }),
    );

    const integration = new HttpLambdaIntegration('Hono', this.handler.function);
    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      description: 'vmmig migration API: IAM-authorized (SigV4) on every route but /health',
      createDefaultStage: false,
      defaultIntegration: integration,
      defaultAuthorizer: new HttpIamAuthorizer(),
    });
    const health = this.httpApi.addRoutes({
      path: '/health',
      methods: [apigw.HttpMethod.GET],
      integration,
      authorizer: new apigw.HttpNoneAuthorizer(),
    });
    for (const route of health) {
      acknowledge(
        route,
        'AwsSolutions-APIG4',
        'GET /health is the liveness probe for load balancers and operators and returns only {status, version}; ' +
          'every other route requires SigV4 (IAM) authorization.',
      );
    }

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.stage = new apigw.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: props.throttle.rateLimit, burstLimit: props.throttle.burstLimit },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(this.accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTime',
            ip: '$context.identity.sourceIp',
            caller: '$context.identity.userArn',
            method: '$context.httpMethod',
            path: '$context.path',
            route: '$context.routeKey',
            status: '$context.status',
            protocol: '$context.protocol',
            bytes: '$context.responseLength',
            latencyMs: '$context.responseLatency',
            integrationLatencyMs: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            authorizerError: '$context.authorizer.error',
          }),
        ),
      },
    });
  }

  /** The API's base URL (`https://<id>.execute-api.<region>.amazonaws.com/`). */
  get url(): string {
    return this.stage.url;
  }
}
