import { createHash, createHmac } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bearer, regionOfEndpoint, sigv4 } from '../../../cli/auth.ts';

const request = {
  method: 'POST',
  url: new URL('https://abc123.execute-api.ap-northeast-1.amazonaws.com/v1/migrations?limit=5'),
  headers: { 'content-type': 'application/json' },
  body: '{"vmId":"web-01"}',
};

describe('CLI authentication', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
  });

  it('bearer: the local cloud token in the Authorization header', async () => {
    expect(await bearer('tok')(request)).toEqual({
      'content-type': 'application/json',
      authorization: 'Bearer tok',
    });
  });

  it('finds the region of an API Gateway endpoint', () => {
    expect(regionOfEndpoint('https://abc123.execute-api.ap-northeast-1.amazonaws.com')).toBe(
      'ap-northeast-1',
    );
    expect(regionOfEndpoint('http://127.0.0.1:7700')).toBeUndefined();
  });

  it('sigv4: signs for execute-api with the credential chain, as the AWS reference hash would', async () => {
    vi.useFakeTimers({ now: new Date('2026-11-25T08:00:00Z'), toFake: ['Date'] });
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLE');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY');
    vi.stubEnv('AWS_SESSION_TOKEN', '');
    vi.stubEnv('AWS_PROFILE', '');
    const headers = await sigv4('ap-northeast-1')(request);
    expect(headers['authorization']).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261125\/ap-northeast-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/,
    );
    expect(headers['x-amz-date']).toBe('20261125T080000Z');
    // The signature, derived by hand from the SigV4 specification, matches.
    const signed = headers['authorization']?.match(/SignedHeaders=([^,]+), Signature=(\w+)/);
    const names = (signed?.[1] ?? '').split(';');
    const all: Record<string, string> = { ...headers, host: request.url.host };
    const canonical = [
      'POST',
      '/v1/migrations',
      'limit=5',
      ...names.map((n) => `${n}:${all[n]?.trim()}`),
      '',
      signed?.[1],
      createHash('sha256').update(request.body).digest('hex'),
    ].join('\n');
    const scope = '20261125/ap-northeast-1/execute-api/aws4_request';
    const toSign = [
      'AWS4-HMAC-SHA256',
      '20261125T080000Z',
      scope,
      createHash('sha256').update(canonical).digest('hex'),
    ].join('\n');
    const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
    let key = hmac('AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20261125');
    for (const part of ['ap-northeast-1', 'execute-api', 'aws4_request']) key = hmac(key, part);
    expect(signed?.[2]).toBe(hmac(key, toSign).toString('hex'));
  });
});
