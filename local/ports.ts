// Port helpers for the local cloud's servers: pick a free loopback port, and fail early with a message that
// names the port and the component when the port is already taken.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LOOPBACK = '127.0.0.1';

export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(
    readonly port: number,
    readonly what: string,
    readonly host: string,
  ) {
    super(
      `${what} cannot start: port ${port} on ${host} is already in use. Stop the process that holds it ` +
        `(\`lsof -i :${port}\` or \`ss -ltnp 'sport = :${port}'\` shows which), or start the local cloud on other ports ` +
        `with --port-base N (it takes N to N+4; default 7700): \`npm start -- --port-base 7800\` or ` +
        `\`npx vmmig local --port-base 7800\`.`,
    );
  }
}

/**
 * A port that was free on the loopback interface a moment ago. It is taken below the kernel's ephemeral range: a
 * port the OS hands out (port 0) comes from that range, where outgoing connections take their local ports too, and
 * one of them may hold it by the time the server that was promised it binds.
 *
 * Between this answer and the bind (seconds for DynamoDB Local's JVM) another process could be handed the same
 * port, so each port handed out is claimed for a while: in this process, and across processes (parallel test
 * workers, two local clouds starting at once) by a claim file that other callers of findFreePort respect.
 */
export async function findFreePort(host: string = LOOPBACK): Promise<number> {
  const ephemeralFrom = firstEphemeralPort();
  const low = 10_000;
  if (ephemeralFrom - low > 1_000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = low + Math.floor(Math.random() * (ephemeralFrom - low));
      if (!claim(port)) continue;
      if (await canBind(host, port)) return port;
    }
  }
  return anyPort(host);
}

/** How long a port handed out stays claimed: longer than any server here takes to bind it. */
const CLAIM_MS = 120_000;
const claimedHere = new Map<number, number>();

function claim(port: number): boolean {
  const now = Date.now();
  const mine = claimedHere.get(port);
  if (mine !== undefined && now - mine < CLAIM_MS) return false;
  const dir = join(tmpdir(), 'vmmig-port-claims');
  const file = join(dir, String(port));
  try {
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (now - statSync(file).mtimeMs < CLAIM_MS) return false;
      writeFileSync(file, String(process.pid)); // a stale claim: the server that asked for it bound it long ago
    }
  } catch {
    // No shared temporary directory: the in-process claim still holds.
  }
  claimedHere.set(port, now);
  return true;
}

function firstEphemeralPort(): number {
  try {
    const range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const from = Number(range[0]);
    return Number.isInteger(from) && from > 0 ? from : 32_768;
  } catch {
    return 32_768; // Linux's default; elsewhere ports below it are just as good a guess.
  }
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function anyPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Throws PortInUseError when `port` cannot be bound on `host`; `what` names the component in the message. */
export function assertPortFree(port: number, what: string, host: string = LOOPBACK): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') {
        reject(
          err.code === 'EADDRINUSE'
            ? new PortInUseError(port, what, host)
            : new Error(
                `${what} cannot start: no permission to bind port ${port} on ${host} (${err.message})`,
              ),
        );
      } else {
        reject(err);
      }
    });
    server.listen({ host, port, exclusive: true }, () => {
      server.close((err) => (err ? reject(err) : resolve()));
    });
  });
}

/** Maps a listen() error to the same clear message assertPortFree gives (for the race between check and bind). */
export function describeListenError(
  err: unknown,
  port: number,
  what: string,
  host: string = LOOPBACK,
): Error {
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE')
    return new PortInUseError(port, what, host);
  return err instanceof Error ? err : new Error(String(err));
}
