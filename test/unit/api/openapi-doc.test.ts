// docs/openapi.json is the document the API serves; regenerate it with `npm run openapi` when routes change.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../../lambdas/api/app.ts';

describe('OpenAPI document', () => {
  it('docs/openapi.json matches the routes (run `npm run openapi` after changing them)', () => {
    const committed = JSON.parse(
      readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'),
    );
    expect(committed).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
  });

  it('describes every operation with its errors and marks only /health and /openapi.json as open', () => {
    const doc = openApiDocument();
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const [method, op] of Object.entries(
        item as Record<string, { responses: Record<string, unknown>; security?: unknown[] }>,
      )) {
        expect(Object.keys(op.responses).length, `${method} ${path}`).toBeGreaterThan(0);
        if (path === '/health' || path === '/openapi.json') expect(op.security).toEqual([]);
        else expect(op.security, `${method} ${path}`).toBeUndefined();
      }
    }
  });
});
