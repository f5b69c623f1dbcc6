// Least privilege must not lag the code: the adapter calls each workflow function makes (read from its module and
// the helpers it imports) must be covered by WORKFLOW_ACCESS, or the function would fail with AccessDenied on AWS
// while passing every local test.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { WORKFLOW_FUNCTIONS } from '../../lambdas/workflow/functions.ts';
import {
  API_ACCESS,
  SCHEDULED_FUNCTIONS,
  type ServiceAccess,
  WORKFLOW_ACCESS,
} from '../../lib/constructs/service-access.ts';

const workflowDir = new URL('../../lambdas/workflow/', import.meta.url);
const source = (module: string) => readFileSync(fileURLToPath(new URL(module, workflowDir)), 'utf8');
const entryModules = new Set([...WORKFLOW_FUNCTIONS, ...SCHEDULED_FUNCTIONS].map((f) => f.module));
/** Every function of lambdas/workflow/ the stack deploys, with the access it is granted. */
const deployed = [
  ...WORKFLOW_FUNCTIONS.map((f) => [f.name, f.module, WORKFLOW_ACCESS[f.name]] as const),
  ...SCHEDULED_FUNCTIONS.map((f) => [f.name, f.module, f.access] as const),
];

/** Top-level declarations named `names` in a module's source (from their line to the next top-level line). */
function declarations(text: string, names: readonly string[]): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let taking = false;
  for (const line of lines) {
    if (/^\S/.test(line) && !/^[})\]]/.test(line)) {
      taking = names.some((n) => new RegExp(`^export (async )?(function|const|class) ${n}\\b`).test(line));
    }
    if (taking) out.push(line);
  }
  return out.join('\n');
}

/**
 * The code a workflow function runs: its module, helper modules of lambdas/workflow/ it imports (whole), and the
 * imported declarations of other function modules (only those).
 */
function reachableCode(module: string, seen = new Set<string>()): string {
  if (seen.has(module)) return '';
  seen.add(module);
  const text = source(module);
  let code = text;
  for (const m of text.matchAll(/^import \{([^}]+)\} from '\.\/([\w-]+\.ts)';$/gm)) {
    const imported = (m[1] as string).split(',').map((s) => s.trim().replace(/^type /, ''));
    const target = m[2] as string;
    if (entryModules.has(target)) code += `\n${declarations(source(target), imported)}`;
    else code += `\n${reachableCode(target, seen)}`;
  }
  return code;
}

type Need = 'read' | 'write' | 'delete';
interface Needs {
  readonly tables: Map<string, Need>;
  control?: Set<Need>;
  chunks?: Set<Need>;
  readonly executions: Set<'start' | 'stop' | 'taskResponse'>;
  headBuckets?: boolean;
  readonly other: Set<string>;
}

const ADAPTER_TABLES: Record<string, string[]> = {
  registry: ['Registry'],
  slots: ['Registry'],
  migrations: ['Migrations'],
  policies: ['Migrations'],
  mapping: ['ContentMap', 'LocationMap'],
  contentIndex: ['ContentIndex'],
};
const READ_METHOD = /^(get|require|all|list|query|holders|claimHolders|copyClaimHolders|history)/;
const STORAGE: Record<string, ['control' | 'chunks', Need[]]> = {
  getJson: ['control', ['read']],
  getBytes: ['control', ['read']],
  putJson: ['control', ['write']],
  presignPut: ['control', ['write']],
  chunkState: ['chunks', ['read']],
  presignChunkPut: ['chunks', ['write']],
  copyChunk: ['chunks', ['read', 'write']],
  inspectChunk: ['chunks', ['read']],
  deleteChunk: ['chunks', ['delete']],
};

/** `deps.<adapter>.<method>(` calls, and calls on adapters taken out of deps (`const { policies } = deps;`). */
function adapterCalls(code: string): [string, string][] {
  const calls: [string, string][] = [];
  for (const m of code.matchAll(/\bdeps\.(\w+)\.(\w+)\(/g)) calls.push([m[1] as string, m[2] as string]);
  for (const d of code.matchAll(/const \{([^}]+)\} = deps\b/g)) {
    for (const part of (d[1] as string).split(',')) {
      const [adapter, local] = part.split(':').map((s) => s.trim());
      if (!adapter) continue;
      for (const m of code.matchAll(new RegExp(`\\b${local ?? adapter}\\.(\\w+)\\(`, 'g'))) {
        calls.push([adapter, m[1] as string]);
      }
    }
  }
  return calls;
}

const EXECUTION_COMMANDS = {
  StartExecutionCommand: 'start',
  StopExecutionCommand: 'stop',
  SendTaskSuccessCommand: 'taskResponse',
  SendTaskFailureCommand: 'taskResponse',
  SendTaskHeartbeatCommand: 'taskResponse',
} as const;

