// fast-check arbitraries for hostile input: junk strings and values, bodies broken in one place, bad credentials,
// content types and idempotency keys. Each generates only what the API must refuse.
import fc from 'fast-check';
import type { z } from 'zod';

/** Lone surrogates cannot travel in a URL or a header: they become U+FFFD, as any client would send them. */
export const wellFormed = (s: string) =>
  s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
});

/** Strings a hostile or careless client sends where an id or a name is expected. */
export const junkString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }).map(wellFormed),
  printable,
  fc.constantFrom(
    ' ',
    'A',
    '-',
    'dc-',
    'DC-GZ',
    'mig-',
    'mig-SHOUTING0000000000000000',
    '../../etc/passwd',
    '%00',
    '\u0000',
    '<script>alert(1)</script>',
    "' OR '1'='1",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style probe, meant literally
    '${jndi:ldap://x/a}',
    'null',
    'undefined',
    '__proto__',
    'constructor',
    '🙂',
  ),
  fc.string({ minLength: 300, maxLength: 3000 }),
);

/** JSON values of every type and size a field could wrongly receive. */
export const junkValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 4 },
  {
    arbitrary: fc.constantFrom<unknown>(
      null,
      true,
      false,
      0,
      -1,
      1.5,
      -0.5,
      1e308,
      -1e308,
      2 ** 53,
      2 ** 64,
      '',
      '1',
      '\ud800',
      '{}',
      [],
      {},
      [null],
      { $ne: null },
    ),
    weight: 3,
  },
  { arbitrary: junkString, weight: 3 },
  { arbitrary: fc.constant('x'.repeat(300_000)), weight: 1 },
  { arbitrary: fc.array(fc.integer(), { minLength: 2000, maxLength: 4000 }), weight: 1 },
);

export type Path = readonly (string | number)[];

/** Every path inside a JSON value (not the root). */
export function pathsOf(value: unknown, prefix: Path = []): Path[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...pathsOf(v, [...prefix, i])]);
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...pathsOf(v, [...prefix, k])]);
  }
  return [];
}

const objectPaths = (value: unknown): Path[] =>
  [[], ...pathsOf(value)].filter((p) => {
    const v = getAt(value, p);
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  });

function getAt(value: unknown, path: Path): unknown {
  return path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)?.[k], value);
}

