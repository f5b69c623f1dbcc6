// Real OS disk images for P7: a Debian root filesystem (debootstrap, cached between runs) in an ext4 image
// (mkfs.ext4 -d), and clones of it changed inside the filesystem (debugfs) the way VMs of one fleet diverge: each
// installs its own application files and gets a few upgraded binaries. Everything a clone adds comes from seeds, so
// runs are comparable. And casync (the baseline) run over the same files into one store.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { seededBytes } from '../../local/sample-images.ts';
import type { Format } from './images.ts';

const run = promisify(execFile);

export const DEBIAN_SUITE = 'bookworm';
export const DEFAULT_DEBIAN_MIRROR = 'http://deb.debian.org/debian';
export const APT_GET = 'apt-get install debootstrap e2fsprogs qemu-utils casync';
/** Where the debootstrapped root filesystem is kept between runs (a tarball; delete it to rebuild). */
export const CACHE_DIR = join(tmpdir(), 'vmmig-bench-cache');
/** Fixed file system UUID and directory hash seed, so the base image does not differ by them from run to run. */
const FS_UUID = '6d1e5f2a-7b3c-4e8d-9a0f-1c2b3d4e5f60';
/** mkfs.ext4 and debugfs stamp the superblock and new inodes with this time (E2FSPROGS_FAKE_TIME). */
const FAKE_TIME = '1700000000';
const E2FS_ENV = { ...process.env, E2FSPROGS_FAKE_TIME: FAKE_TIME };
const BLOCK = 4096;
const BIG = { maxBuffer: 64 * 1024 * 1024 };

export interface OsTools {
  readonly debootstrap: string;
  readonly mkfs: string;
  readonly debugfs: string;
  readonly casync: string;
  readonly qemuImg: string | undefined;
  readonly versions: Record<string, string>;
}

