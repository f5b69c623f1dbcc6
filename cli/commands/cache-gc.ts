// `vmmig cache gc [--dry-run] [--node ID]…`: runs the cache collector now (or says what it would do) and shows, per
// cache node, what it holds against its budget, what could be freed, what the pass marked and freed, and why.
import {
  type CollectGarbageReport,
  collectGarbage,
  type NodeCollection,
} from '../../protocol/api/cache-gc.ts';
import { formatBytes } from '../../protocol/bytes.ts';
import type { ApiClient } from '../client.ts';
import { EXIT } from '../exit-codes.ts';
import { formatDuration } from './cache.ts';

/** true: --json; false: --no-json (text even when stdout is not a terminal); undefined: text on a terminal. */
const useJson = (json?: boolean) => json === true || (json === undefined && !process.stdout.isTTY);

export async function cacheGcCmd(
  client: ApiClient,
  opts: { dryRun?: boolean; node?: string[]; json?: boolean },
): Promise<number> {
  const { body } = await client.call<CollectGarbageReport>(collectGarbage, {
    json: {
      dryRun: opts.dryRun === true,
      ...(opts.node && opts.node.length > 0 ? { cacheNodeIds: opts.node } : {}),
    },
  });
  process.stdout.write(useJson(opts.json) ? `${JSON.stringify(body)}\n` : renderCollection(body));
  return EXIT.ok;
}

const chunks = (n: number) => `${n} chunk${n === 1 ? '' : 's'}`;
const amount = (a: { chunks: number; bytes: number }) =>
  a.chunks === 0 ? 'nothing' : `${chunks(a.chunks)}, ${formatBytes(a.bytes)}`;
const percent = (part: number, whole: number) => `${Math.round((part / whole) * 100)}%`;

/** The report as text: a heading with the settings, then one block per cache node. */
export function renderCollection(report: CollectGarbageReport): string {
  const { settings } = report;
  const dry = report.nodes.some((n) => n.dryRun);
  const lines = [
    `${dry ? 'Dry run (nothing changed): what a pass would do' : 'Cache collector pass'} at ${report.at}. ` +
      `Grace period ${formatDuration(settings.graceSeconds)}; eviction above ${percent(settings.highWater, 1)} of a ` +
      `node's budget, down to ${percent(settings.lowWater, 1)}` +
      (settings.retentionDays === undefined ? '.' : `; chunks unused for ${settings.retentionDays}d go.`),
  ];
  if (report.nodes.length === 0) lines.push('no cache nodes');
  for (const n of report.nodes) lines.push('', ...renderNode(n, report));
  return `${lines.join('\n')}\n`;
}

function renderNode(n: NodeCollection, report: CollectGarbageReport): string[] {
  const would = (done: string, wouldDo: string) => (n.dryRun ? wouldDo : done).padEnd(11);
  const held =
    n.budgetBytes === undefined
      ? `${formatBytes(n.bytesHeld)} in ${chunks(n.chunksHeld)} (no budget)`
      : `${formatBytes(n.bytesHeld)} of a ${formatBytes(n.budgetBytes)} budget ` +
        `(${percent(n.bytesHeld, n.budgetBytes)}), ${chunks(n.chunksHeld)}`;
  const grace = formatDuration(report.settings.graceSeconds);
  const lines = [
    `cache node ${n.cacheNodeId}`,
    `  ${'held'.padEnd(11)}${held}`,
    `  ${'evictable'.padEnd(11)}${formatBytes(n.evictableBytes)}: used by no live migration, pinned image or kept backup`,
    `  ${would('marked', 'would mark')}${amount(n.marked)}` +
      (n.marked.chunks > 0 ? `: deleted after the grace period (${grace}) unless used` : ''),
    `  ${would('freed', 'would free')}${amount(n.freed)}`,
    `  ${'pending'.padEnd(11)}${amount(n.pending)}` +
      (n.pending.chunks > 0 ? ': marked earlier, grace period not over' : ''),
  ];
  if (n.pardoned + n.reverted > 0)
    lines.push(`  ${'kept'.padEnd(11)}${n.pardoned + n.reverted} marked chunk(s) used again: not deleted`);
  lines.push(`  ${'reason'.padEnd(11)}${n.reason}`);
  if (n.bytesHeld > 0 && n.evictableBytes === 0) {
    lines.push(
      `  note: nothing here can be freed: every chunk is used by a live migration, a pinned image or a backup ` +
        `policy's kept runs`,
    );
  }
  if (n.partial) {
    lines.push(
      `  note: collected in part: the node has more than ${report.maxEntriesPerNode.toLocaleString('en-US')} ` +
        'index entries, the most a request reads (the scheduled pass, every 15 minutes, reads up to 2,000,000)',
    );
  }
  return lines;
}
