/**
 * What a directory of saved tensors (a checkpoint, a finished trial's model) holds, and whether
 * it still holds it. Written after the directory's files, `files.json` records the size and
 * sha256 of each; before anything is loaded from the directory, they are checked again. A
 * failing disk, a full one, or a hand that truncated a file shows as a named file and what is
 * wrong with it, rather than as a tensor shape error deep inside TensorFlow.js.
 *
 * A directory written before file lists existed is checked as far as it can be: its JSON must
 * parse and each weights file must be as long as its manifest's shapes say.
 */
import { existsSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { sha256File } from '../util/hash.ts';
import { takeWritten, writeFileAtomic } from './atomic-file.ts';

export const FILE_LIST = 'files.json';

export interface FileRecord {
  bytes: number;
  sha256: string;
}

export interface FileList {
  version: 1;
  files: Record<string, FileRecord>;
}

/**
 * Records every file of `dir` (not its subdirectories) in `dir/files.json`, durably. A file
 * writeFileAtomic has just written is recorded from the bytes it wrote; others are read.
 */
export function writeFileList(dir: string): FileList {
  const files: Record<string, FileRecord> = {};
  for (const name of readdirSync(dir).sort()) {
    if (name === FILE_LIST || name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (!st.isFile()) continue;
    files[name] = takeWritten(p) ?? { bytes: st.size, sha256: sha256File(p) };
  }
  const list: FileList = { version: 1, files };
  writeFileAtomic(join(dir, FILE_LIST), `${JSON.stringify(list, null, 1)}\n`);
  return list;
}

/** A file of a checked directory that is not what was written. */
export interface FileProblem {
  file: string;
  problem: string;
}

/** `dir`'s file list; null when it has none (written before lists existed); a problem when unreadable. */
function readFileList(dir: string): FileList | null | FileProblem {
  const listPath = join(dir, FILE_LIST);
  if (!existsSync(listPath)) return null;
  try {
    const list = JSON.parse(readFileSync(listPath, 'utf8')) as FileList;
    if (typeof list?.files !== 'object' || list.files === null) throw new Error('no files');
    return list;
  } catch {
    return { file: listPath, problem: 'unreadable (not the JSON file list this version writes)' };
  }
}

/** What is wrong with file `p` against its record, or null. */
function recordProblem(p: string, want: FileRecord): string | null {
  const size = statSync(p).size;
  if (size !== want.bytes) return `${size} bytes where ${want.bytes} were written`;
  if (sha256File(p) !== want.sha256) return 'its contents changed since it was written (sha256 differs)';
  return null;
}

/**
 * The problems of `dir` against its file list (none: it is intact). `required` are files that
 * must be there whatever the list says (model.json for a model).
 */
export function checkFiles(dir: string, required: readonly string[] = []): FileProblem[] {
  if (!existsSync(dir)) return [{ file: dir, problem: 'the directory is missing' }];
  const problems: FileProblem[] = [];
  for (const name of required) {
    if (!existsSync(join(dir, name))) problems.push({ file: join(dir, name), problem: 'missing' });
  }
  const list = readFileList(dir);
  if (list === null) return problems.length ? problems : checkUnlisted(dir);
  if ('problem' in list) return [...problems, list];
  for (const [name, want] of Object.entries(list.files)) {
    const p = join(dir, name);
    if (!existsSync(p)) {
      if (!required.includes(name)) problems.push({ file: p, problem: 'missing' });
      continue;
    }
    const problem = recordProblem(p, want);
    if (problem) problems.push({ file: p, problem });
  }
  return problems;
}

/**
 * The problems of some files of `dir` against its file list: a reader of a few files (one
 * predictions set) checks those alone. None when `dir` has no list (written before lists
 * existed) or the list does not name a file.
 */
export function checkListed(dir: string, names: readonly string[]): FileProblem[] {
  const list = readFileList(dir);
  if (list === null) return [];
  if ('problem' in list) return [list];
  const problems: FileProblem[] = [];
  for (const name of names) {
    const want = list.files[name];
    if (!want) continue;
    const p = join(dir, name);
    const problem = existsSync(p) ? recordProblem(p, want) : 'missing';
    if (problem) problems.push({ file: p, problem });
  }
  return problems;
}

/**
 * The problems of a trained model's directory (a trial's model/, a reader's member): with a
 * file list, every listed file as written; without one, model.json parses and each weights
 * file has its manifest's length. model.json is required either way.
 */
export function modelProblems(dir: string): FileProblem[] {
  return checkFiles(dir, ['model.json']);
}

/** For a directory without a file list: JSON files parse, and each weights file has its manifest's length. */
function checkUnlisted(dir: string): FileProblem[] {
  const problems: FileProblem[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.json')) continue;
    const p = join(dir, name);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(p, 'utf8'));
    } catch {
      problems.push({ file: p, problem: 'not valid JSON (truncated?)' });
      continue;
    }
    for (const [file, bytes] of expectedWeightBytes(json)) {
      const w = join(dir, file);
      if (!existsSync(w)) problems.push({ file: w, problem: 'missing' });
      else if (statSync(w).size !== bytes) problems.push({ file: w, problem: `${statSync(w).size} bytes where its manifest (${name}) needs ${bytes}` });
    }
  }
  return problems;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, float16: 2, uint8: 1 };

/** weights file -> bytes, from a tfjs model.json (weightsManifest) or a named-tensor list. */
function expectedWeightBytes(json: unknown): Map<string, number> {
  const out = new Map<string, number>();
  const add = (file: string, specs: Array<{ shape?: number[]; dtype?: string }>) => {
    let total = 0;
    for (const s of specs) total += (s.shape ?? []).reduce((a, b) => a * b, 1) * (DTYPE_BYTES[s.dtype ?? 'float32'] ?? 4);
    out.set(file, (out.get(file) ?? 0) + total);
  };
  const manifest = (json as { weightsManifest?: Array<{ paths: string[]; weights: Array<{ shape?: number[]; dtype?: string }> }> })?.weightsManifest;
  if (Array.isArray(manifest)) {
    for (const group of manifest) if (group.paths?.length === 1) add(group.paths[0]!, group.weights ?? []);
  }
  return out;
}

/** "weights.bin: 10 bytes where 2304 were written; ..." */
export function describeProblems(problems: readonly FileProblem[]): string {
  return problems.map((p) => `${p.file}: ${p.problem}`).join('; ');
}

/**
 * Moves a damaged directory aside, beside it, as `.damaged-<name>-<time>` (kept for
 * inspection; names starting with a dot are never taken for checkpoints). Returns the new path.
 */
export function moveAside(dir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const to = join(dirname(dir), `.damaged-${basename(dir)}-${stamp}`);
  renameSync(dir, to);
  return to;
}