async function which(cmd: string): Promise<string | undefined> {
  // /usr/sbin and /sbin hold debootstrap, mkfs.ext4 and debugfs; a non-root PATH may lack them.
  const path = `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`;
  try {
    const { stdout } = await run('/bin/sh', ['-c', `command -v ${cmd}`], {
      env: { ...process.env, PATH: path },
    });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

async function version(cmd: string, args: string[], pattern: RegExp): Promise<string> {
  try {
    const { stdout, stderr } = await run(cmd, args);
    return pattern.exec(`${stdout}\n${stderr}`)?.[1] ?? 'unknown';
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return pattern.exec(`${e.stdout ?? ''}\n${e.stderr ?? ''}`)?.[1] ?? 'unknown';
  }
}

/**
 * The tools P7 needs, or an error naming what is missing and how to install it: debootstrap, mkfs.ext4 and debugfs
 * (e2fsprogs), casync, and qemu-img for qcow2 images; root, because debootstrap needs it.
 */
export async function checkOsTools(format: Format): Promise<OsTools> {
  const wanted: [string, string][] = [
    ['debootstrap', 'debootstrap'],
    ['mkfs.ext4', 'e2fsprogs'],
    ['debugfs', 'e2fsprogs'],
    ['casync', 'casync'],
    ...(format === 'qcow2' ? [['qemu-img', 'qemu-utils'] as [string, string]] : []),
  ];
  const found = new Map<string, string>();
  const missing: string[] = [];
  for (const [tool, pkg] of wanted) {
    const path = await which(tool);
    if (path) found.set(tool, path);
    else missing.push(`${tool} (Debian package ${pkg})`);
  }
  if (missing.length > 0) {
    throw new Error(
      `P7 needs ${missing.join(', ')}: not found on PATH, /usr/sbin or /sbin. Install them with: ${APT_GET}`,
    );
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      'P7 needs root: debootstrap builds the Debian root filesystem as root (and the image keeps its owners). ' +
        `Run the bench as root (e.g. sudo -E npm run bench -- --only P7), with ${APT_GET} done.`,
    );
  }
  const get = (t: string) => found.get(t) as string;
  return {
    debootstrap: get('debootstrap'),
    mkfs: get('mkfs.ext4'),
    debugfs: get('debugfs'),
    casync: get('casync'),
    qemuImg: found.get('qemu-img'),
    versions: {
      debootstrap: await version(get('debootstrap'), ['--version'], /debootstrap (\S+)/),
      e2fsprogs: await version(get('mkfs.ext4'), ['-V'], /mke2fs ([\d.]+)/),
      casync: await version(get('casync'), ['--version'], /casync (\S+)/),
      ...(found.has('qemu-img')
        ? { qemuImg: await version(get('qemu-img'), ['--version'], /version ([\d.]+)/) }
        : {}),
    },
  };
}

export interface Rootfs {
  readonly dir: string;
  readonly tarball: string;
  /** Reused from an earlier run (no debootstrap this time). */
  readonly cached: boolean;
  readonly seconds: number;
  readonly mirror: string;
}

async function architecture(): Promise<string> {
  try {
    return (await run('dpkg', ['--print-architecture'])).stdout.trim() || process.arch;
  } catch {
    return process.arch;
  }
}

const rootfsTarball = (arch: string) => join(CACHE_DIR, `debian-${DEBIAN_SUITE}-minbase-${arch}.tar`);

/**
 * A Debian root filesystem (`debootstrap --variant=minbase bookworm`) in `dir`: extracted from the cache tarball
 * under CACHE_DIR when there is one, else debootstrapped (about a minute) and then cached.
 */
export async function debianRootfs(
  tools: OsTools,
  dir: string,
  log: (line: string) => void,
): Promise<Rootfs> {
  const mirror = process.env['VMMIG_BENCH_DEBIAN_MIRROR'] || DEFAULT_DEBIAN_MIRROR;
  const tarball = rootfsTarball(await architecture());
  const started = performance.now();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  if (existsSync(tarball)) {
    const built = (await stat(tarball)).mtime.toISOString().slice(0, 16).replace('T', ' ');
    log(
      `P7: reusing the cached Debian root filesystem ${tarball} (built ${built} UTC; delete it to rebuild)`,
    );
    await run('tar', ['-xpf', tarball, '--numeric-owner', '-C', dir], BIG);
    return { dir, tarball, cached: true, seconds: (performance.now() - started) / 1000, mirror };
  }
  log(
    `P7: debootstrap --variant=minbase ${DEBIAN_SUITE} from ${mirror} (about a minute; cached afterwards in ${tarball})`,
  );
  try {
    await run(tools.debootstrap, ['--variant=minbase', DEBIAN_SUITE, dir, mirror], BIG);
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const detail = await readFile(join(dir, 'debootstrap', 'debootstrap.log'), 'utf8').catch(() => '');
    throw new Error(
      `debootstrap failed (mirror ${mirror}; set VMMIG_BENCH_DEBIAN_MIRROR for another): ${(e.stderr || e.stdout || e.message).trim().slice(-800)}${detail ? `\n${detail.slice(-1500)}` : ''}`,
    );
  }
  await mkdir(CACHE_DIR, { recursive: true });
  const partial = `${tarball}.${process.pid}.partial`;
  await run('tar', ['-cpf', partial, '--numeric-owner', '-C', dir, '.'], BIG);
  await rename(partial, tarball);
  return { dir, tarball, cached: false, seconds: (performance.now() - started) / 1000, mirror };
}

/** The base image: an ext4 file system of `size` bytes holding the root filesystem, as a sparse raw file. */
export async function makeBaseImage(
  tools: OsTools,
  rootfs: string,
  path: string,
  size: number,
): Promise<void> {
  await rm(path, { force: true });
  await writeFile(path, '');
  await truncate(path, size);
  await run(
    tools.mkfs,
    ['-q', '-F', '-U', FS_UUID, '-E', `hash_seed=${FS_UUID}`, '-L', 'vmmig-p7', '-d', rootfs, path],
    { ...BIG, env: E2FS_ENV },
  );
}

export interface BaseImage {
  /** Where the root filesystem came from: the cached base image, the cached tarball, or debootstrap. */
  readonly from: 'cached image' | 'cached root filesystem' | 'debootstrap';
  readonly seconds: number;
  readonly mirror: string;
  readonly cache: string;
}

/**
 * The base image at `path` (sparse raw, `size` bytes): a copy of the one cached under CACHE_DIR when there is one
 * no older than the root filesystem's tarball, else built (debianRootfs, then makeBaseImage) and cached. A cached
 * base is byte for byte the same in every run; a rebuilt one differs in its inodes' change times.
 */
export async function debianBaseImage(
  tools: OsTools,
  path: string,
  size: number,
  work: string,
  log: (line: string) => void,
): Promise<BaseImage> {
  const started = performance.now();
  const arch = await architecture();
  const cached = join(
    CACHE_DIR,
    `debian-${DEBIAN_SUITE}-minbase-${arch}-ext4-${Math.round(size / 2 ** 20)}MiB.raw`,
  );
  const tarball = rootfsTarball(arch);
  const mirror = process.env['VMMIG_BENCH_DEBIAN_MIRROR'] || DEFAULT_DEBIAN_MIRROR;
  if (
    existsSync(cached) &&
    existsSync(tarball) &&
    (await stat(cached)).mtimeMs >= (await stat(tarball)).mtimeMs
  ) {
    log(
      `P7: reusing the cached base image ${cached} (delete ${CACHE_DIR} to rebuild it from a fresh debootstrap)`,
    );
    await run('cp', ['--sparse=always', cached, path]);
    return { from: 'cached image', seconds: (performance.now() - started) / 1000, mirror, cache: cached };
  }
  const rootfs = await debianRootfs(tools, join(work, 'rootfs'), log);
  try {
    await makeBaseImage(tools, rootfs.dir, path, size);
  } finally {
    await rm(rootfs.dir, { recursive: true, force: true });
  }
  const partial = `${cached}.${process.pid}.partial`;
  await run('cp', ['--sparse=always', path, partial]);
  await rename(partial, cached);
  return {
    from: rootfs.cached ? 'cached root filesystem' : 'debootstrap',
    seconds: (performance.now() - started) / 1000,
    mirror,
    cache: cached,
  };
}

/** Copies a file out of an image's file system (`debugfs -R "dump <path> <to>"`). */
export async function dumpFile(tools: OsTools, image: string, path: string, to: string): Promise<Buffer> {
  await rm(to, { force: true });
  await run(tools.debugfs, ['-R', `dump ${path} ${to}`, image], BIG);
  if (!existsSync(to)) throw new Error(`debugfs could not read ${path} from ${image}`);
  return readFile(to);
}

/** sfc32 seeded from SHA-256 of the seed: a fast deterministic PRNG returning numbers in [0, 1). */
export function prng(seed: string): () => number {
  const h = createHash('sha256').update(seed).digest();
  let a = h.readUInt32LE(0);
  let b = h.readUInt32LE(4);
  let c = h.readUInt32LE(8);
  let d = h.readUInt32LE(12);
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

const LETTERS = 'etaoinshrdlcumwfgypbvkjxqz';

/** A vocabulary of pronounceable-ish words, the same for a whole fleet (its applications share a language). */
export function vocabulary(seed: string, size = 2048): string[] {
  const r = prng(`vocabulary ${seed}`);
  return Array.from({ length: size }, () => {
    const n = 2 + Math.floor(r() * r() * 10);
    let w = '';
    // Skewed towards frequent letters, as in text.
    for (let i = 0; i < n; i++) w += LETTERS[Math.floor(r() * r() * LETTERS.length)];
    return w;
  });
}

/**
 * A text file of about `bytes` bytes (prose, log lines, key = value settings) from a seed: compressible the way
 * an application's text files are (zstd takes it to about a third).
 */
export function textFile(seed: string, bytes: number, words: readonly string[]): Buffer {
  const r = prng(seed);
  // Zipf-like: a few words are everywhere.
  const word = () => words[Math.floor(r() ** 2.2 * words.length)] as string;
  const lines: string[] = [];
  let n = 0;
  let clock = 1_700_000_000 + Math.floor(r() * 10_000_000);
  while (n < bytes) {
    const kind = r();
    let line: string;
    if (kind < 0.55) {
      const count = 6 + Math.floor(r() * 10);
      line = Array.from({ length: count }, word).join(' ');
      line = `${line.charAt(0).toUpperCase()}${line.slice(1)}.`;
    } else if (kind < 0.85) {
      clock += Math.floor(r() * 90);
      const level = r() < 0.8 ? 'INFO' : r() < 0.7 ? 'WARN' : 'ERROR';
      const count = 3 + Math.floor(r() * 6);
      line = `${new Date(clock * 1000).toISOString()} ${level} ${word()}.${word()}: ${Array.from({ length: count }, word).join(' ')} id=${Math.floor(r() * 1e6)} took=${Math.floor(r() * 5000)}ms`;
    } else {
      line = `${word()}_${word()} = ${r() < 0.5 ? Math.floor(r() * 65536) : `"${word()} ${word()}"`}`;
    }
    lines.push(line);
    n += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`).subarray(0, bytes);
}

/**
 * An upgraded version of a binary: `share` of its 4 KiB blocks (seeded) are changed, each by rewriting about one
 * byte in 16 (what shifted addresses and changed code do), so every changed block is new but stays binary-like.
 */
export function upgradedBinary(original: Buffer, seed: string, share: number): Buffer {
  const r = prng(seed);
  const out = Buffer.from(original);
  for (let at = 0; at < out.length; at += BLOCK) {
    if (r() >= share) continue;
    const end = Math.min(out.length, at + BLOCK);
    for (let i = at; i < end; i++)
      if (r() < 1 / 16) out[i] = ((out[i] as number) + 1 + Math.floor(r() * 255)) & 255;
  }
  return out;
}

export interface CloneSpec {
  /** Clone number, from 1: its files go to /opt/app<index>. */
  readonly index: number;
  readonly seed: string;
  readonly textFiles: number;
  /** Average size of a text file (each is 80–120 % of it). */
  readonly textBytes: number;
  /** Seeded random bytes in /opt/app<index>/data.bin (incompressible). */
  readonly randomBytes: number;
  /** Binaries replaced by upgraded versions (paths inside the image, read from the root filesystem). */
  readonly binaries: readonly string[];
  /** Share of each upgraded binary's 4 KiB blocks that changed. */
  readonly changedShare: number;
}

export interface CloneWrites {
  readonly files: number;
  /** Bytes the clone wrote into its file system (new files and upgraded binaries). */
  readonly bytes: number;
  readonly textBytes: number;
  readonly randomBytes: number;
  readonly binaryBytes: number;
}

/** Runs debugfs commands against an image, read-write; fails on any error it reports. */
export async function debugfs(tools: OsTools, image: string, commands: readonly string[], dir: string) {
  const file = join(dir, 'debugfs.cmds');
  await writeFile(file, `${commands.join('\n')}\n`);
  const { stderr } = await run(tools.debugfs, ['-w', '-f', file, image], { ...BIG, env: E2FS_ENV });
  const errors = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^debugfs [\d.]+ \(/.test(l));
  if (errors.length > 0) throw new Error(`debugfs on ${image}: ${errors.slice(0, 5).join('; ')}`);
}

/**
 * A clone: a sparse copy of the base (raw) with, inside its file system, its own application files in
 * /opt/app<index> (text files and a blob of random bytes) and a few binaries upgraded (removed and written anew,
 * as a package upgrade does). The binaries' current contents are read from the base image.
 */
export async function makeClone(
  tools: OsTools,
  base: string,
  path: string,
  spec: CloneSpec,
  words: readonly string[],
  work: string,
): Promise<CloneWrites> {
  await rm(path, { force: true });
  await run('cp', ['--sparse=always', base, path]);
  const dir = join(work, `clone-${spec.index}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    const app = `/opt/app${spec.index}`;
    const commands = [`mkdir ${app}`];
    const r = prng(`${spec.seed} sizes`);
    let textBytes = 0;
    for (let j = 0; j < spec.textFiles; j++) {
      const bytes = Math.round(spec.textBytes * (0.8 + 0.4 * r()));
      const name = `${['notes', 'app', 'events', 'config', 'report'][j % 5]}-${String(j).padStart(2, '0')}.txt`;
      const host = join(dir, name);
      await writeFile(host, textFile(`${spec.seed} text ${j}`, bytes, words));
      await chmod(host, 0o644);
      commands.push(`write ${host} ${app}/${name}`);
      textBytes += bytes;
    }
    const blob = join(dir, 'data.bin');
    await writeFile(blob, seededBytes(`${spec.seed} data`, 0, spec.randomBytes));
    await chmod(blob, 0o644);
    commands.push(`write ${blob} ${app}/data.bin`);
    let binaryBytes = 0;
    for (const [k, bin] of spec.binaries.entries()) {
      const host = join(dir, `bin-${k}`);
      const original = await dumpFile(tools, base, bin, host);
      await writeFile(host, upgradedBinary(original, `${spec.seed} ${bin}`, spec.changedShare));
      await chmod(host, 0o755);
      commands.push(`rm ${bin}`, `write ${host} ${bin}`);
      binaryBytes += original.length;
    }
    await debugfs(tools, path, commands, dir);
    return {
      files: spec.textFiles + 1 + spec.binaries.length,
      bytes: textBytes + spec.randomBytes + binaryBytes,
      textBytes,
      randomBytes: spec.randomBytes,
      binaryBytes,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Converts a raw image to qcow2 (`qemu-img convert -O qcow2`, zero clusters left out), removing the raw file. */
export async function toQcow2(tools: OsTools, raw: string, qcow2: string): Promise<void> {
  if (!tools.qemuImg) throw new Error(`qemu-img not found: ${APT_GET}`);
  await rm(qcow2, { force: true });
  await run(tools.qemuImg, ['convert', '-O', 'qcow2', raw, qcow2], BIG);
  await rm(raw, { force: true });
}

/** Bytes and chunk files in a casync store (every file under it, recursively). */
export async function storeSize(store: string): Promise<{ bytes: number; chunks: number }> {
  let bytes = 0;
  let chunks = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        bytes += (await stat(p)).size;
        if (e.name.endsWith('.cacnk')) chunks++;
      }
    }
  };
  await walk(store);
  return { bytes, chunks };
}

export interface CasyncStep {
  readonly image: string;
  readonly imageBytes: number;
  /** Store growth from this image: what casync would upload for it. */
  readonly bytes: number;
  readonly chunks: number;
  readonly storeBytes: number;
  readonly storeChunks: number;
  readonly indexBytes: number;
  readonly wallMs: number;
  /** CPU time of casync (user + system), from the shell's `times`. */
  readonly cpuMs: number;
}

const seconds = (t: string) => {
  const m = /(\d+)m([\d.]+)s/.exec(t);
  return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
};

/** `casync make --store=<store> <index> <image>` (defaults: 16/64/256 KiB chunks, zstd), with its CPU time. */
export async function casyncMake(
  tools: OsTools,
  store: string,
  index: string,
  image: string,
): Promise<CasyncStep> {
  const before = await storeSize(store);
  const started = performance.now();
  // `times` prints the shell's and then its children's user and system time.
  const { stdout } = await run(
    'sh',
    ['-c', '"$@" 1>&2 || exit $?; times', 'sh', tools.casync, 'make', `--store=${store}`, index, image],
    BIG,
  );
  const wallMs = performance.now() - started;
  const tokens = stdout.trim().split(/\s+/);
  const cpuMs = ((tokens[2] ? seconds(tokens[2]) : 0) + (tokens[3] ? seconds(tokens[3]) : 0)) * 1000;
  const after = await storeSize(store);
  return {
    image,
    imageBytes: (await stat(image)).size,
    bytes: after.bytes - before.bytes,
    chunks: after.chunks - before.chunks,
    storeBytes: after.bytes,
    storeChunks: after.chunks,
    indexBytes: (await stat(index)).size,
    wallMs,
    cpuMs,
  };
}
