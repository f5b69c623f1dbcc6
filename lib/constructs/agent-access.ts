// Who may call the API, in the principal model of lambdas/api/iam-principals.ts: an admin role (assumable from
// this account) and one role per data center of the topology, named `<AGENT_ROLE_PREFIX><data center id>` and
// assumable through IAM Roles Anywhere by a certificate whose CN is that id. Data centers registered later through
// the API get their role the same way: add them to the topology and deploy.
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rolesanywhere from 'aws-cdk-lib/aws-rolesanywhere';
import { Construct } from 'constructs';
import type { DataCenterConfig } from '../../protocol/topology.ts';
import { acknowledgeWildcardResource } from '../nag.ts';
import type { DeploymentNames } from '../naming.ts';

export interface AgentAccessProps {
  readonly names: DeploymentNames;
  readonly api: apigw.HttpApi;
  readonly dataCenters: readonly DataCenterConfig[];
  /** Restricts the agent roles to certificates of this trust anchor. @default any trust anchor of the account */
  readonly trustAnchorArn?: string | undefined;
}

export class AgentAccess extends Construct {
  readonly adminRole: iam.Role;
  readonly agentRoles: ReadonlyMap<string, iam.Role>;
  readonly profile: rolesanywhere.CfnProfile | undefined;

  constructor(scope: Construct, id: string, props: AgentAccessProps) {
    super(scope, id);
    const { names, api } = props;

    this.adminRole = new iam.Role(this, 'Admin', {
      roleName: names.adminRoleName,
      description: 'vmmig admin: every API route (ADMIN_PRINCIPAL_ARNS)',
      assumedBy: new iam.AccountRootPrincipal(),
      maxSessionDuration: Duration.hours(1),
    });
    this.allowInvoke(this.adminRole, api);

    const roles = new Map<string, iam.Role>();
    for (const dc of props.dataCenters) {
      // The certificate's CN names the data center; the session must come from our trust anchor (or account).
      const trust = new iam.PrincipalWithConditions(
        new iam.ServicePrincipal('rolesanywhere.amazonaws.com'),
        props.trustAnchorArn
          ? {
              StringEquals: { 'aws:PrincipalTag/x509Subject/CN': dc.id },
              ArnEquals: { 'aws:SourceArn': props.trustAnchorArn },
            }
          : {
              StringEquals: {
                'aws:PrincipalTag/x509Subject/CN': dc.id,
                'aws:SourceAccount': Stack.of(this).account,
              },
            },
      );
      const role = new iam.Role(this, `Agent-${dc.id}`, {
        roleName: names.agentRoleName(dc.id),
        description: `vmmig agent of data center ${dc.id} (${dc.name}); the API lets it see only its own work`,
        assumedBy: trust.withSessionTags(),
        maxSessionDuration: Duration.hours(12),
      });
      role.assumeRolePolicy?.addStatements(
        new iam.PolicyStatement({ actions: ['sts:SetSourceIdentity'], principals: [trust] }),
      );
      // Which routes and rows an agent may use is decided by the app (its own data center only).
      this.allowInvoke(role, api);
      // Its own work queue only: long polls that tell an idle agent to look at its work.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage'],
          resources: [
            Stack.of(this).formatArn({
              service: 'sqs',
              resource: names.workQueueName(dc.id),
              arnFormat: ArnFormat.NO_RESOURCE_NAME,
            }),
          ],
        }),
      );
      roles.set(dc.id, role);
    }
    this.agentRoles = roles;

    this.profile =
      roles.size > 0
        ? new rolesanywhere.CfnProfile(this, 'Profile', {
            name: `${names.prefix}-agents`,
            roleArns: [...roles.values()].map((r) => r.roleArn),
            durationSeconds: 3600,
            enabled: true,
          })
        : undefined;
  }

  /**
   * Invoke on every route of this one API. Narrower ARNs (`<api>/<stage>/<method>/<path>`) are not used: every
   * route goes through the `$default` route, and how API Gateway renders stage and path of a `$default`-route
   * request in the IAM resource is not documented; a wrong guess would lock every agent out. The app authorizes
   * each call against the principal (admin, or the agent of one data center).
   */
  private allowInvoke(role: iam.Role, api: apigw.HttpApi): void {
    const routes = api.arnForExecuteApi();
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['execute-api:Invoke'], resources: [routes] }),
    );
    acknowledgeWildcardResource(
      role,
      routes,
      'execute-api ARNs end in <stage>/<method>/<path>; this role may call this one API, whose only routes are ' +
        '$default (SigV4, authorized per principal by the application) and GET /health. A path-scoped ARN is ' +
        "not used because API Gateway does not document how a $default-route request's path appears in it.",
    );
  }
}
