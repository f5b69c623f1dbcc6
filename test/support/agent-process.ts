// Runs a data center's agent as a separate process, exactly as an operator would, so tests can kill -9 it.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { agentArgs } from '../../local/agents.ts';
import type { TestCloud } from './local-cloud.ts';

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly lines: string[];
  /** Resolves with the first output line matching. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startAgentProcess(
  t: TestCloud,
  dataCenterId: string,
  extraArgs: string[] = [],
): AgentProcess {
  const args = agentArgs(
    { dataCenterId, dir: t.cloud.dataCenterDir(dataCenterId), token: t.cloud.agentToken(dataCenterId) },
    t.cloud.endpoints.api,
  );
  const child = spawn(process.execPath, [...args, '--poll-interval', '200', ...extraArgs], {
    // Its own AWS identity, as an agent's role: it listens on its data center's work queue.
    env: {
      ...process.env,
      ...t.cloud.agentEnvironment(dataCenterId),
      VMMIG_TOKEN: t.cloud.agentToken(dataCenterId),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.pattern.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
  }
  return {
    child,
    lines,
    waitForLine(pattern, timeoutMs = 60_000) {
      const hit = lines.find((l) => pattern.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no line matching ${pattern}; got:\n${lines.join('\n')}`)),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
    kill(signal = 'SIGKILL') {
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      });
    },
  };
}
