// The contract check is wired into every test cloud: an answer of the local API that the document does not
// describe — whoever asked, over real HTTP — makes the cloud's dispose() fail, naming the request. The cloud here
// checks against a copy of docs/openapi.json without /health's 200, so that a healthy server breaks it.
import { describe, expect, it } from 'vitest';
import { Contract, documentedContract } from '../support/contract.ts';
import { startTestCloud } from '../support/local-cloud.ts';

describe('a test cloud checks every API answer against the OpenAPI document', { timeout: 120_000 }, () => {
  it('passes documented answers and fails dispose() on one the document does not describe', async () => {
    const doc = structuredClone(documentedContract().doc);
    delete doc.paths['/health']?.['get']?.responses['200'];
    const t = await startTestCloud({ agents: false, policyTickMs: 0, contract: new Contract(doc) });
    const auth = { authorization: `Bearer ${t.cloud.tokens.adminToken}` };
    try {
      const malformed = await fetch(`${t.cloud.endpoints.api}/v1/data-centers/NOT_AN_ID`, { headers: auth });
      expect(malformed.status).toBe(400);
      // A route that does not exist is refused with an error body: no operation, no breach.
      const stray = await fetch(`${t.cloud.endpoints.api}/v1/no-such-route`, { headers: auth });
      expect(stray.status).toBe(404);
      // A `vmmig` process reaches the same API (through the data directory's state file).
      const ls = await t.vmmig(['dc', 'ls']);
      expect(ls.code, ls.stderr).toBe(0);
      const health = await fetch(`${t.cloud.endpoints.api}/health`);
      expect(health.status).toBe(200);
    } catch (err) {
      await t.dispose().catch(() => {});
      throw err;
    }
    await expect(t.dispose()).rejects.toThrow(
      /answered 1 time\(s\) outside docs\/openapi\.json:\n {2}GET \/health → status 200 is not documented/,
    );
  });
});
