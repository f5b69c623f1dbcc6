// The IAM policies the local cloud enforces: those CDK synthesizes for the deployment (local/iam/policies.json,
// written by `npm run iam:generate` and proven current by test/infra/local-iam.test.ts), with the placeholders for
// what differs between AWS and here filled in with the local cloud's names. One Authorizer answers "may this
// principal do this action on this resource?" for every local server.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TableId } from '../../lambdas/aws/tables.ts';
import { type Caller, type Decision, evaluate, type Statement } from './evaluate.ts';

export type PolicyStatement = Statement;

export interface SynthesizedPolicies {
  readonly generatedBy: string;
  /** SHA-256 of the topology the deployment was synthesized with. */
  readonly topology: string;
  /**
   * `function/<name>`, `stateMachine` (the migration's), `stateMachine/<name>` (another state machine's role),
   * `admin`, `agent` (with `{{dataCenterId}}`).
   */
  readonly principals: Readonly<Record<string, readonly PolicyStatement[]>>;
  readonly resourcePolicies: {
    /** Every cache node bucket's policy, with `{{cacheNodeId}}`. */
    readonly cacheBucket: readonly PolicyStatement[];
    readonly controlBucket: readonly PolicyStatement[];
  };
}

export const topologyDigest = (topology: unknown): string =>
  createHash('sha256').update(JSON.stringify(topology)).digest('hex');

export const POLICIES_FILE = new URL('./policies.json', import.meta.url);

/** The cache collector's state machine, as its role is named among the principals (`stateMachine/<name>`). */
export const COLLECTOR_STATE_MACHINE = 'collect-garbage';
export const stateMachinePrincipal = (name?: string) => (name ? `stateMachine/${name}` : 'stateMachine');

export function loadSynthesizedPolicies(): SynthesizedPolicies {
  return JSON.parse(readFileSync(POLICIES_FILE, 'utf8')) as SynthesizedPolicies;
}

/** The local cloud's values for the placeholders. */
export interface LocalNames {
  readonly account: string;
  readonly tables: Readonly<Record<TableId, string>>;
  readonly controlBucket: string;
  /** The bucket of cache node X is this + X (to recognize which node a bucket belongs to). */
  readonly cacheBucketPrefix: string;
  readonly apiId: string;
  readonly distributionId: string;
}

/** A principal as the local servers know it (local/deployment.ts LocalPrincipal, without the import cycle). */
export type AuthPrincipal =
  | { readonly kind: 'function'; readonly name: string }
  | { readonly kind: 'agent'; readonly dataCenterId: string }
  | { readonly kind: 'admin' }
  /** The migration state machine's role; with `name`, another state machine's (COLLECTOR_STATE_MACHINE). */
  | { readonly kind: 'stateMachine'; readonly name?: string }
  | { readonly kind: 'cloudfront' }
  | { readonly kind: 'root' };

export interface AuthRequest {
  readonly action: string;
  readonly resource: string;
  readonly context?: Readonly<Record<string, string>>;
}

/** The local servers are plain HTTP on loopback; requests count as what AWS clients always send: TLS 1.2+. */
const TRANSPORT = { 'aws:SecureTransport': 'true', 's3:TlsVersion': '1.3' } as const;

export class Authorizer {
  readonly #cache = new Map<string, Decision>();
  readonly #principals = new Map<string, readonly Statement[]>();
  readonly #cacheBucketPolicies = new Map<string, readonly Statement[]>();
  readonly #controlBucketPolicy: readonly Statement[];

  constructor(
    private readonly policies: SynthesizedPolicies,
    private readonly names: LocalNames,
  ) {
    this.#controlBucketPolicy = this.#fill(policies.resourcePolicies.controlBucket, {});
  }

  get account(): string {
    return this.names.account;
  }

  get distributionArn(): string {
    return `arn:aws:cloudfront::${this.names.account}:distribution/${this.names.distributionId}`;
  }

