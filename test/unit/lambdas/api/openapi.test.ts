// /openapi.json: a valid OpenAPI 3.1 document that lists every route of protocol/api/*.ts, built from the same zod
// schemas that validate requests. Served by the app itself (app.request), no server or AWS needed.

import { readdirSync } from 'node:fs';
import type { z } from '@hono/zod-openapi';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../../../lambdas/api/app.ts';
import type { ApiDeps } from '../../../../lambdas/api/deps.ts';
import * as common from '../../../../protocol/api/common.ts';
import * as mapping from '../../../../protocol/api/mapping.ts';
import * as registry from '../../../../protocol/api/registry.ts';

interface Operation {
  parameters?: { name: string; in: string; schema?: Record<string, unknown> }[];
  responses: Record<string, unknown>;
  requestBody?: unknown;
}
interface Doc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Record<string, unknown>>; securitySchemes: Record<string, unknown> };
}

// Every module of protocol/api, so a route file added later is covered without editing this test.
const API_DIR = new URL('../../../../protocol/api/', import.meta.url);
const modules = await Promise.all(
  readdirSync(API_DIR)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => import(new URL(f, API_DIR).href) as Promise<Record<string, unknown>>),
);
const routes = modules
  .flatMap((m) => Object.values(m) as unknown[])
  .filter((v): v is { method: string; path: string } => {
    const r = v as { method?: unknown; path?: unknown };
    return typeof r?.method === 'string' && typeof r.path === 'string' && r.path.startsWith('/');
  });

let status: number;
let doc: Doc;

beforeAll(async () => {
  // Routes only touch their adapters when a request reaches them; generating the document needs none.
  const res = await createApp({} as ApiDeps).request('/openapi.json');
  status = res.status;
  doc = (await res.json()) as Doc;
});

const refs = (value: unknown): string[] =>
  value && typeof value === 'object'
    ? Object.entries(value).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [v] : refs(v)))
    : [];

describe('/openapi.json', () => {
  it('is an OpenAPI 3.1 document', () => {
    expect(status, JSON.stringify(doc).slice(0, 300)).toBe(200);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toMatch(/cdn-vm-migration/);
    expect(doc.components.securitySchemes).toHaveProperty('bearer');
  });

  it('lists exactly the routes of protocol/api/*.ts and /openapi.json', () => {
    expect(routes.length).toBeGreaterThanOrEqual(13);
    const documented = Object.entries(doc.paths ?? {}).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method} ${path}`),
    );
    // …and the document itself, which the app serves.
    expect(documented.sort()).toEqual(
      [...routes.map((r) => `${r.method} ${r.path}`), 'get /openapi.json'].sort(),
    );
  });

  it('gives every operation responses and resolves every $ref', () => {
    for (const ops of Object.values(doc.paths ?? {}))
      for (const op of Object.values(ops)) expect(Object.keys(op.responses).length).toBeGreaterThan(0);
    const names = new Set(Object.keys(doc.components?.schemas ?? {}));
    const dangling = refs(doc).filter((r) => !names.has(r.replace('#/components/schemas/', '')));
    expect(dangling).toEqual([]);
  });

  it.each([
    ['DataCenterInput', registry.DataCenterInput],
    ['DataCenter', registry.DataCenter],
    ['CacheNodeInput', registry.CacheNodeInput],
    ['CacheNode', registry.CacheNode],
    ['ContentMapRow', mapping.ContentMapRow],
    ['LocationMapRow', mapping.LocationMapRow],
  ] as [string, z.ZodObject][])('its %s schema is the zod one', (name, schema) => {
    const documented = doc.components.schemas[name];
    expect(Object.keys((documented?.['properties'] as object) ?? {}).sort()).toEqual(
      Object.keys(schema.shape).sort(),
    );
    const required = Object.entries(schema.shape)
      .filter(([, s]) => !(s as z.ZodType).safeParse(undefined).success)
      .map(([k]) => k);
    expect(((documented?.['required'] as string[]) ?? []).sort()).toEqual(required.sort());
  });

  it('carries the validation rules: strict inputs, bounds, enums, paging limits', () => {
    const s = doc.components.schemas;
    expect(s['DataCenterInput']?.['additionalProperties']).toBe(false);
    expect(s['CacheNodeInput']?.['additionalProperties']).toBe(false);
    expect(s['Location']?.['properties']).toMatchObject({
      lat: { minimum: -90, maximum: 90 },
      lon: { minimum: -180, maximum: 180 },
    });
    expect(s['CacheNodeStatus']?.['enum']).toEqual(registry.CacheNodeStatus.options);
    const limit = doc.paths['/v1/data-centers']?.['get']?.parameters?.find((p) => p.name === 'limit');
    expect(limit).toMatchObject({ in: 'query', schema: { maximum: 1000, minimum: 1 } });
    expect(common.PageQuery.shape.limit.safeParse('1001').success).toBe(false);
    expect(doc.paths['/v1/data-centers/{dataCenterId}']?.['put']?.parameters?.[0]).toMatchObject({
      name: 'dataCenterId',
      in: 'path',
    });
  });
});
