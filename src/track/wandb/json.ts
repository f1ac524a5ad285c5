/**
 * JSON for the W&B outbox and for the wire. Postgres' jsonb has no NaN or Infinity, but W&B
 * charts them: the Python SDK writes history and summary with json.dumps(allow_nan=True), so a
 * diverged loss arrives as the bare token NaN, not as null. In the outbox a non-finite number
 * is kept as {"__nonfinite__": "NaN" | "Infinity" | "-Infinity"}; wandbJson() writes it back
 * as the token.
 */

const TAG = '__nonfinite__';
type NonFinite = 'NaN' | 'Infinity' | '-Infinity';

function token(x: number): NonFinite {
  return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
}

function tagOf(v: unknown): NonFinite | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const keys = Object.keys(v);
  const t = (v as Record<string, unknown>)[TAG];
  return keys.length === 1 && (t === 'NaN' || t === 'Infinity' || t === '-Infinity') ? t : null;
}

/** JSON for a jsonb column: non-finite numbers kept as tagged objects. */
export function jsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? { [TAG]: token(x) } : x));
}

/** A stored value with its non-finite numbers back as numbers. */
export function fromStored<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x) => fromStored(x)) as T;
  const t = tagOf(v);
  if (t) return (t === 'NaN' ? NaN : t === 'Infinity' ? Infinity : -Infinity) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromStored(x)])) as T;
  return v;
}

/** JSON as the SDK writes it for W&B: NaN, Infinity and -Infinity as bare tokens (stored tags too). */
export function wandbJson(v: unknown): string {
  if (typeof v === 'number') return Number.isFinite(v) ? JSON.stringify(v) : token(v);
  const t = tagOf(v);
  if (t) return t;
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined || typeof x === 'function' ? 'null' : wandbJson(x))).join(',')}]`;
  if (v && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON !== 'function') {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || typeof x === 'function') continue;
      parts.push(`${JSON.stringify(k)}:${wandbJson(x)}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** JSON.parse that also reads the NaN / Infinity / -Infinity tokens wandbJson() writes. */
export function parseWandbJson(text: string): unknown {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) => (m.startsWith('"') ? m : `{"${TAG}":"${m}"}`));
  return fromStored(JSON.parse(marked));
}
