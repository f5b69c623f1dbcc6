// Verifies CloudFront signed URLs as CloudFront does, for URLs made by @aws-sdk/cloudfront-signer: canned policy
// (Expires) or custom policy (Policy: wildcard Resource, DateLessThan, DateGreaterThan, IpAddress), RSA-SHA1 by
// default or RSA-SHA256 with Hash-Algorithm=SHA256, values in CloudFront's base64 (+ = / written as - _ ~).

import { type KeyObject, verify } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

export interface SignedRequest {
  /** Scheme and Host as the client addressed the edge, e.g. `http://127.0.0.1:8080`. */
  readonly origin: string;
  /** The raw request target (path and query, percent-encoding untouched). */
  readonly target: string;
  readonly sourceIp: string;
  /** Seconds since the epoch. */
  readonly now: number;
}

export interface TrustedKey {
  readonly keyPairId: string;
  readonly publicKey: KeyObject;
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const SIGNING_PARAMS = new Set(['Expires', 'Policy', 'Signature', 'Key-Pair-Id', 'Hash-Algorithm']);
const deny = (reason: string): Verdict => ({ ok: false, reason });

/** CloudFront's URL-safe base64 (`-` `_` `~` for `+` `=` `/`) back to bytes. */
export function decodeCloudFrontBase64(value: string): Buffer {
  return Buffer.from(value.replace(/-/g, '+').replace(/_/g, '=').replace(/~/g, '/'), 'base64');
}

/** Splits the signing parameters off the query; `url` is what was signed: origin, path and the other parameters. */
export function splitSignedUrl(origin: string, target: string): { url: string; params: Map<string, string> } {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const kept: string[] = [];
  const params = new Map<string, string>();
  for (const pair of q === -1 ? [] : target.slice(q + 1).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = safeDecode(eq === -1 ? pair : pair.slice(0, eq));
    if (name !== undefined && SIGNING_PARAMS.has(name)) {
      params.set(name, safeDecode(eq === -1 ? '' : pair.slice(eq + 1)) ?? '');
    } else {
      kept.push(pair);
    }
  }
  return { url: `${origin}${path}${kept.length > 0 ? `?${kept.join('&')}` : ''}`, params };
}

function safeDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** CloudFront Resource patterns: `*` is any run of characters (also none), `?` exactly one. Case-sensitive. */
export function resourceMatches(pattern: string, url: string): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, 's').test(url);
}

function ipMatches(cidr: string, ip: string): boolean {
  const [address = '', bits] = cidr.split('/');
  const family = isIP(address);
  const client = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  if (family === 0 || isIP(client) !== family) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) return false;
  const list = new BlockList();
  list.addSubnet(address, prefix, type);
  return list.check(client, type);
}

const epochOf = (condition: unknown): number | undefined => {
  const value = (condition as Record<string, unknown> | undefined)?.['AWS:EpochTime'];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
};

function checkPolicy(policyJson: string, url: string, request: SignedRequest): Verdict {
  let policy: unknown;
  try {
    policy = JSON.parse(policyJson);
  } catch {
    return deny('The policy is not valid JSON');
  }
  const statements = (policy as { Statement?: unknown } | null)?.Statement;
  if (!Array.isArray(statements) || statements.length !== 1)
    return deny('The policy must have exactly one statement');
  const statement = statements[0] as { Resource?: unknown; Condition?: Record<string, unknown> };
  if (statement.Resource !== undefined) {
    if (typeof statement.Resource !== 'string') return deny('The policy Resource must be a string');
    if (!resourceMatches(statement.Resource, url)) return deny('The policy Resource does not match this URL');
  }
  const conditions = statement.Condition ?? {};
  for (const key of Object.keys(conditions)) {
    if (!['DateLessThan', 'DateGreaterThan', 'IpAddress'].includes(key))
      return deny(`Unsupported policy condition ${key}`);
  }
  const { DateLessThan, DateGreaterThan, IpAddress } = conditions;
  const lessThan = epochOf(DateLessThan);
  if (lessThan === undefined) return deny('The policy has no DateLessThan AWS:EpochTime');
  if (request.now >= lessThan) return deny('Request has expired');
  if (DateGreaterThan !== undefined) {
    const greaterThan = epochOf(DateGreaterThan);
    if (greaterThan === undefined) return deny('The policy DateGreaterThan is malformed');
    if (request.now < greaterThan) return deny('Request is not yet valid');
  }
  if (IpAddress !== undefined) {
    const cidr = (IpAddress as Record<string, unknown>)['AWS:SourceIp'];
    if (typeof cidr !== 'string') return deny('The policy IpAddress is malformed');
    if (!ipMatches(cidr, request.sourceIp)) return deny('The source IP address is not allowed by the policy');
  }
  return { ok: true };
}

/** The verdict CloudFront would give for this request with these trusted keys (a key group). */
export function verifySignedUrl(request: SignedRequest, trusted: readonly TrustedKey[]): Verdict {
  const { url, params } = splitSignedUrl(request.origin, request.target);
  const keyPairId = params.get('Key-Pair-Id');
  const signature = params.get('Signature');
  const expires = params.get('Expires');
  const encodedPolicy = params.get('Policy');
  if (!keyPairId) return deny('Missing Key-Pair-Id query parameter or cookie value');
  if (!signature) return deny('Missing Signature query parameter or cookie value');
  if (expires === undefined && encodedPolicy === undefined)
    return deny('Missing Expires or Policy query parameter');
  if (expires !== undefined && encodedPolicy !== undefined)
    return deny('Expires and Policy cannot both be present');
  const key = trusted.find((k) => k.keyPairId === keyPairId);
  if (key === undefined) return deny('Unknown Key-Pair-Id');
  const hash = params.get('Hash-Algorithm') ?? 'SHA1';
  if (hash !== 'SHA1' && hash !== 'SHA256') return deny('Unsupported Hash-Algorithm');

  let policyJson: string;
  if (encodedPolicy !== undefined) {
    policyJson = decodeCloudFrontBase64(encodedPolicy).toString('utf8');
  } else {
    if (!/^\d+$/.test(expires ?? '')) return deny('Expires is not a number of seconds');
    // The canned policy is not sent: it is rebuilt byte for byte as the signer wrote it.
    policyJson = JSON.stringify({
      Statement: [{ Resource: url, Condition: { DateLessThan: { 'AWS:EpochTime': Number(expires) } } }],
    });
  }
  const valid = verify(
    hash === 'SHA256' ? 'RSA-SHA256' : 'RSA-SHA1',
    Buffer.from(policyJson, 'utf8'),
    key.publicKey,
    decodeCloudFrontBase64(signature),
  );
  if (!valid) return deny('Invalid signature');
  return checkPolicy(policyJson, url, request);
}