/** What the adapter calls in `code` need. */
function needsOf(code: string): Needs {
  const needs: Needs = { tables: new Map(), executions: new Set(), other: new Set() };
  for (const [adapter, method] of adapterCalls(code)) {
    const tables = ADAPTER_TABLES[adapter];
    if (tables) {
      const need: Need = READ_METHOD.test(method) ? 'read' : 'write';
      for (const t of tables) if (need === 'write' || !needs.tables.has(t)) needs.tables.set(t, need);
    } else if (adapter === 'storage') {
      const [where, what] = STORAGE[method] ?? [undefined, []];
      if (!where) needs.other.add(`storage.${method}`);
      else {
        const set = needs[where] ?? new Set<Need>();
        for (const w of what) set.add(w);
        needs[where] = set;
      }
    } else if (adapter === 'sfn' && method === 'send') {
      const commands = [...code.matchAll(/new (\w+Command)\(/g)].map((m) => m[1] as string);
      for (const c of commands) {
        const execution = EXECUTION_COMMANDS[c as keyof typeof EXECUTION_COMMANDS];
        if (execution) needs.executions.add(execution);
      }
    } else if (adapter === 'cacheNodes' && method === 'bucketExists') {
      needs.headBuckets = true;
    } else if (adapter === 'cacheNodes' && (method === 'address' || method === 'bucketFor')) {
      // Pure: derived from the environment.
    } else if (adapter === 'edgeCache' && method === 'invalidate') {
      // Granted by MigrationApi itself: cloudfront:CreateInvalidation on the distribution (checked in control-plane.test.ts).
    } else {
      needs.other.add(`${adapter}.${method}`);
    }
  }
  return needs;
}

function uncovered(needs: Needs, access: ServiceAccess): string[] {
  const gaps: string[] = [];
  for (const [table, need] of needs.tables) {
    const granted = access.tables[table as keyof ServiceAccess['tables']];
    if (!granted || (need === 'write' && granted !== 'readWrite'))
      gaps.push(`${table}: ${need} (granted ${granted ?? 'nothing'})`);
  }
  for (const where of ['control', 'chunks'] as const) {
    for (const need of needs[where] ?? []) {
      if (!access[where]?.[need]) gaps.push(`${where} bucket: ${need}`);
    }
  }
  for (const e of needs.executions) if (!access.executions?.[e]) gaps.push(`state machine executions: ${e}`);
  if (needs.headBuckets && !access.headCacheBuckets) gaps.push('cache node buckets: HeadBucket');
  for (const call of needs.other) gaps.push(`${call}: no grant for this adapter call`);
  return gaps;
}

describe('workflow function permissions', () => {
  it('has an access entry for every workflow function and none for others', () => {
    expect(Object.keys(WORKFLOW_ACCESS).sort()).toEqual(WORKFLOW_FUNCTIONS.map((f) => f.name).sort());
  });

  it.each(deployed)('%s is granted what its code calls', (_name, module, access) => {
    expect(access).toBeDefined();
    expect(uncovered(needsOf(reachableCode(module)), access as ServiceAccess)).toEqual([]);
  });

  it('grants no table write that the code never makes', () => {
    const excess: string[] = [];
    for (const [name, module, access] of deployed) {
      const needs = needsOf(reachableCode(module));
      for (const [table, granted] of Object.entries(access?.tables ?? {})) {
        const need = needs.tables.get(table);
        if (!need || (granted === 'readWrite' && need === 'read'))
          excess.push(`${name}: ${table} ${granted}`);
      }
    }
    expect(excess).toEqual([]);
  });

  it('reads adapter calls the way the code makes them (the analysis itself)', () => {
    const needs = needsOf(
      'const { policies: p } = deps; await p.advance(); await deps.registry.allCacheNodes(); ' +
        'await deps.storage.copyChunk(a, b); await deps.sfn.send(new StartExecutionCommand({}));',
    );
    expect([...needs.tables]).toEqual([
      ['Registry', 'read'],
      ['Migrations', 'write'],
    ]);
    expect([...(needs.chunks ?? [])]).toEqual(['read', 'write']);
    expect([...needs.executions]).toEqual(['start']);
  });

  it('grants the API what its routes call (its own modules and the workflow helpers they import)', () => {
    const apiDir = new URL('../../lambdas/api/', import.meta.url);
    const files = readdirSync(apiDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const code = files
      .map((f) => {
        const text = readFileSync(fileURLToPath(new URL(f, apiDir)), 'utf8');
        const helpers = [...text.matchAll(/from '(?:\.\.\/)+workflow\/([\w-]+\.ts)';/g)].map(
          (m) => m[1] as string,
        );
        return [text, ...helpers.map((h) => reachableCode(h))].join('\n');
      })
      .join('\n');
    const needs = needsOf(code);
    // The signer's key is bound with bindSecret (control-plane.test.ts checks that only the API may read it).
    needs.other.delete('edgeSigner.sign');
    expect(needs.tables.size).toBeGreaterThan(0);
    expect(uncovered(needs, API_ACCESS)).toEqual([]);
  });
});
