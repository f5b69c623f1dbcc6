// On AWS the HTTP API authorizes every route (but /health) with IAM; this maps the signed caller to our
// principal model: listed admin ARNs, or an agent role named `<AGENT_ROLE_PREFIX><data center id>`.
import type { APIGatewayProxyEventV2WithIAMAuthorizer } from 'aws-lambda';
import { ENV, type Env, optionalEnv } from '../config.ts';
import type { Authenticate, Principal } from './principal.ts';

/** `arn:aws:sts::123:assumed-role/Name/session` or `arn:aws:iam::123:role/path/Name` → role name. */
export function roleName(arn: string): string | undefined {
  const assumed = /^arn:aws[\w-]*:sts::\d{12}:assumed-role\/([^/]+)\/.+$/.exec(arn);
  if (assumed) return assumed[1];
  const role = /^arn:aws[\w-]*:iam::\d{12}:role\/(?:.*\/)?([^/]+)$/.exec(arn);
  return role?.[1];
}

/** The 12-digit account of an IAM or STS ARN. */
const accountOf = (arn: string): string | undefined => /^arn:aws[\w-]*:(?:iam|sts)::(\d{12}):/.exec(arn)?.[1];

export function principalFromArn(
  arn: string,
  admins: readonly string[],
  agentRolePrefix: string | undefined,
  /** Agent roles must live in this account (the deployment's) when it is given. */
  agentAccountId?: string,
): Principal | undefined {
  const name = roleName(arn);
  // A session of a listed admin role is an admin: same role name in the same account (a role of that name in
  // another account is somebody else).
  const matchesAdmin = admins.some(
    (a) =>
      a === arn ||
      (name !== undefined &&
        roleName(a) === name &&
        !a.includes(':user/') &&
        accountOf(a) === accountOf(arn)),
  );
  if (matchesAdmin) return { kind: 'admin', id: arn };
  const accountOk = agentAccountId === undefined || accountOf(arn) === agentAccountId;
  if (name && agentRolePrefix && name.startsWith(agentRolePrefix) && accountOk) {
    const dataCenterId = name.slice(agentRolePrefix.length);
    if (/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/.test(dataCenterId))
      return { kind: 'agent', dataCenterId, id: arn };
  }
  return undefined;
}

export function iamAuthenticate(env: Env = process.env): Authenticate {
  const admins = (optionalEnv(ENV.adminPrincipalArns, env) ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const prefix = optionalEnv(ENV.agentRolePrefix, env);
  const account = optionalEnv(ENV.agentAccountId, env);
  return (_request, bindings) => {
    const event = (bindings as { event?: APIGatewayProxyEventV2WithIAMAuthorizer } | undefined)?.event;
    const arn = event?.requestContext?.authorizer?.iam?.userArn;
    return arn ? principalFromArn(arn, admins, prefix, account) : undefined;
  };
}
