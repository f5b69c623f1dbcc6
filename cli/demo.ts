// `npm run demo`: one real migration on the local cloud, verified. Starts the local cloud (or uses the one
// running on the data directory), puts a VM image in the source data center, migrates it to another city with
// live progress, checks the copy is identical and prints what moved.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { greatCircleKm } from '../lambdas/domain/geo.ts';
import { DEFAULT_PORT_BASE, type LocalCloud, portsFrom, startLocalCloud } from '../local/cloud.ts';
import { findQemu, qemuImg } from '../local/qemu.ts';
import { vmLikeSpec, writeQcow2Image, writeRawImage } from '../local/sample-images.ts';
import { readRunningState } from '../local/state-file.ts';
import { loadOrCreateTokens } from '../local/tokens.ts';
import { getMigration, type Migration } from '../protocol/api/migrations.ts';
import { loadTopology } from '../protocol/topology.ts';
import { ApiClient } from './client.ts';
import { migrate } from './commands/migrations.ts';
import { defaultDataDir } from './config.ts';
import { formatBytes } from './render.ts';

const { values: flags } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    from: { type: 'string', default: 'dc-gz' },
    to: { type: 'string', default: 'dc-osa' },
    'size-mib': { type: 'string', default: '2048' },
    'data-mib': { type: 'string', default: '384' },
    json: { type: 'boolean', default: false },
  },
});

const say = (line: string) => process.stdout.write(`[demo] ${line}\n`);

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path, { highWaterMark: 8 << 20 })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

async function main(): Promise<number> {
  const dataDir = defaultDataDir(flags['data-dir']);
  const topology = loadTopology(fileURLToPath(new URL('../cdk.json', import.meta.url)));
  const from = topology.dataCenters.find((d) => d.id === flags.from);
  const to = topology.dataCenters.find((d) => d.id === flags.to);
  if (!from || !to)
    throw new Error(`unknown data center: pick from ${topology.dataCenters.map((d) => d.id).join(', ')}`);

  let cloud: LocalCloud | undefined;
  let endpoint: string;
  const running = readRunningState(dataDir);
  if (running) {
    endpoint = running.endpoints.api;
    say(`using the local cloud already running on ${dataDir} (API ${endpoint})`);
  } else {
    say(`starting the local cloud (state in ${dataDir}) …`);
    cloud = await startLocalCloud({ dataDir, topology, ports: portsFrom(DEFAULT_PORT_BASE), agents: true });
    endpoint = cloud.endpoints.api;
    for (const w of cloud.warnings) say(`warning: ${w}`);
    say(`local cloud up: API ${endpoint}, edge ${cloud.endpoints.edge}, one agent per data center`);
  }
  const tokens = loadOrCreateTokens(dataDir);
  const client = new ApiClient(endpoint, tokens.adminToken);

  try {
    const size = Number(flags['size-mib']) * 1024 * 1024;
    const data = Number(flags['data-mib']) * 1024 * 1024;
    const qemu = await findQemu();
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
    const imageId = `demo-${stamp}.${qemu ? 'qcow2' : 'raw'}`;
    const source = join(dataDir, 'dc', from.id, 'images', imageId);
    const spec = vmLikeSpec(size, data, `demo ${stamp}`);
    if (qemu) {
      say(`qemu-img ${qemu.version} found: making a qcow2 image`);
      await writeQcow2Image(source, spec);
    } else {
      say('qemu-img not found (apt-get install qemu-utils): making a raw image with zero and random extents');
      await writeRawImage(source, spec);
    }
    const onDisk = (await stat(source)).blocks * 512;
    say(
      `image ${imageId} in ${from.id} (${from.name}): ${formatBytes(size)} virtual, ${formatBytes(data)} of data, ${formatBytes(onDisk)} on disk`,
    );
    say(
      `migrating to ${to.id} (${to.name}), ${Math.round(greatCircleKm(from.location, to.location))} km away …`,
    );

    const started = Date.now();
    const code = await migrate(client, {
      vm: [`demo-vm-${stamp}`],
      imageId,
      from: from.id,
      to: [to.id],
      host: 'host-1',
      wait: true,
      json: flags.json,
    });
    const seconds = (Date.now() - started) / 1000;
    const list = await client.call<{ items: Migration[] }>(
      { method: 'get', path: '/v1/migrations' },
      { query: { limit: 1 } },
    );
    const id = list.body.items[0]?.id as string;
    const m = (await client.call<Migration>(getMigration, { params: { migrationId: id } })).body;
    if (code !== 0 || m.status !== 'COMPLETED') {
      say(`migration ${m.id} ended ${m.status}: ${m.error?.message ?? `see \`npx vmmig status ${m.id}\``}`);
      return 1;
    }

    const target = join(dataDir, 'dc', to.id, 'images', imageId);
    const [a, b] = await Promise.all([sha256(source), sha256(target)]);
    if (a !== b) {
      say(`MISMATCH: source sha256 ${a}, destination ${b}`);
      return 1;
    }
    if (qemu) {
      const compare = (await qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', source, target])).trim();
      say(`verified: qemu-img compare: ${compare}; sha256 ${a.slice(0, 16)}… identical`);
    } else {
      say(`verified: sha256 ${a.slice(0, 16)}… identical at ${target}`);
    }
    const uploaded = m.upload.bytesDone;
    const copied = m.replication.bytesCopied;
    const downloaded = m.legs.reduce((n, l) => n + l.bytesDownloaded, 0);
    const moved = m.image ? m.image.size : 0;
    say(
      `summary: ${m.id} ${m.status} in ${seconds.toFixed(1)} s — image ${formatBytes(moved)} (${m.image?.chunks} chunks); ` +
        `uploaded ${formatBytes(uploaded)} to ${m.sourceCacheNodeId}, copied ${formatBytes(copied)} from ${m.sourceCacheNodeId} to ${m.legs[0]?.cacheNodeId}, ` +
        `downloaded ${formatBytes(downloaded)}; ${formatBytes(moved / seconds)}/s end to end`,
    );
    return 0;
  } finally {
    if (cloud) {
      say('stopping the local cloud (state kept)');
      await cloud.stop();
    }
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`[demo] failed: ${err.message}\n`);
    process.exitCode = 1;
  },
);
