// `vmmig cache verify NODE [--repair]`: walks a cache node's content index against its bucket, one bounded API page
// at a time, and says what disagrees (and, with --repair, what was put right).
import { type CacheVerifyPage, verifyCacheNode } from '../../protocol/api/cache-verify.ts';
import type { ApiClient } from '../client.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes } from '../render.ts';

export interface VerifyFlags {
  readonly repair?: boolean;
  readonly limit?: number;
  readonly json?: boolean;
}

const useJson = (json?: boolean) => json === true || (json === undefined && !process.stdout.isTTY);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Totals over every page. */
export interface VerifyTotals {
  readonly pages: number;
  readonly entries: number;
  readonly objects: number;
  readonly indexedMissing: number;
  readonly unindexed: number;
  readonly deleting: number;
  readonly dropped: number;
  readonly indexed: number;
  readonly deleted: number;
  /** Problems found and not repaired: what decides the exit code. */
  readonly unrepaired: number;
}

export function addPage(t: VerifyTotals, p: CacheVerifyPage): VerifyTotals {
  const problems = [...p.indexedMissing, ...p.unindexed];
  return {
    pages: t.pages + 1,
    entries: t.entries + p.checked.entries,
    objects: t.objects + p.checked.objects,
    indexedMissing: t.indexedMissing + p.indexedMissing.length,
    unindexed: t.unindexed + p.unindexed.length,
    deleting: t.deleting + p.deleting,
    dropped: t.dropped + p.repaired.dropped,
    indexed: t.indexed + p.repaired.indexed,
    deleted: t.deleted + p.repaired.deleted,
    unrepaired: t.unrepaired + problems.filter((x) => !x.repaired).length,
  };
}

const EMPTY: VerifyTotals = {
  pages: 0,
  entries: 0,
  objects: 0,
  indexedMissing: 0,
  unindexed: 0,
  deleting: 0,
  dropped: 0,
  indexed: 0,
  deleted: 0,
  unrepaired: 0,
};

/** One line per problem, as the text output lists them: what, digest, size, and what was (or would be) done. */
export function problemLines(p: CacheVerifyPage): string[] {
  const line = (what: string, sha256: string, length: number, outcome: string) =>
    `${what.padEnd(21)} ${sha256}  ${formatBytes(length).padStart(10)}  ${outcome}`;
  const after = (repaired: boolean, done: string) =>
    repaired ? `: ${done}` : p.repair ? ': not repaired' : '';
  return [
    ...p.indexedMissing.map((x) =>
      line(
        x.reason === 'missing' ? 'indexed, not stored' : 'indexed, stored wrong',
        x.sha256,
        x.length,
        `${x.reason === 'missing' ? 'no object' : 'other bytes under its key'}${after(x.repaired, 'dropped from the index')}`,
      ),
    ),
    ...p.unindexed.map((x) =>
      line(
        'stored, not indexed',
        x.sha256,
        x.length,
        `${x.action === 'index' ? 'intact' : 'not the chunk its key names'}${after(x.repaired, x.action === 'index' ? 'indexed' : 'deleted')}`,
      ),
    ),
  ];
}

export function summaryLines(node: string, t: VerifyTotals, repair: boolean): string[] {
  const problems = t.indexedMissing + t.unindexed;
  const lines = [
    `${node}: checked ${plural(t.entries, 'index entry', 'index entries')} and ${plural(t.objects, 'stored chunk')} ` +
      `in ${plural(t.pages, 'page')}`,
    `  indexed but not stored right: ${t.indexedMissing}`,
    `  stored but not indexed:       ${t.unindexed}`,
  ];
  if (t.deleting > 0) lines.push(`  being deleted by the cache collector: ${t.deleting} (left to it)`);
  if (repair) {
    lines.push(
      `  repaired: ${plural(t.dropped, 'entry', 'entries')} dropped, ${plural(t.indexed, 'chunk')} indexed, ` +
        `${plural(t.deleted, 'object')} deleted`,
    );
  }
  if (problems === 0) lines.push('clean: the index and the bucket agree');
  else if (t.unrepaired === 0) lines.push('repaired: the index and the bucket agree again');
  else if (repair) lines.push(`${plural(t.unrepaired, 'problem')} could not be repaired; run it again`);
  else
    lines.push(`${plural(problems, 'problem')} found; \`vmmig cache verify ${node} --repair\` repairs them`);
  return lines;
}

export async function verifyCacheCmd(client: ApiClient, node: string, flags: VerifyFlags): Promise<number> {
  const json = useJson(flags.json);
  const repair = flags.repair === true;
  const progress = !json && process.stderr.isTTY === true;
  let totals = EMPTY;
  let cursor: string | undefined;
  do {
    const { body } = await client.call<CacheVerifyPage>(verifyCacheNode, {
      params: { cacheNodeId: node },
      json: { repair, ...(cursor ? { cursor } : {}), ...(flags.limit ? { limit: flags.limit } : {}) },
    });
    totals = addPage(totals, body);
    if (progress) process.stderr.write('\r\x1b[K');
    if (json) {
      for (const x of body.indexedMissing)
        process.stdout.write(`${JSON.stringify({ kind: 'indexedMissing', ...x })}\n`);
      for (const x of body.unindexed)
        process.stdout.write(`${JSON.stringify({ kind: 'unindexed', ...x })}\n`);
    } else for (const line of problemLines(body)) process.stdout.write(`${line}\n`);
    if (progress) {
      process.stderr.write(
        `page ${totals.pages}: ${totals.entries} entries, ${totals.objects} chunks checked; ` +
          `${totals.indexedMissing + totals.unindexed} problems${body.nextCursor ? ` (at ${body.nextCursor.slice(0, 8)}…)` : ''}`,
      );
    }
    cursor = body.nextCursor;
  } while (cursor);
  if (progress) process.stderr.write('\r\x1b[K');
  if (json)
    process.stdout.write(`${JSON.stringify({ kind: 'summary', cacheNodeId: node, repair, ...totals })}\n`);
  else for (const line of summaryLines(node, totals, repair)) process.stdout.write(`${line}\n`);
  // Exit 1: what was checked is not as it should be (as for a migration that failed), until repaired.
  return totals.unrepaired > 0 ? EXIT.migrationFailed : EXIT.ok;
}
