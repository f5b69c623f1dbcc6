// Shared machinery of the API suites: every route of protocol/api/*.ts, a raw HTTP sender that can send what no
// client would, and the one assertion every rejection must pass. The arbitraries are in arbitraries.ts.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RouteConfig } from '@hono/zod-openapi';
import { expect } from 'vitest';
import type { z } from 'zod';
import type { TestCloud } from '../../support/local-cloud.ts';

export type Route = RouteConfig & { readonly method: string; readonly path: string };

const API_DIR = fileURLToPath(new URL('../../../protocol/api/', import.meta.url));
const modules: unknown[] = await Promise.all(
  readdirSync(API_DIR)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => import(pathToFileURL(join(API_DIR, f)).href)),
);

/** Every route the API serves, found in every module of protocol/api/ (so a new route cannot be missed). */
export const ROUTES: readonly Route[] = modules
  .flatMap((mod) => Object.values(mod as Record<string, unknown>))
  .filter(
    (v): v is Route =>
      typeof v === 'object' &&
      v !== null &&
      typeof (v as Route).method === 'string' &&
      typeof (v as Route).path === 'string' &&
      'responses' in v,
  );

export const routeName = (r: Pick<Route, 'method' | 'path'>) => `${r.method.toUpperCase()} ${r.path}`;
export const route = (name: string): Route => {
  const r = ROUTES.find((x) => routeName(x) === name);
  if (!r) throw new Error(`no route ${name}`);
  return r;
};

/** The zod schemas a route validates with. */
export function schemasOf(r: Route) {
  const req = r.request ?? {};
  const body = (req.body?.content as Record<string, { schema: z.ZodType }> | undefined)?.['application/json']
    ?.schema;
  return {
    params: req.params as z.ZodObject | undefined,
    query: req.query as z.ZodObject | undefined,
    headers: req.headers as z.ZodObject | undefined,
    body,
  };
}

export interface RawRequest {
  readonly method: string;
  readonly path: string;
  readonly params?: Readonly<Record<string, string>>;
  readonly query?: Readonly<Record<string, string | readonly string[]>>;
  /** Sent as JSON unless `raw` is given. */
  readonly body?: unknown;
  readonly raw?: string | Uint8Array | ReadableStream<Uint8Array>;
  /** `authorization` here replaces the token. */
  readonly headers?: Readonly<Record<string, string>>;
  /** null: no credentials. Default: the admin. */
  readonly token?: string | null;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: {
    error?: { code?: string; message?: string; issues?: { field: string; reason: string }[] } & Record<
      string,
      unknown
    >;
  } & Record<string, unknown>;
}

export function sender(t: TestCloud) {
  return async function send(req: RawRequest): Promise<RawResponse> {
    const path = req.path.replace(/\{(\w+)\}/g, (_, name: string) =>
      encodeURIComponent(req.params?.[name] ?? `<${name}>`),
    );
    const url = new URL(path, t.cloud.endpoints.api);
    for (const [k, v] of Object.entries(req.query ?? {})) {
      for (const one of typeof v === 'string' ? [v] : v) url.searchParams.append(k, one);
    }
    const token = req.token === undefined ? t.cloud.tokens.adminToken : req.token;
    const body = req.raw ?? (req.body === undefined ? undefined : JSON.stringify(req.body));
    const headers: Record<string, string> = {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...req.headers,
    };
    const res = await fetch(url, {
      method: req.method.toUpperCase(),
      headers,
      ...(body !== undefined ? { body } : {}),
      // A stream goes out chunked, without Content-Length.
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit);
    const text = await res.text();
    let json: RawResponse['json'] = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { notJson: text.slice(0, 200) };
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

/** Whether an issue's field and the field a test broke are the same or one contains the other. */
export const related = (a: string, b: string) =>
  a === b ||
  // A rule across fields (e.g. "give capacity, status or both") names the body as a whole.
  a === 'body' ||
  a.startsWith(`${b}.`) ||
  b.startsWith(`${a}.`) ||
  a.startsWith(`${b}[`) ||
  b.startsWith(`${a}[`);

/**
 * The promise every bad request must keep: a 4xx (one of `statuses` if given) with a JSON error body and a
 * message; a 400 lists issues, one of them naming `field` when given.
 */
export function expectRejected(
  res: RawResponse,
  o: { field?: string; statuses?: readonly number[]; code?: string; what?: string } = {},
): void {
  const what = `${o.what ?? ''} → ${res.status} ${res.text.slice(0, 400)}`;
  expect(res.status, what).toBeGreaterThanOrEqual(400);
  expect(res.status, what).toBeLessThan(500);
  if (o.statuses) expect(o.statuses, what).toContain(res.status);
  expect(res.headers.get('content-type') ?? '', what).toMatch(/^application\/json/);
  expect(typeof res.json.error?.code, what).toBe('string');
  expect(res.json.error?.message, what).toMatch(/\S/);
  if (o.code) expect(res.json.error?.code, what).toBe(o.code);
  if (res.status === 400) {
    const issues = res.json.error?.issues ?? [];
    expect(issues.length, what).toBeGreaterThan(0);
    for (const i of issues) expect(i.field, what).toMatch(/\S/);
    if (o.field) {
      const field = o.field;
      expect(
        issues.some((i) => related(i.field, field)),
        `${what}\nexpected an issue naming ${field}`,
      ).toBe(true);
    }
  }
}
