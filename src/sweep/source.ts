import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node } from 'yaml';
import { SweepFileError, type KeyPath, type SweepProblem } from './errors.ts';

/**
 * A parsed YAML sweep file that still knows where everything came from, so that a problem found
 * later (by the schema, on plain JS values) can be reported at a line and column.
 */
export interface YamlSource {
  file: string;
  /** The document as plain JS (mappings -> objects, sequences -> arrays). */
  value: unknown;
  /** 1-based line/column of a key path; the nearest existing ancestor if the path is absent. */
  locate(path: KeyPath): { line: number; column: number };
  /** True when the number at `path` was written as an integer literal (`3`, not `3.0` or `3e0`). */
  isIntLiteral(path: KeyPath): boolean;
  problem(path: KeyPath, message: string, formattedPath: string): SweepProblem;
}

const INT_LITERAL = /^[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/;

/**
 * Where each mapping read from YAML came from, to tell how its numbers were written. JS keeps
 * one number type, but W&B (PyYAML) tells `{min: 1.0, max: 10}` (uniform) from
 * `{min: 1, max: 10}` (int_uniform); the schema asks writtenAsFloat to do the same.
 */
const origins = new WeakMap<object, { path: KeyPath; isIntLiteral: (path: KeyPath) => boolean }>();

/** True when `mapping[key]` is a whole number written as a float (`1.0`, `1e3`) in the YAML. */
export function writtenAsFloat(mapping: object, key: string): boolean {
  const origin = origins.get(mapping);
  const v = (mapping as Record<string, unknown>)[key];
  return origin !== undefined && Number.isInteger(v) && !origin.isIntLiteral([...origin.path, key]);
}

/** Parse YAML text; syntax errors (all of them) are thrown as one SweepFileError. */
export function readYaml(text: string, file: string): YamlSource {
  const lineCounter = new LineCounter();
  // merge: W&B reads sweep files with PyYAML, which honours `<<: *anchor`; so do we.
  const doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  if (doc.errors.length > 0) {
    throw new SweepFileError(
      doc.errors.map((e) => ({
        file,
        path: '',
        ...pos(e.pos[0]),
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
      })),
    );
  }

  const value = doc.toJS({ maxAliasCount: 1000 }) as unknown;

  const walk = (path: KeyPath): { node: Node | null; offset: number } => {
    let node = resolve(doc, doc.contents as Node | null);
    let offset = node?.range?.[0] ?? 0;
    for (const seg of path) {
      if (node && isMap(node)) {
        const pair = findPair(doc, node, String(seg));
        if (!pair) return { node: null, offset };
        offset = (pair.key as Node | null)?.range?.[0] ?? offset;
        node = resolve(doc, pair.value as Node | null);
      } else if (node && isSeq(node) && typeof seg === 'number') {
        const item = resolve(doc, (node.items[seg] as Node | undefined) ?? null);
        if (!item) return { node: null, offset };
        offset = item.range?.[0] ?? offset;
        node = item;
      } else {
        return { node: null, offset };
      }
    }
    return { node, offset };
  };

  const isIntLiteral = (path: KeyPath) => {
    const { node } = walk(path);
    if (!node || !isScalar(node) || typeof node.value !== 'number') return false;
    const src = typeof node.source === 'string' ? node.source : String(node.value);
    return INT_LITERAL.test(src.trim());
  };
  recordOrigins(value, [], isIntLiteral);

  const locate = (path: KeyPath) => pos(walk(path).offset);
  return {
    file,
    value,
    locate,
    isIntLiteral,
    problem(path, message, formattedPath) {
      return { file, path: formattedPath, ...locate(path), message };
    },
  };
}

function recordOrigins(v: unknown, path: KeyPath, isIntLiteral: (p: KeyPath) => boolean): void {
  if (typeof v !== 'object' || v === null || origins.has(v)) return;
  if (Array.isArray(v)) {
    v.forEach((x, i) => recordOrigins(x, [...path, i], isIntLiteral));
    return;
  }
  origins.set(v, { path, isIntLiteral });
  for (const [k, x] of Object.entries(v)) recordOrigins(x, [...path, k], isIntLiteral);
}

function resolve(doc: Document, node: Node | null): Node | null {
  let n = node;
  for (let i = 0; n && isAlias(n) && i < 100; i++) n = (n.resolve(doc) as Node | undefined) ?? null;
  return n;
}

type MapNode = Extract<Node, { items: unknown[] }> & { items: Array<{ key: unknown; value: unknown }> };

/** The pair with this key, looking through `<<` merge keys as PyYAML would. */
function findPair(doc: Document, map: Node, key: string): { key: unknown; value: unknown } | undefined {
  const items = (map as MapNode).items;
  const direct = items.find((p) => isScalar(p.key) && String(p.key.value) === key);
  if (direct) return direct;
  for (const p of items) {
    if (!isScalar(p.key) || String(p.key.value) !== '<<') continue;
    const target = resolve(doc, p.value as Node | null);
    const sources = target && isSeq(target) ? target.items.map((i) => resolve(doc, i as Node)) : [target];
    for (const s of sources) {
      if (s && isMap(s)) {
        const found = findPair(doc, s, key);
        if (found) return found;
      }
    }
  }
  return undefined;
}
