// Prints where a V8 .cpuprofile spent its time: self time per function and per file, top N of each.
// Usage: npx tsx bench/tools/cpuprofile-top.ts <file.cpuprofile> [N]
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, top = '25'] = process.argv.slice(2);
if (!file) throw new Error('usage: cpuprofile-top <file.cpuprofile> [N]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const self = new Map<number, number>();
for (const [i, id] of profile.samples.entries())
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFn = new Map<string, number>();
const byFile = new Map<string, number>();
const short = (url: string) =>
  url.replace(/^file:\/\/.*?node_modules\//, 'nm:').replace(/^file:\/\/.*?\/main\//, '');
for (const n of profile.nodes) {
  const us = self.get(n.id) ?? 0;
  if (us === 0) continue;
  const f = n.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${short(f.url)}:${f.lineNumber + 1}`;
  byFn.set(key, (byFn.get(key) ?? 0) + us);
  const fileKey = short(f.url) || `(${f.functionName})`;
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
}
const print = (title: string, m: Map<string, number>) => {
  process.stdout.write(`${title}\n`);
  for (const [k, us] of [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
    process.stdout.write(
      `  ${(us / 1e6).toFixed(2).padStart(7)} s ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}\n`,
    );
  }
};
process.stdout.write(
  `${file}: ${(total / 1e6).toFixed(2)} s sampled over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s\n`,
);
print('self time by function', byFn);
print('self time by file', byFile);

// --stacks <functionName>: the heaviest call stacks ending in that function.
const want = process.argv.indexOf('--stacks');
if (want > 0) {
  const name = process.argv[want + 1] ?? '';
  const parentOf = new Map<number, Node>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n);
  const stacks = new Map<string, number>();
  for (const n of profile.nodes) {
    if (n.callFrame.functionName !== name) continue;
    const us = self.get(n.id) ?? 0;
    const frames: string[] = [];
    for (let p = parentOf.get(n.id); p && frames.length < 12; p = parentOf.get(p.id)) {
      frames.push(
        `${p.callFrame.functionName || '(anon)'}@${short(p.callFrame.url)}:${p.callFrame.lineNumber + 1}`,
      );
    }
    const key = frames.join(' < ');
    stacks.set(key, (stacks.get(key) ?? 0) + us);
  }
  process.stdout.write(`stacks of ${name}\n`);
  for (const [k, us] of [...stacks.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8))
    process.stdout.write(`  ${(us / 1e6).toFixed(2)} s  ${k}\n`);
}
