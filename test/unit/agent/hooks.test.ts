// A hook (--on-ready, --on-migrated) gets the migration's facts and the agent's environment, never its credentials.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type HookEnv, hookEnvironment, runHook } from '../../../cli/agent/hooks.ts';

/** What docs/cli.md promises a hook: these seven variables, plus the agent's environment minus credentials. */
const FACTS: HookEnv = {
  VMMIG_IMAGE_PATH: '/images/web-01.qcow2',
  VMMIG_IMAGE_ID: 'web-01.qcow2',
  VMMIG_IMAGE_FORMAT: 'qcow2',
  VMMIG_VM_ID: 'web-01',
  VMMIG_HOST_ID: 'host-7',
  VMMIG_MIGRATION_ID: 'mig-123',
  VMMIG_DATA_CENTER_ID: 'dc-osa',
};
const SECRETS = {
  VMMIG_TOKEN: 'vmmig-agent.dc-osa.secret',
  AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'secret-key',
  AWS_SESSION_TOKEN: 'session-token',
  AWS_SECURITY_TOKEN: 'security-token',
  AWS_CONTAINER_AUTHORIZATION_TOKEN: 'container-token',
};
const INHERITED = { VMMIG_TEST_INHERITED: 'kept', AWS_REGION: 'ap-northeast-1' };

let saved: Record<string, string | undefined>;
let dir: string;
beforeEach(async () => {
  saved = Object.fromEntries(Object.keys({ ...SECRETS, ...INHERITED }).map((k) => [k, process.env[k]]));
  Object.assign(process.env, SECRETS, INHERITED);
  dir = await mkdtemp(join(tmpdir(), 'vmmig-hooks-'));
});
afterEach(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await rm(dir, { recursive: true, force: true });
});

describe('hookEnvironment', () => {
  it('has the migration facts and the inherited environment, without the agent token or AWS credentials', () => {
    const env = hookEnvironment(FACTS);
    expect(env).toMatchObject({ ...FACTS, ...INHERITED });
    for (const secret of Object.keys(SECRETS)) expect(env).not.toHaveProperty(secret);
  });
});

describe('runHook', () => {
  it('the hook process sees the facts and the inherited environment, and no credential', async () => {
    const out = join(dir, 'env.txt');
    await runHook('on-ready', `env > '${out}'`, FACTS);
    const seen = Object.fromEntries(
      (await readFile(out, 'utf8'))
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(seen).toMatchObject({ ...FACTS, ...INHERITED });
    for (const secret of Object.keys(SECRETS)) expect(seen).not.toHaveProperty(secret);
    for (const value of Object.values(SECRETS)) expect(Object.values(seen)).not.toContain(value);
  });

  it('a failing hook rejects with its exit code and stderr', async () => {
    await expect(runHook('on-ready', 'echo "no disk space" >&2; exit 3', FACTS)).rejects.toThrow(
      /on-ready hook exited with 3: no disk space/,
    );
  });
});