/** A deep copy with `path` set to `v` (own property, even for keys like __proto__) or removed. */
function withAt(value: unknown, path: Path, op: { set: unknown } | 'remove'): unknown {
  const copy = JSON.parse(JSON.stringify(value));
  const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown> | unknown[];
  const key = path[path.length - 1] as string | number;
  if (op === 'remove') {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
  } else {
    Object.defineProperty(parent, key, {
      value: op.set,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

export interface BodyMutation {
  readonly body: unknown;
  /** The field the server must name; `body` for the body as a whole, '' for no one field. */
  readonly field: string;
  /** Where the change is (for an unknown field, the path of the added key); undefined for the whole body. */
  readonly path?: Path;
  readonly how: 'whole body replaced' | 'unknown field' | 'removed' | 'replaced';
}

/** A field as the API names it: keys joined with dots, a key that is empty or holds a dot, blank or quote quoted. */
const dotted = (p: Path) =>
  p
    .map((s) => (typeof s === 'string' && (s === '' || /[.\s"]/.test(s)) ? JSON.stringify(s) : String(s)))
    .join('.');

/**
 * Bodies that differ from a valid one in one place — a field removed, one replaced by a value of another type or
 * size, an unknown field added, or the whole body not an object — and that the route's schema refuses.
 */
export function badBodies(schema: z.ZodType, valid: unknown): fc.Arbitrary<BodyMutation> {
  const paths = pathsOf(valid);
  const objects = objectPaths(valid);
  const candidates: fc.Arbitrary<BodyMutation>[] = [
    fc.oneof(junkValue, fc.constant([valid])).map(
      (body): BodyMutation => ({
        body,
        // Another object is checked field by field; anything else is refused as a whole.
        field: body !== null && typeof body === 'object' && !Array.isArray(body) ? '' : 'body',
        how: 'whole body replaced',
      }),
    ),
    fc.tuple(fc.constantFrom(...objects), fc.string({ minLength: 0, maxLength: 20 }), junkValue).map(
      ([at, key, v]): BodyMutation => ({
        body: withAt(valid, [...at, key], { set: v }),
        field: dotted([...at, key]),
        path: [...at, key],
        how: 'unknown field',
      }),
    ),
  ];
  if (paths.length > 0) {
    candidates.push(
      fc.constantFrom(...paths).map(
        (p): BodyMutation => ({
          body: withAt(valid, p, 'remove'),
          // A list one element short is wrong as a list (too short), not at the element.
          field: dotted(typeof p[p.length - 1] === 'number' ? p.slice(0, -1) : p),
          path: p,
          how: 'removed',
        }),
      ),
      fc.tuple(fc.constantFrom(...paths), junkValue).map(
        ([p, v]): BodyMutation => ({
          body: withAt(valid, p, { set: v }),
          field: dotted(p),
          path: p,
          how: 'replaced',
        }),
      ),
    );
  }
  return fc
    .oneof(...candidates)
    .map((m) => ({ ...m, body: JSON.parse(JSON.stringify(m.body ?? null)) as unknown }))
    .filter((m) => !schema.safeParse(m.body).success);
}

/** Tokens that must not authenticate: garbage, other schemes, and valid tokens one character off. */
export function badAuthorization(valid: readonly string[]): fc.Arbitrary<string> {
  const flip = fc
    .tuple(fc.constantFrom(...valid), fc.nat(), fc.constantFrom('a', 'Z', '0', '-', '.', '_'))
    .map(([tok, i, ch]) => {
      const at = i % tok.length;
      return `Bearer ${tok.slice(0, at)}${tok[at] === ch ? 'b' : ch}${tok.slice(at + 1)}`;
    });
  return fc.oneof(
    flip,
    fc.constantFrom(...valid).map((tok) => `Bearer ${tok.slice(0, -1)}`),
    fc.constantFrom(...valid).map((tok) => `Bearer ${tok}x`),
    fc.constantFrom(...valid).map((tok) => `Basic ${Buffer.from(`admin:${tok}`).toString('base64')}`),
    fc.constantFrom(...valid).map((tok) => `Bearer ${tok} ${tok}`),
    fc.constantFrom(...valid).map((tok) => tok),
    printable.map((s) => `Bearer ${s}`),
    printable,
    fc.constantFrom('Bearer', 'Bearer ', 'bearer null', 'Bearer undefined', `Bearer ${'x'.repeat(8000)}`),
  );
}

/** Media types that are not JSON, for bodies that are. */
export const notJsonContentType = fc.oneof(
  fc.constantFrom(
    'text/plain',
    'text/html; charset=utf-8',
    'application/xml',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=xyz',
    'application/octet-stream',
    'application/jsonp',
    'application/json;',
    'json',
    '*/*',
    'text/json',
  ),
  fc
    .tuple(fc.stringMatching(/^[a-z]{1,10}$/), fc.stringMatching(/^[a-z.-]{1,12}$/))
    .filter(([a, b]) => !`${a}/${b}`.includes('json'))
    .map(([a, b]) => `${a}/${b}`),
);

/** Idempotency keys the API must refuse (empty, spaces, control or non-ASCII characters, too long). */
export const badIdempotencyKey = fc
  .oneof(
    fc.constantFrom('', ' ', 'a b', 'tab\there', 'x'.repeat(129), 'é', 'clé', '\xa0', 'ÿ'),
    fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 40 }),
    fc.string({ minLength: 129, maxLength: 400 }),
  )
  // What an HTTP client can send (tab, printable ASCII, Latin-1), as the server sees it (blanks around trimmed).
  .filter((k) => /^[\t\x20-\x7e\x80-\xff]*$/.test(k))
  .filter((k) => !/^[\x21-\x7e]{1,128}$/.test(k.replace(/^[ \t]+|[ \t]+$/g, '')));

/** fast-check options: a random seed (printed by fast-check on failure), or FC_SEED to replay one. */
export const fcOptions = (numRuns: number): { numRuns: number; seed?: number } => ({
  numRuns,
  ...(process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {}),
});
