// Child process of P5, started the way the agent is (node --import tsx): `chunk <file>` runs the agent's chunker
// (FastCDC + SHA-256 per chunk and over the image), `sha256 <file>` one plain SHA-256 pass (the baseline), `idle`
// nothing (the runtime's own memory). Prints one JSON line.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chunkFile, collectChunks } from '../../protocol/chunker.ts';

const [mode, file] = process.argv.slice(2);
const started = performance.now();
let bytes = 0;
let chunks = 0;
if (mode === 'chunk' && file) {
  const r = await collectChunks(chunkFile(file));
  bytes = r.size;
  chunks = r.chunks.length;
} else if (mode === 'sha256' && file) {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(file, { highWaterMark: 8 * 1024 * 1024 })) {
    hash.update(piece as Buffer);
    bytes += (piece as Buffer).length;
  }
  hash.digest('hex');
} else if (mode !== 'idle') {
  throw new Error('usage: chunk-child chunk|sha256 <file> | idle');
}
const ms = performance.now() - started;
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({
    mode,
    bytes,
    chunks,
    ms,
    maxRssMiB: usage.maxRSS / 1024,
    cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
  })}\n`,
);
