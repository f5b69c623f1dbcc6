// Sizes as operators type them (`vmmig node set --budget 10GiB`): binary units with an "i" or a bare letter (the
// way --limit-rate reads 50M), decimal units with a plain "B" (1TB as a disk's label counts it), or bytes.

const POWERS = { '': 0, K: 1, M: 2, G: 3, T: 4, P: 5 } as const;

/** `64MiB`, `10G`, `1TB`, `1.5GiB`, `1048576` → bytes (rounded to whole bytes). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([KMGTP])(i)?)?(B)?$/i.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a size: use e.g. 64MiB, 10GiB, 1TB or a number of bytes`);
  const [, number, prefix = '', binary, unitB] = m;
  const power = POWERS[prefix.toUpperCase() as keyof typeof POWERS];
  // A prefix with a plain B is decimal (KB, MB, GB, TB); with "i", or alone, binary.
  const base = prefix !== '' && unitB !== undefined && binary === undefined ? 1000 : 1024;
  const bytes = Math.round(Number(number) * base ** power);
  if (!Number.isSafeInteger(bytes)) throw new Error(`size ${text} is too large`);
  return bytes;
}

/**
 * A cache node's storage budget: a size, or `none` (also `unlimited`): no budget. Not null for none: commander
 * replaces an option value parsed to null with its default.
 */
export function parseBudget(text: string): number | 'none' {
  return /^(none|unlimited)$/i.test(text.trim()) ? 'none' : parseSize(text);
}
