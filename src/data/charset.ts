/** The label alphabet: which characters a CAPTCHA may contain and their class indices. */
import { readLabel, type LabelSpec } from '../train/shape.ts';

export { DEFAULT_CHARSET, DEFAULT_LABEL_SPEC, LABEL_CASES, labelSpec, parseCharset, readLabel, type LabelCase, type LabelSpec } from '../train/shape.ts';

/** Why a label is not valid for the spec, or null when it is (under `fold`, after folding). */
export function labelProblem(label: string, spec: LabelSpec): string | null {
  const read = readLabel(label, spec);
  if (read.length !== spec.length) {
    return `label '${label}' has ${read.length} characters, expected ${spec.length}`;
  }
  for (const ch of read) {
    if (!spec.charset.includes(ch)) {
      const hint = spec.case === 'upper' && ch !== ch.toUpperCase() ? ' (labels are upper case under case: upper; case: fold reads either case)' : '';
      return `label '${label}' has character '${ch}' outside the charset '${spec.charset}'${hint}`;
    }
  }
  return null;
}

export function encodeLabel(label: string, spec: LabelSpec): number[] {
  return [...readLabel(label, spec)].map((ch) => spec.charset.indexOf(ch));
}

export function decodeLabel(classes: ArrayLike<number>, spec: LabelSpec): string {
  let s = '';
  for (let i = 0; i < classes.length; i++) s += spec.charset[classes[i]];
  return s;
}
