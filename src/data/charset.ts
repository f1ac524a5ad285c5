/** The label alphabet: which characters a CAPTCHA may contain and their class indices. */
export const DEFAULT_CHARSET = '0123456789abcdefghijklmnopqrstuvwxyz';

export interface LabelSpec {
  /** Characters in class order; class i is charset[i]. */
  charset: string;
  /** Characters per CAPTCHA (the report's data: 6). */
  length: number;
}

export const DEFAULT_LABEL_SPEC: LabelSpec = { charset: DEFAULT_CHARSET, length: 6 };

/** Expands ranges such as `0-9a-z` into the characters they name. */
export function parseCharset(spec: string): string {
  let out = '';
  for (let i = 0; i < spec.length; i++) {
    if (i + 2 < spec.length && spec[i + 1] === '-') {
      const from = spec.charCodeAt(i);
      const to = spec.charCodeAt(i + 2);
      if (to < from) throw new Error(`charset range '${spec.slice(i, i + 3)}' runs backwards`);
      for (let c = from; c <= to; c++) out += String.fromCharCode(c);
      i += 2;
    } else {
      out += spec[i];
    }
  }
  if (new Set(out).size !== out.length) throw new Error(`charset '${spec}' repeats a character`);
  return out;
}

/** Why a label is not valid for the spec, or null when it is. */
export function labelProblem(label: string, spec: LabelSpec): string | null {
  if (label.length !== spec.length) {
    return `label '${label}' has ${label.length} characters, expected ${spec.length}`;
  }
  for (const ch of label) {
    if (!spec.charset.includes(ch)) return `label '${label}' has character '${ch}' outside the charset '${spec.charset}'`;
  }
  return null;
}

export function encodeLabel(label: string, spec: LabelSpec): number[] {
  return [...label].map((ch) => spec.charset.indexOf(ch));
}

export function decodeLabel(classes: ArrayLike<number>, spec: LabelSpec): string {
  let s = '';
  for (let i = 0; i < classes.length; i++) s += spec.charset[classes[i]];
  return s;
}
