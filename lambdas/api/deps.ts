// What the API needs: the shared service adapters, plus who is calling, where the state machine is, and how to
// sign edge URLs.

import { type ServiceDeps, serviceDeps } from '../aws/deps.ts';
import { type EdgeCache, edgeCache } from '../aws/edge-cache.ts';
import { EdgeSigner } from '../aws/edge-signer.ts';
import { ENV, optionalEnv, requireEnv } from '../config.ts';
import type { Authenticate } from './principal.ts';

export interface ApiDeps extends ServiceDeps {
  readonly authenticate: Authenticate;
  readonly stateMachineArn: string;
  readonly edgeSigner: EdgeSigner;
  readonly edgeCache: EdgeCache;
}

export function apiDepsFromEnv(authenticate: Authenticate, env: NodeJS.ProcessEnv = process.env): ApiDeps {
  return {
    ...serviceDeps(env),
    authenticate,
    stateMachineArn: requireEnv(ENV.stateMachineArn, env),
    edgeCache: edgeCache(optionalEnv(ENV.edgeDistributionId, env)),
    edgeSigner: new EdgeSigner(requireEnv(ENV.edgeBaseUrl, env), requireEnv(ENV.edgeKeyPairId, env), () =>
      loadEdgePrivateKey(env),
    ),
  };
}

async function loadEdgePrivateKey(env: NodeJS.ProcessEnv): Promise<string> {
  const pem = optionalEnv(ENV.edgePrivateKeyPem, env);
  if (pem) return pem;
  const secretArn = requireEnv(ENV.edgePrivateKeySecretArn, env);
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const out = await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: secretArn }));
  if (!out.SecretString) throw new Error(`secret ${secretArn} holds no string`);
  return out.SecretString;
}
