// The migration API (draft: CVMM): an HTTP API with IAM authorization on every route but /health, in front of the
// same Hono app the local cloud serves (lambdas/api/lambda.ts). Stage throttling and JSON access logs.
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/config.ts';
import { API_FUNCTION } from '../../lambdas/functions.ts';
import { acknowledge } from '../nag.ts';
import { ServiceFunction, type ServiceResources } from './service-function.ts';

export interface MigrationApiProps {
  readonly resources: ServiceResources;
  /** ADMIN_PRINCIPAL_ARNS. */
  readonly adminPrincipalArns: readonly string[];
  readonly agentRolePrefix: string;
  /** Fixed so the edge stack can let only this role read the signing key. */
  readonly roleName: string;
  readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };
  readonly logRetention: logs.RetentionDays;
}

export class MigrationApi extends Construct {
  readonly handler: ServiceFunction;
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: MigrationApiProps) {
    super(scope, id);
    this.handler = new ServiceFunction(this, 'Handler', {
      definition: API_FUNCTION,
      resources: props.resources,
      logRetention: props.logRetention,
      roleName: props.roleName,
    });
    // Who may call: configuration of the app's authorizer (lambdas/api/iam-principals.ts), not AWS access.
    this.handler
      .setEnvironment(ENV.adminPrincipalArns, props.adminPrincipalArns.join(','))
      .setEnvironment(ENV.agentRolePrefix, props.agentRolePrefix)
      // Agent roles are accepted from this deployment's account only.
      .setEnvironment(ENV.agentAccountId, Stack.of(this).account);

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
