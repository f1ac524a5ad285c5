import { UserError } from '../util/errors.ts';
import { nearest } from '../util/nearest.ts';

export { nearest } from '../util/nearest.ts';

/** A key path into the sweep file: object keys and array indices, outermost first. */
export type KeyPath = ReadonlyArray<string | number>;

/** One thing wrong with a sweep file, located to the line and column (both 1-based). */
export interface SweepProblem {
  file: string;
  /** Printable key path, e.g. `parameters.dropout.values[2]`; empty for the whole file. */
  path: string;
  line: number;
  column: number;
  message: string;
}

/**
 * A sweep file that cannot be used. Carries every problem found (not only the first), one per
 * line in the message, each as `file:line:column: key.path: what was expected`. The top-level
 * {file, path, line, column} are those of the first problem. Exit code 2 (bad input).
 */
export class SweepFileError extends UserError {
  readonly file: string;
  readonly path: string;
  readonly line: number;
  readonly column: number;
  readonly problems: readonly SweepProblem[];

  constructor(problems: readonly SweepProblem[]) {
    if (problems.length === 0) throw new Error('SweepFileError needs at least one problem');
    super(problems.map(formatProblem).join('\n'));
    this.name = 'SweepFileError';
    this.problems = problems;
    ({ file: this.file, path: this.path, line: this.line, column: this.column } = problems[0]);
  }
}

export function formatProblem(p: SweepProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['parameters', 'dropout', 'values', 2]` -> `parameters.dropout.values[2]`; odd keys are quoted. */
export function formatPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** A short, readable rendering of a value for messages. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `a list (${v.length} item${v.length === 1 ? '' : 's'})`;
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/** "unknown key `foo`; did you mean `for`? Allowed here: a, b, c" */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const near = nearest(key, allowed);
  return `unknown key \`${key}\`${near ? `; did you mean \`${near}\`?` : ';'} Allowed here: ${allowed.join(', ')}`;
}
