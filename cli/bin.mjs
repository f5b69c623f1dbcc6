#!/usr/bin/env node
// Entry of the `vmmig` command: runs cli/vmmig.ts with tsx on Node 24 (the project's `node` dependency),
// whatever Node the shell found first.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
let node = process.execPath;
if (major < 24) {
  const bundled = join(here, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bundled)) {
    console.error(
      `vmmig needs Node 24 (this is ${process.version}); run \`npm ci\` in ${join(here, '..')} first`,
    );
    process.exit(2);
  }
  node = bundled;
}
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const result = spawnSync(node, ['--import', tsx, join(here, 'vmmig.ts'), ...process.argv.slice(2)], {
  stdio: 'inherit',
});
process.exit(result.status ?? (result.signal ? 128 : 1));
