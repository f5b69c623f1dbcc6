// Experiment behind the agent-transfer findings: client CPU per GiB for moving chunks over local HTTP, the way the
// agent does it now (fetch: PUT with a Buffer body; GET with arrayBuffer(), then SHA-256 and pwrite) and the way
// proposed (node:http with a keep-alive agent; GET streamed into a reused buffer while hashing). The server runs in
// a child process, so only the client's CPU is counted. Usage: npx tsx bench/experiments/transfer-client.ts [MiB]
import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { Agent, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHUNK = 5 * 1024 * 1024;
const CONCURRENCY = 8;

if (process.argv[2] === 'server') {
  const body = randomBytes(CHUNK);
  const server = createServer((req, res) => {
    if (req.method === 'PUT') {
      req.on('data', () => {});
      req.on('end', () => res.end());
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length) });
    res.end(body);
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.(typeof address === 'object' && address ? address.port : 0);
  });
} else {
  const totalMiB = Number(process.argv[2] ?? 1024);
  const count = Math.round((totalMiB * 1024 * 1024) / CHUNK);
  const child = fork(new URL(import.meta.url).pathname, ['server'], { execArgv: ['--import', 'tsx'] });
  const port = await new Promise<number>((resolve) => child.once('message', (p) => resolve(p as number)));
  const url = `http://127.0.0.1:${port}/chunk`;
  const file = await open(join(tmpdir(), `transfer-client-${process.pid}`), 'w+');
  const payload = randomBytes(CHUNK);
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

  async function pool(fn: (i: number) => Promise<void>) {
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < count) await fn(next++);
      }),
    );
  }
  async function measure(name: string, fn: (i: number) => Promise<void>) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await pool(fn);
    const cpu = process.cpuUsage(cpu0);
    const s = (cpu.user + cpu.system) / 1e6;
    const gib = (count * CHUNK) / 2 ** 30;
    process.stdout.write(
      `${name.padEnd(44)} ${(s / gib).toFixed(2)} CPU-s/GiB, ${((count * CHUNK) / 2 ** 20 / ((performance.now() - t0) / 1000)).toFixed(0)} MiB/s\n`,
    );
  }

  // Upload, as cli/agent/transfer.ts putChunk does it, and with node:http.
  await measure('PUT: fetch with a Buffer body (now)', async () => {
    const res = await fetch(url, { method: 'PUT', body: payload });
    await res.text();
  });
  await measure('PUT: node:http request, keep-alive (proposed)', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(
        url,
        { method: 'PUT', agent, headers: { 'content-length': String(payload.length) } },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  });
  // Download, as cli/agent/destination.ts does it (getChunk + createHash + file.write), and streamed.
  await measure('GET: fetch + arrayBuffer + hash + pwrite (now)', async (i) => {
    const res = await fetch(url);
    const bytes = new Uint8Array(await res.arrayBuffer());
    createHash('sha256').update(bytes).digest('hex');
    await file.write(bytes, 0, bytes.length, i * CHUNK);
  });
  const buffers = Array.from({ length: CONCURRENCY }, () => Buffer.allocUnsafe(8 * 1024 * 1024));
  await measure('GET: node:http streamed into a reused buffer (proposed)', async (i) => {
    const buf = buffers.pop() as (typeof buffers)[number];
    try {
      const n = await new Promise<number>((resolve, reject) => {
        const hash = createHash('sha256');
        request(url, { agent }, (res) => {
          let at = 0;
          res.on('data', (piece: Buffer) => {
            hash.update(piece);
            piece.copy(buf, at);
            at += piece.length;
          });
          res.on('end', () => {
            hash.digest('hex');
            resolve(at);
          });
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
      await file.write(buf, 0, n, i * CHUNK);
    } finally {
      buffers.push(buf);
    }
  });
  await file.close();
  await rm(join(tmpdir(), `transfer-client-${process.pid}`), { force: true });
  agent.destroy();
  child.kill();
}
