// IAM policy evaluation for the local cloud, as AWS documents it for one account: an explicit Deny in any
// applicable policy wins; otherwise an Allow in the caller's identity policy or in the resource's policy (for a
// principal it names) allows; otherwise the request is implicitly denied. Only the parts of the policy language
// our synthesized templates use are understood; anything else throws, so a policy the emulator cannot read fails
// loudly instead of being half-enforced.

export interface Statement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action?: string | readonly string[];
  readonly NotAction?: string | readonly string[];
  readonly Resource?: string | readonly string[];
  readonly Principal?:
    | string
    | { readonly AWS?: string | readonly string[]; readonly Service?: string | readonly string[] };
  readonly Condition?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** Who asks, as IAM sees it: a role's ARN, or a service principal (`cloudfront.amazonaws.com`). */
export type Caller = { readonly arn: string } | { readonly service: string };

export interface Request {
  readonly action: string;
  readonly resource: string;
  /** Condition keys, e.g. `aws:SecureTransport` → 'true'. Keys compare case-insensitively. */
  readonly context?: Readonly<Record<string, string>>;
}

export type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';

const list = (v: string | readonly string[] | undefined): readonly string[] =>
  v === undefined ? [] : typeof v === 'string' ? [v] : v;

/** IAM wildcards: `*` any run of characters (slashes included), `?` one character. */
function wildcard(pattern: string, caseInsensitive: boolean): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, caseInsensitive ? 'i' : '');
}

const patternCache = new Map<string, RegExp>();
function matches(pattern: string, value: string, caseInsensitive = false): boolean {
  const key = `${caseInsensitive ? 'i' : 's'}${pattern}`;
  let re = patternCache.get(key);
  if (!re) {
    re = wildcard(pattern, caseInsensitive);
    patternCache.set(key, re);
  }
  return re.test(value);
}

function actionApplies(s: Statement, action: string): boolean {
  // Action names are case-insensitive.
  if (s.Action !== undefined) return list(s.Action).some((p) => matches(p, action, true));
  if (s.NotAction !== undefined) return !list(s.NotAction).some((p) => matches(p, action, true));
  throw new Error(`statement ${s.Sid ?? ''} has neither Action nor NotAction`);
}

function resourceApplies(s: Statement, resource: string): boolean {
  if (s.Resource === undefined) throw new Error(`statement ${s.Sid ?? ''} has no Resource`);
  return list(s.Resource).some((p) => matches(p, resource));
}

function principalApplies(s: Statement, caller: Caller): boolean {
  const p = s.Principal;
  if (p === undefined) throw new Error(`resource policy statement ${s.Sid ?? ''} has no Principal`);
  if (p === '*') return true;
  if (typeof p === 'string') throw new Error(`unsupported Principal ${p}`);
  if ('arn' in caller) return list(p.AWS).some((a) => a === '*' || a === caller.arn);
  return list(p.Service).includes(caller.service) || list(p.AWS).includes('*');
}

function conditionHolds(
  condition: Statement['Condition'],
  context: Readonly<Record<string, string>>,
): boolean {
  if (!condition) return true;
  const lookup = (key: string): string | undefined => {
    const lower = key.toLowerCase();
    for (const [k, v] of Object.entries(context)) if (k.toLowerCase() === lower) return v;
    return undefined;
  };
  for (const [operator, clauses] of Object.entries(condition)) {
    const ifExists = operator.endsWith('IfExists');
    const op = ifExists ? operator.slice(0, -'IfExists'.length) : operator;
    if (!OPERATORS.has(op))
      throw new Error(`condition operator ${op} is not understood by the local IAM evaluation`);
    for (const [key, expected] of Object.entries(clauses)) {
      const actual = lookup(key);
      const values = (Array.isArray(expected) ? expected : [expected]).map(String);
      if (actual === undefined) {
        if (ifExists) continue;
        // A missing key fails every operator but the negated ones (AWS: "...NotEquals" with no key is true).
        if (/Not/.test(op)) continue;
        return false;
      }
      if (!test(op, actual, values)) return false;
    }
  }
  return true;
}

const OPERATORS = new Set([
  'StringEquals',
  'ArnEquals',
  'StringNotEquals',
  'ArnNotEquals',
  'StringEqualsIgnoreCase',
  'StringLike',
  'ArnLike',
  'StringNotLike',
  'ArnNotLike',
  'Bool',
  'NumericLessThan',
  'NumericLessThanEquals',
  'NumericGreaterThan',
  'NumericGreaterThanEquals',
  'NumericEquals',
]);

function test(op: string, actual: string, values: readonly string[]): boolean {
  switch (op) {
    case 'StringEquals':
    case 'ArnEquals':
      return values.includes(actual);
    case 'StringNotEquals':
    case 'ArnNotEquals':
      return !values.includes(actual);
    case 'StringEqualsIgnoreCase':
      return values.some((v) => v.toLowerCase() === actual.toLowerCase());
    case 'StringLike':
    case 'ArnLike':
      return values.some((v) => matches(v, actual));
    case 'StringNotLike':
    case 'ArnNotLike':
      return !values.some((v) => matches(v, actual));
    case 'Bool':
      return values.some((v) => v.toLowerCase() === actual.toLowerCase());
    case 'NumericLessThan':
      return values.some((v) => Number(actual) < Number(v));
    case 'NumericLessThanEquals':
      return values.some((v) => Number(actual) <= Number(v));
    case 'NumericGreaterThan':
      return values.some((v) => Number(actual) > Number(v));
    case 'NumericGreaterThanEquals':
      return values.some((v) => Number(actual) >= Number(v));
    case 'NumericEquals':
      return values.some((v) => Number(actual) === Number(v));
    default:
      throw new Error(`condition operator ${op} is not understood by the local IAM evaluation`);
  }
}

/**
 * The decision for one request. `identity` is the caller's policy (empty for a service principal), `resource` the
 * resource's policy (a bucket policy), if any.
 */
export function evaluate(
  caller: Caller,
  request: Request,
  identity: readonly Statement[],
  resource: readonly Statement[] = [],
): Decision {
  const context = request.context ?? {};
  const applicable = (s: Statement) =>
    actionApplies(s, request.action) &&
    resourceApplies(s, request.resource) &&
    conditionHolds(s.Condition, context);
  const fromResource = resource.filter((s) => principalApplies(s, caller) && applicable(s));
  const fromIdentity = identity.filter(applicable);
  const all = [...fromIdentity, ...fromResource];
  if (all.some((s) => s.Effect === 'Deny')) return 'ExplicitlyDenied';
  if (all.some((s) => s.Effect === 'Allow')) return 'Allowed';
  return 'ImplicitlyDenied';
}