  /** The decision for one request; `root` (the local cloud itself) may do anything, as an account's administrator. */
  decide(principal: AuthPrincipal, request: AuthRequest): Decision {
    if (principal.kind === 'root') return 'Allowed';
    const key = `${JSON.stringify(principal)}|${request.action}|${request.resource}|${JSON.stringify(request.context ?? {})}`;
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const caller: Caller =
      principal.kind === 'cloudfront'
        ? { service: 'cloudfront.amazonaws.com' }
        : { arn: this.#arnOf(principal) };
    const context = {
      ...TRANSPORT,
      ...(principal.kind === 'cloudfront' ? { 'aws:SourceArn': this.distributionArn } : {}),
      ...request.context,
    };
    const decision = evaluate(
      caller,
      { ...request, context },
      principal.kind === 'cloudfront' ? [] : this.#identity(principal),
      this.#resourcePolicy(request.resource),
    );
    if (this.#cache.size > 50_000) this.#cache.clear();
    this.#cache.set(key, decision);
    return decision;
  }

  allows(principal: AuthPrincipal, request: AuthRequest): boolean {
    return this.decide(principal, request) === 'Allowed';
  }

  /** The principal's ARN as AWS error messages name it. */
  describe(principal: AuthPrincipal): string {
    return principal.kind === 'cloudfront' ? 'cloudfront.amazonaws.com' : this.#arnOf(principal);
  }

  #arnOf(principal: AuthPrincipal): string {
    const role = (name: string) => `arn:aws:iam::${this.names.account}:role/${name}`;
    switch (principal.kind) {
      case 'function':
        return role(`local-function-${principal.name}`);
      case 'agent':
        return role(`local-agent-${principal.dataCenterId}`);
      case 'admin':
        return role('local-admin');
      case 'stateMachine':
        return role(principal.name ? `local-state-machine-${principal.name}` : 'local-state-machine');
      default:
        return `arn:aws:iam::${this.names.account}:root`;
    }
  }

  #identity(principal: AuthPrincipal): readonly Statement[] {
    const name =
      principal.kind === 'function'
        ? `function/${principal.name}`
        : principal.kind === 'agent'
          ? 'agent'
          : principal.kind === 'stateMachine'
            ? stateMachinePrincipal(principal.name)
            : principal.kind;
    const memo = principal.kind === 'agent' ? `agent/${principal.dataCenterId}` : name;
    let statements = this.#principals.get(memo);
    if (!statements) {
      // A principal the deployment does not have gets no permissions at all.
      const template = this.policies.principals[name] ?? [];
      statements = this.#fill(
        template,
        principal.kind === 'agent' ? { dataCenterId: principal.dataCenterId } : {},
      );
      this.#principals.set(memo, statements);
    }
    return statements;
  }

  #resourcePolicy(resource: string): readonly Statement[] {
    const s3 = /^arn:aws:s3:::([^/]+)/.exec(resource);
    if (!s3) return [];
    const bucket = s3[1] as string;
    if (bucket === this.names.controlBucket) return this.#controlBucketPolicy;
    const prefix = this.names.cacheBucketPrefix;
    if (!bucket.startsWith(prefix)) return [];
    const node = bucket.slice(prefix.length);
    let policy = this.#cacheBucketPolicies.get(node);
    if (!policy) {
      policy = this.#fill(this.policies.resourcePolicies.cacheBucket, { cacheNodeId: node });
      this.#cacheBucketPolicies.set(node, policy);
    }
    return policy;
  }

  #fill(statements: readonly Statement[], extra: Readonly<Record<string, string>>): readonly Statement[] {
    const values: Record<string, string> = {
      account: this.names.account,
      'bucket:control': this.names.controlBucket,
      api: this.names.apiId,
      distribution: this.names.distributionId,
      ...Object.fromEntries(Object.entries(this.names.tables).map(([id, name]) => [`table:${id}`, name])),
      ...extra,
    };
    const text = JSON.stringify(statements).replace(/\{\{([^}]+)\}\}/g, (whole, name: string) => {
      if (name.startsWith('function:')) return name.slice('function:'.length);
      // Resources of services the local cloud does not run, and secrets it keeps elsewhere: they match nothing.
      if (name.startsWith('unmodelled:') || name.startsWith('secret:'))
        return `unmodelled-${name.replace(/\W/g, '-')}`;
      const value = values[name];
      if (value === undefined) throw new Error(`no local value for ${whole}`);
      return value;
    });
    return JSON.parse(text) as Statement[];
  }
}

/** An AWS-style message for a refused request. */
export function accessDeniedMessage(who: string, request: AuthRequest, decision: Decision): string {
  const why =
    decision === 'ExplicitlyDenied'
      ? 'with an explicit deny in a policy'
      : `because no identity-based policy allows the ${request.action} action`;
  return `User: ${who} is not authorized to perform: ${request.action} on resource: ${request.resource} ${why}`;
}
