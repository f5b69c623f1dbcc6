// The API contract as a test sees it: every answer the API gives is checked against docs/openapi.json — its
// status must be documented for the operation, and a JSON body must match the documented schema (Ajv, JSON Schema
// 2020-12 as OpenAPI 3.1 uses it). The local cloud's API handler is wrapped with `contractCheck` in every test that
// starts one (test/support/local-cloud.ts), so a test file fails when the server and the document disagree.
import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ApiHandler } from '../../local/cloud.ts';

// ajv-formats is CommonJS: under ESM its function is the default export's default.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv2020) => void;

export const OPENAPI_PATH = new URL('../../docs/openapi.json', import.meta.url);

interface ResponseDoc {
  readonly content?: Record<string, { readonly schema?: unknown }>;
}
interface OperationDoc {
  readonly operationId?: string;
  readonly responses: Record<string, ResponseDoc>;
}
interface OpenApiDoc {
  readonly paths: Record<string, Record<string, OperationDoc>>;
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);
/** JSON Pointer (RFC 6901) escaping of one reference token. */
const token = (s: string) => s.replaceAll('~', '~0').replaceAll('/', '~1');

interface Operation {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  /** Literal segments count: /v1/agent/work beats /v1/{x}/work when both match. */
  readonly literals: number;
  readonly responses: Record<string, ResponseDoc>;
}

export class Contract {
  private readonly ajv: Ajv2020;
  private readonly operations: Operation[] = [];
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(readonly doc: OpenApiDoc) {
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
    addFormats(this.ajv);
    // The whole document is one schema resource: `#/components/schemas/…` references resolve inside it.
    this.ajv.addSchema(doc as object, 'openapi.json');
    for (const [template, item] of Object.entries(doc.paths)) {
      const segments = template.split('/');
      const pattern = new RegExp(
        `^${segments.map((s) => (/^\{[^}]+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))).join('/')}$`,
      );
      const literals = segments.filter((s) => !s.startsWith('{')).length;
      for (const [method, op] of Object.entries(item)) {
        if (!METHODS.has(method)) continue;
        this.operations.push({ method, template, pattern, literals, responses: op.responses });
      }
    }
  }

  static fromFile(path: URL = OPENAPI_PATH): Contract {
    return new Contract(JSON.parse(readFileSync(path, 'utf8')) as OpenApiDoc);
  }

  private operation(method: string, pathname: string): Operation | undefined {
    return this.operations
      .filter((o) => o.method === method && o.pattern.test(pathname))
      .sort((a, b) => b.literals - a.literals)[0];
  }

  private validator(op: Operation, status: string, mediaType: string): ValidateFunction {
    const pointer = ['paths', op.template, op.method, 'responses', status, 'content', mediaType, 'schema']
      .map(token)
      .join('/');
    let validate = this.validators.get(pointer);
    if (!validate) {
      validate = this.ajv.compile({ $ref: `openapi.json#/${pointer}` });
      this.validators.set(pointer, validate);
    }
    return validate;
  }

  /**
   * What is wrong with this answer, or undefined when the document describes it: the status must be listed for the
   * operation, a documented JSON body must be JSON and match its schema, and an answer documented without a body
   * must have none.
   */
  check(method: string, pathname: string, status: number, contentType: string | null, body: string) {
    const m = method.toLowerCase();
    const op = this.operation(m, pathname);
    // A path no operation has may be refused (404 unknown route, 401, the gateway's 403…) with an error body;
    // anything else there would be an operation the document does not have.
    if (!op) {
      if (status < 400) return `no operation is documented for ${m.toUpperCase()} ${pathname}`;
      return this.checkJson(this.errorSchema(), status, contentType, body);
    }
    const documented = op.responses[String(status)] ?? op.responses['default'];
    if (!documented) {
      const listed = Object.keys(op.responses).join(', ');
      return `status ${status} is not documented for ${m.toUpperCase()} ${op.template} (documented: ${listed})`;
    }
    const media = Object.keys(documented.content ?? {});
    if (media.length === 0) {
      return body.length === 0
        ? undefined
        : `status ${status} is documented without a body, but one came (${contentType ?? 'no content-type'})`;
    }
    const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const mediaType = media.find((t) => t.toLowerCase() === type);
    if (!mediaType) {
      return `status ${status} answered ${type || 'no content-type'}, documented: ${media.join(', ')}`;
    }
    if (!mediaType.endsWith('json')) return undefined;
    return this.checkJson(this.validator(op, String(status), mediaType), status, contentType, body);
  }

  private errorSchema(): ValidateFunction {
    const key = 'error bodies';
    let validate = this.validators.get(key);
    if (!validate) {
      validate = this.ajv.compile({
        anyOf: [
          { $ref: 'openapi.json#/components/schemas/Error' },
          { $ref: 'openapi.json#/components/schemas/GatewayError' },
        ],
      });
      this.validators.set(key, validate);
    }
    return validate;
  }

  private checkJson(validate: ValidateFunction, status: number, contentType: string | null, body: string) {
    if (!/json/i.test(contentType ?? ''))
      return `status ${status} answered ${contentType ?? 'no content-type'}`;
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return `status ${status} body is not JSON: ${body.slice(0, 200)}`;
    }
    if (validate(value)) return undefined;
    const errors = (validate.errors ?? [])
      .slice(0, 5)
      .map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
      .join('; ');
    return `status ${status} body does not match the schema: ${errors}; body: ${body.slice(0, 300)}`;
  }
}

export interface ContractMonitor {
  /** Wraps the API handler: every answer is checked (its body read from a clone, the caller's copy untouched). */
  readonly wrap: (handler: ApiHandler) => ApiHandler;
  /** The answers that broke the contract so far, after the checks under way have finished. */
  violations(): Promise<string[]>;
}

let shared: Contract | undefined;
/** The contract of docs/openapi.json, read and compiled once per test process. */
export function documentedContract(): Contract {
  shared ??= Contract.fromFile();
  return shared;
}

export function contractCheck(contract: Contract = documentedContract()): ContractMonitor {
  const found: string[] = [];
  const pending = new Set<Promise<void>>();
  return {
    wrap: (handler) => async (request, env) => {
      const response = await handler(request, env);
      const { pathname } = new URL(request.url);
      const copy = response.clone();
      const checked = copy
        .text()
        .then((body) => {
          const problem = contract.check(
            request.method,
            pathname,
            response.status,
            response.headers.get('content-type'),
            body,
          );
          if (problem) found.push(`${request.method} ${pathname} → ${problem}`);
        })
        // A body the client abandoned (a cancelled long poll) cannot be checked; its status was.
        .catch(() => {
          const problem = contract.check(request.method, pathname, response.status, null, '');
          if (problem?.startsWith('status') && problem.includes('not documented'))
            found.push(`${request.method} ${pathname} → ${problem}`);
        });
      pending.add(checked);
      void checked.finally(() => pending.delete(checked));
      return response;
    },
    async violations() {
      await Promise.allSettled([...pending]);
      return [...found];
    },
  };
}

/** One message for a test failure: each distinct violation once, with how often it happened. */
export function describeViolations(violations: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const v of violations) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].map(([v, n]) => (n > 1 ? `${v} (${n} times)` : v)).join('\n  ');
}
