// The local cloud's S3-compatible server: fauxqs in a child process on 127.0.0.1, objects stored as files under
// `<dataDir>/s3`, one bucket per cache node created at start (idempotently), uploads checked against checksums.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { assertPortFree, LOOPBACK, PortInUseError } from '../ports.ts';
import type { S3AppOptions } from './app.ts';

export const CONFIG_ENV = 'VMMIG_S3_CHILD_CONFIG';

export type ChildMessage =
  | {
      type: 'ready';
      port: number;
      bindsLoopbackOnly: boolean;
      validatesChecksums: boolean;
      fallbackReason?: string;
    }
  | { type: 'failed'; message: string; code?: string };

export interface S3ServerOptions {
  /** Absolute directory; objects go to `<dataDir>/s3`. Created if missing. */
  readonly dataDir: string;
  /** 0 lets the OS pick; the endpoint carries the actual port. */
  readonly port: number;
  /** Created if missing; existing buckets and their objects are kept. */
  readonly buckets: readonly string[];
  readonly startTimeoutMs?: number;
  /** Testing aid: run fauxqs's public startFauxqs (0.0.0.0, no checksum validation) as if the internals were gone. */
  readonly forceFallback?: boolean;
  /** IAM enforcement (local/iam): each request authorized against its signer's policy. */
  readonly iam?: S3AppOptions['iam'];
}

export interface S3Server {
  /** Path-style endpoint, e.g. http://127.0.0.1:4566: clients need `forcePathStyle: true`. */
  readonly endpoint: string;
  readonly port: number;
  readonly pid: number;
  /** False in the fallback mode, which listens on every interface: the caller should warn. */
  readonly bindsLoopbackOnly: boolean;
  /** False in the fallback mode: corrupted uploads are then stored, not rejected. */
  readonly validatesChecksums: boolean;
  /** Set in the fallback mode: why fauxqs's internals could not be used. */
  readonly fallbackReason?: string;
  stop(): Promise<void>;
}

const WHAT = 'the local S3 server';
const CHILD_ENTRY = fileURLToPath(new URL('./child.ts', import.meta.url));

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((done) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      done(true);
    });
  });
}

async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitForExit(child, graceMs);
}

export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major < 22 || (major === 22 && minor < 5)) {
    // fauxqs imports node:sqlite; the child runs on this same Node binary.
    throw new Error(
      `${WHAT} needs Node.js 22.5 or newer (fauxqs uses node:sqlite); this is ${process.version}.`,
    );
  }
  await assertPortFree(options.port, WHAT);

  // tsx resolved from here, so the child loads .ts whatever the caller's working directory is.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const config = {
    dataDir,
    port: options.port,
    host: LOOPBACK,
    buckets: options.buckets,
    forceFallback: !!options.forceFallback,
    ...(options.iam ? { iam: options.iam } : {}),
  };
  const child = spawn(process.execPath, ['--import', tsx, CHILD_ENTRY], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, [CONFIG_ENV]: JSON.stringify(config) },
  });
  let output = '';
  const keepTail = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);

  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await new Promise<ChildMessage | { type: 'exited'; detail: string }>((settle) => {
    child.on('message', (message: ChildMessage) => settle(message));
    child.once('error', (err) => settle({ type: 'exited', detail: `could not spawn: ${err.message}` }));
    child.once('exit', (code, signal) =>
      settle({ type: 'exited', detail: `exited (code ${code}, signal ${signal})` }),
    );
    timer = setTimeout(
      () => settle({ type: 'exited', detail: `was not ready within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  clearTimeout(timer);

  if (outcome.type !== 'ready') {
    await stopChild(child);
    if (outcome.type === 'failed' && outcome.code === 'EADDRINUSE')
      throw new PortInUseError(options.port, WHAT, LOOPBACK);
    const detail = outcome.type === 'failed' ? outcome.message : outcome.detail;
    throw new Error(`${WHAT} on port ${options.port} failed to start: ${detail}\n${output.trim()}`.trim());
  }

  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://${LOOPBACK}:${outcome.port}`,
    port: outcome.port,
    pid: child.pid ?? -1,
    bindsLoopbackOnly: outcome.bindsLoopbackOnly,
    validatesChecksums: outcome.validatesChecksums,
    ...(outcome.fallbackReason === undefined ? {} : { fallbackReason: outcome.fallbackReason }),
    stop() {
      stopping ??= stopChild(child);
      return stopping;
    },
  };
}
