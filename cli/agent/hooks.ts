// The data center's own commands the agent runs: --on-ready ("VM created at the destination") and
// --on-migrated (the VM now lives elsewhere: stop and remove it at the source). Through the shell, with the
// migration's facts in the environment; a non-zero exit is a failure with the command's stderr as the cause.
import { spawn } from 'node:child_process';

export interface HookEnv {
  readonly VMMIG_IMAGE_PATH: string;
  readonly VMMIG_IMAGE_ID: string;
  readonly VMMIG_IMAGE_FORMAT: string;
  readonly VMMIG_VM_ID: string;
  readonly VMMIG_HOST_ID: string;
  readonly VMMIG_MIGRATION_ID: string;
  readonly VMMIG_DATA_CENTER_ID: string;
  readonly [more: string]: string;
}

/** The agent's credentials (its API token, its AWS keys) never reach a hook or anything it starts. */
const CREDENTIALS = [
  'VMMIG_TOKEN',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_SECURITY_TOKEN',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
];

export function hookEnvironment(env: HookEnv): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !CREDENTIALS.includes(k)));
  return { ...inherited, ...env };
}

export function runHook(name: string, command: string, env: HookEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, {
      shell: true,
      env: hookEnvironment(env),
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
      process.stderr.write(d);
    });
    child.on('error', (err) => reject(new Error(`${name} hook could not start: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${name} hook exited with ${code ?? signal}: ${stderr.trim().slice(-500)}`));
    });
  });
}
