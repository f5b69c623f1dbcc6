// The contract check is wired into every test cloud: an answer of the local API that docs/openapi.json does not
// describe — whoever asked, over real HTTP — makes the cloud's dispose() fail, naming the request.
import { describe, expect, it } from 'vitest';
import { startTestCloud } from '../support/local-cloud.ts';

describe('a test cloud checks every API answer against docs/openapi.json', { timeout: 120_000 }, () => {
  it('passes documented answers and fails dispose() on one the document does not describe', async () => {
    const t = await startTestCloud({ agents: false, policyTickMs: 0 });
    const auth = { authorization: `Bearer ${t.cloud.tokens.adminToken}` };
    try {
      const health = await fetch(`${t.cloud.endpoints.api}/health`);
      expect(health.status).toBe(200);
      const malformed = await fetch(`${t.cloud.endpoints.api}/v1/data-centers/NOT_AN_ID`, { headers: auth });
      expect(malformed.status).toBe(400);
      // A `vmmig` process reaches the same API (through the data directory's state file).
      const ls = await t.vmmig(['dc', 'ls']);
      expect(ls.code, ls.stderr).toBe(0);
      // No operation is documented here: whatever the answer, it is outside the contract.
      const stray = await fetch(`${t.cloud.endpoints.api}/v1/no-such-route`, { headers: auth });
      expect(stray.status).toBe(404);
    } catch (err) {
      await t.dispose().catch(() => {});
      throw err;
    }
    await expect(t.dispose()).rejects.toThrow(
      /answered 1 time\(s\) outside docs\/openapi\.json:\n {2}GET \/v1\/no-such-route → no operation is documented/,
    );
  });
});
