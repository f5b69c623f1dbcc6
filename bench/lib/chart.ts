// The report's chart, written as SVG by hand: one row per figure, its ratio to the baseline measured in the same
// run on a log axis, the target drawn where it is itself a ratio, green when the target is met, red when not.
import type { Figure } from './types.ts';

const W = 1100;
const ROW = 34;
const TOP = 72;
const LEFT = 250;
const RIGHT = 330;
const MIN = 0.01;
const MAX = 10;

const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
const x = (v: number) => {
  const clamped = Math.min(MAX, Math.max(MIN, v));
  return (
    LEFT +
    ((Math.log10(clamped) - Math.log10(MIN)) / (Math.log10(MAX) - Math.log10(MIN))) * (W - LEFT - RIGHT)
  );
};

/** The ratio a figure is drawn with, and the target on the same axis when the target is a ratio. */
function ratioOf(f: Figure): { ratio: number; target?: number } | undefined {
  if (f.unit === 'ratio') return { ratio: f.value, ...(f.target ? { target: f.target.value } : {}) };
  if (f.ratioToBaseline !== undefined) return { ratio: f.ratioToBaseline };
  return undefined;
}

export function ratioChart(figures: readonly Figure[], title: string): string {
  const rows = figures.filter((f) => ratioOf(f) !== undefined);
  const height = TOP + rows.length * ROW + 60;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="15" font-weight="600">${esc(title)}</text>`,
    `<text x="16" y="42" fill="#555">Bar: ours ÷ the baseline measured in the same run (log scale). Black tick: the target, where the target is itself a ratio.</text>`,
    `<text x="16" y="58" fill="#555">Green: target met; red: missed; grey: the target is absolute (MiB/s, MiB, ms: see the right-hand label) or none.</text>`,
  );
  for (const tick of [0.01, 0.03, 0.1, 0.3, 1, 3, 10]) {
    const tx = x(tick);
    parts.push(
      `<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${TOP + rows.length * ROW}" stroke="${tick === 1 ? '#999' : '#e5e5e5'}" stroke-width="1"/>`,
      `<text x="${tx}" y="${TOP + rows.length * ROW + 16}" text-anchor="middle" fill="#555">${tick}</text>`,
    );
  }
  parts.push(
    `<text x="${x(1)}" y="${TOP + rows.length * ROW + 34}" text-anchor="middle" fill="#555">ours ÷ baseline</text>`,
  );
  rows.forEach((f, i) => {
    const r = ratioOf(f) as { ratio: number; target?: number };
    const y = TOP + i * ROW;
    const ratioTarget = r.target !== undefined;
    const colour = f.pass === undefined || !ratioTarget ? '#9aa5b1' : f.pass ? '#2e9d57' : '#d64545';
    const label = `${f.id} ${f.metric}`;
    parts.push(
      `<text x="${LEFT - 8}" y="${y + 15}" text-anchor="end">${esc(label.length > 40 ? `${label.slice(0, 39)}…` : label)}</text>`,
      `<rect x="${LEFT}" y="${y + 5}" width="${Math.max(1, x(r.ratio) - LEFT)}" height="${ROW - 14}" fill="${colour}" rx="2"/>`,
    );
    if (r.target !== undefined) {
      const tx = x(r.target);
      parts.push(
        `<line x1="${tx}" y1="${y + 1}" x2="${tx}" y2="${y + ROW - 5}" stroke="#111" stroke-width="2"/>`,
      );
    }
    const verdict =
      f.target === undefined
        ? 'no target'
        : `target ${f.target.op === '<=' ? '≤' : '≥'} ${f.target.value}${f.unit === 'ratio' ? '' : ` ${f.unit}`}: ${f.pass ? 'met' : 'missed'}`;
    const value = f.unit === 'ratio' ? `${f.value}` : `${f.ratioToBaseline} (${f.value} ${f.unit})`;
    parts.push(
      `<text x="${W - RIGHT + 12}" y="${y + 15}" fill="#222">${esc(`${value} — ${verdict}`)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
