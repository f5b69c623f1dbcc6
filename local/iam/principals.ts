// Who signs a request to a local server. Each function, agent and the edge have their own credentials; the access
// key id names the principal (hex-encoded: DynamoDB Local accepts only letters and digits), so the local servers
// know who is asking and enforce that principal's IAM policy. Signatures are not checked: the local cloud
// emulates what AWS permits, not who could forge a key on one's own machine.
import type { AuthPrincipal } from './policies.ts';

/** The principals that sign requests to the local servers (the admin acts only through the API). */
export type LocalPrincipal = Extract<
  AuthPrincipal,
  { kind: 'function' | 'agent' | 'cloudfront' | 'stateMachine' | 'root' }
>;

const ROOT_KEY = 'local';
const KEY_PREFIX = 'VMMIG';

const principalName = (principal: LocalPrincipal): string =>
  principal.kind === 'function'
    ? `function/${principal.name}`
    : principal.kind === 'agent'
      ? `agent/${principal.dataCenterId}`
      : principal.kind === 'stateMachine' && principal.name
        ? `stateMachine/${principal.name}`
        : principal.kind;

export function credentialsOf(principal: LocalPrincipal): { accessKeyId: string; secretAccessKey: string } {
  const accessKeyId =
    principal.kind === 'root'
      ? ROOT_KEY
      : `${KEY_PREFIX}${Buffer.from(principalName(principal)).toString('hex')}`;
  return { accessKeyId, secretAccessKey: 'local' };
}

/** The principal behind an access key id; unknown keys are nobody (every request refused). */
export function principalOfKey(accessKeyId: string): LocalPrincipal | undefined {
  if (accessKeyId === ROOT_KEY) return { kind: 'root' };
  if (!accessKeyId.startsWith(KEY_PREFIX)) return undefined;
  const hex = accessKeyId.slice(KEY_PREFIX.length);
  if (!/^(?:[0-9a-f]{2})+$/.test(hex)) return undefined;
  const [kind, ...rest] = Buffer.from(hex, 'hex').toString('utf8').split('/');
  const id = rest.join('/');
  if (kind === 'cloudfront' && id === '') return { kind: 'cloudfront' };
  if (kind === 'stateMachine')
    return id === '' ? { kind: 'stateMachine' } : { kind: 'stateMachine', name: id };
  if (kind === 'function' && id) return { kind: 'function', name: id };
  if (kind === 'agent' && id) return { kind: 'agent', dataCenterId: id };
  return undefined;
}

/** The access key id and region a SigV4 request is signed with (Authorization header or presigned query). */
export function signedCredential(
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
  query: Readonly<Record<string, string | undefined>>,
): { accessKeyId: string; region: string | undefined } | undefined {
  const auth = headers['authorization'];
  const header = typeof auth === 'string' ? /Credential=([^/,\s]+)\/\d{8}\/([^/]+)\//.exec(auth) : null;
  if (header) return { accessKeyId: header[1] as string, region: header[2] };
  const credential = query['X-Amz-Credential'];
  if (credential) {
    const [accessKeyId, , region] = credential.split('/');
    if (accessKeyId) return { accessKeyId, region };
  }
  return undefined;
}
