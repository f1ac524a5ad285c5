/**
 * Sweep file -> SweepSpec. The rules are the schema's (schema.ts); this file reads the YAML,
 * runs the schema, and places each issue at its line and column (source.ts), so that every
 * problem is thrown together as one SweepFileError and a user fixes a file in one pass.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { z } from 'zod';
import { UserError } from '../util/errors.ts';
import { formatPath, SweepFileError, type KeyPath, type SweepProblem } from './errors.ts';
import { wordIssue } from './messages.ts';
import { sweepFileSchema, type IssuePlacement, type SweepFileOptions, type SweepSpec } from './schema.ts';
import { readYaml, type YamlSource } from './source.ts';

export async function loadSweepFile(path: string, options: SweepFileOptions = {}): Promise<SweepSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : String((err as Error).message);
    throw new UserError(`${path}: cannot read the sweep file (${why})`);
  }
  return parseSweep(text, path, options);
}

/** Parse and validate sweep file text. `fileName` is used in messages and for the default name. */
export function parseSweep(text: string, fileName: string, options: SweepFileOptions = {}): SweepSpec {
  const src = readYaml(text, fileName);
  const r = sweepFileSchema(src.value, options).safeParse(src.value, { reportInput: true, error: wordIssue });
  if (!r.success) {
    const problems = r.error.issues.flatMap((issue) => place(issue, [], src));
    problems.sort((a, b) => a.line - b.line || a.column - b.column);
    throw new SweepFileError(problems);
  }
  const name = r.data.name ?? basename(fileName, extname(fileName));
  return { ...r.data, file: fileName, name };
}

/** One issue -> the problems it stands for, each at the line of its key (or the nearest key there is). */
function place(issue: z.core.$ZodIssue, prefix: KeyPath, src: YamlSource): SweepProblem[] {
  const path = [...prefix, ...(issue.path as KeyPath)];
  switch (issue.code) {
    case 'unrecognized_keys': {
      // one line per key (messages.ts), each shown at its key
      const lines = issue.message.split('\n');
      return issue.keys.map((key, i) => problem(src, [...path, key], lines[i] ?? issue.message));
    }
    case 'invalid_union': {
      // The alternative the user evidently meant: the one that got past the type check.
      const meant = issue.errors.find((b) => !b.some((i) => i.code === 'invalid_type' && i.path.length === 0));
      if (meant) return meant.flatMap((i) => place(i, path, src));
      return [problem(src, path, issue.message)];
    }
    case 'custom': {
      const at = (issue.params as IssuePlacement | undefined)?.at;
      return [problem(src, path, issue.message, at && [...path.slice(0, -1), ...at])];
    }
    default:
      return [problem(src, path, issue.message)];
  }
}

function problem(src: YamlSource, path: KeyPath, message: string, at: KeyPath = path): SweepProblem {
  return src.problem(at, message, formatPath(path));
}
