/**
 * A dataset is a directory of PNG/JPEG CAPTCHA images and their labels:
 *  - from `labels.csv` in that directory when it exists (header `file,label`; `file` relative to
 *    the directory, may name a subdirectory; images the csv does not name are not used), or
 *  - from the file names (`a3k9zq.png`, `a3k9zq_17.png`: the part before an optional `_N`),
 *    for the images directly in the directory.
 *
 * Everything that can be wrong with an item is found at load time, so a trial never dies in
 * epoch 7 on a bad file: unreadable or missing files, corrupt or truncated images, the wrong
 * size, labels the charset cannot express, malformed csv lines. By default each is a UserError
 * (all problems listed, the first ten in full); with `skipBad` they are skipped and reported in
 * `dataset.skipped`.
 *
 * What "corrupt" costs to find out (see image-check.ts; numbers from bench/pipeline.ts):
 *  - verify 'fast' (default): every file is read once (into the byte cache, which training
 *    then reuses) and checked structurally: PNG chunk CRCs and IEND, JPEG markers through EOI.
 *    This finds truncation and any flipped bit in a PNG. Measured 10-20k images/s with reading
 *    (~0.1 ms/image of CPU): 200k images in 10-20 s.
 *  - verify 'full': additionally a strict libvips decode of every image, ~1k images/s per
 *    thread (200k images: ~100 s on 2 cores): also finds a PNG whose compressed stream is
 *    invalid under correct CRCs (an encoder bug, not disk damage). No decoder reliably finds
 *    bit flips inside JPEG entropy data.
 * Sizes come from the image headers, never from decoding.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { labelProblem, readLabel, type LabelSpec } from './charset.ts';
import { ByteCache } from './byte-cache.ts';
import { checkImage, ImageProblem, verifyDecode } from './image-check.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { DEFAULT_IMAGE_SIZE } from '../train/geometry.ts';

export interface DatasetItem {
  /** Path relative to the dataset directory. */
  file: string;
  label: string;
}

export interface SkippedItem {
  file: string;
  problem: string;
  /** Line in labels.csv, when the item came from there. */
  line?: number;
}

export interface Dataset {
  dir: string;
  items: DatasetItem[];
  spec: LabelSpec;
  height: number;
  width: number;
  /** Items left out by `skipBad`, with why. Empty for datasets made by splitDataset. */
  skipped: SkippedItem[];
  /** Encoded bytes held in memory (shared with splits); null reads files from disk each time. */
  cache: ByteCache | null;
}

export interface LoadOptions {
  spec: LabelSpec;
  height?: number;
  width?: number;
  /** Skip bad items (recorded in `skipped`) instead of failing. */
  skipBad?: boolean;
  /** How hard to look for corrupt images; see the module comment. */
  verify?: 'fast' | 'full';
  /** Budget of the in-memory cache of encoded bytes; 0 disables it. Default 1 GiB. */
  cacheBytes?: number;
  /** Files read and checked at once (reads use libuv's threadpool). */
  concurrency?: number;
}

export const LABELS_FILE = 'labels.csv';
const IMAGE_EXT = /\.(png|jpe?g)$/i;
const NAME_LABEL = /^(.*?)(?:_\d+)?\.(?:png|jpe?g)$/i;
const MAX_LISTED = 10;

interface Candidate {
  file: string;
  label: string;
  line?: number;
}

export async function loadDataset(dir: string, opts: LoadOptions): Promise<Dataset> {
  const height = opts.height ?? DEFAULT_IMAGE_SIZE.height;
  const width = opts.width ?? DEFAULT_IMAGE_SIZE.width;
  const { spec } = opts;
  const skipBad = opts.skipBad ?? false;
  const verify = opts.verify ?? 'fast';
  const cacheBytes = opts.cacheBytes ?? 1 << 30;
  const cache = cacheBytes > 0 ? new ByteCache(cacheBytes) : null;

  let entries: string[];
  try {
    entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  } catch (e) {
    throw new UserError(`dataset directory ${dir} cannot be read (${(e as Error).message})`);
  }

  const problems: SkippedItem[] = [];
  const candidates: Candidate[] = [];
  const csvPath = path.join(dir, LABELS_FILE);
  if (entries.includes(LABELS_FILE)) {
    const text = await readFile(csvPath, 'utf8');
    const parsed = parseLabelsCsv(text, csvPath);
    problems.push(...parsed.problems);
    candidates.push(...parsed.rows);
  } else {
    for (const name of entries.filter((n) => IMAGE_EXT.test(n)).sort()) {
      candidates.push({ file: name, label: NAME_LABEL.exec(name)![1] });
    }
  }

  // Check each candidate: label, then bytes (read once, cached), structure, size.
  const ok: boolean[] = new Array(candidates.length).fill(false);
  const itemProblems: (SkippedItem | undefined)[] = new Array(candidates.length);
  let next = 0;
  const worker = async () => {
    while (next < candidates.length) {
      const i = next++;
      const c = candidates[i];
      const problem = await checkCandidate(dir, c, { spec, height, width, verify, cache });
      if (problem === null) ok[i] = true;
      else itemProblems[i] = { file: c.file, problem, ...(c.line !== undefined ? { line: c.line } : {}) };
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 16) }, worker));
  for (const p of itemProblems) if (p) problems.push(p);
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || a.file.localeCompare(b.file));

  const source = candidates.length && candidates[0].line !== undefined ? csvPath : dir;
  if (problems.length && !skipBad) {
    const shown = problems.slice(0, MAX_LISTED).map((p) => `  ${describe(dir, csvPath, p)}`);
    const more = problems.length > MAX_LISTED ? [`  ... and ${problems.length - MAX_LISTED} more`] : [];
    throw new UserError(
      `${describe(dir, csvPath, problems[0])}\n` +
        (problems.length > 1 ? `${problems.length} bad items in ${source}:\n${[...shown, ...more].join('\n')}\n` : '') +
        'fix or remove them, or skip them with skipBad (--skip-bad)',
    );
  }

  // Under `case: fold` a label is kept as the charset spells it, so every later use agrees.
  const items = candidates.filter((_, i) => ok[i]).map(({ file, label }) => ({ file, label: readLabel(label, spec) }));
  if (items.length === 0) {
    const why = problems.length ? ` (${problems.length} bad items skipped)` : '';
    throw new UserError(`dataset ${source} has no usable images${why}: expected PNG or JPEG files labelled by name or by ${LABELS_FILE}`);
  }
  return { dir, items, spec, height, width, skipped: problems, cache };
}

/** `<dir>/labels.csv line 7: a.png: problem` or `<dir>/a.png: problem`. */
function describe(dir: string, csvPath: string, p: SkippedItem): string {
  if (p.line !== undefined) return `${csvPath} line ${p.line}: ${p.file ? `${p.file}: ` : ''}${p.problem}`;
  return `${path.join(dir, p.file)}: ${p.problem}`;
}

async function checkCandidate(
  dir: string,
  c: Candidate,
  o: { spec: LabelSpec; height: number; width: number; verify: 'fast' | 'full'; cache: ByteCache | null },
): Promise<string | null> {
  const labelIssue = labelProblem(c.label, o.spec);
  if (labelIssue) return c.line === undefined ? `${labelIssue} (label taken from the file name)` : labelIssue;
  const full = path.join(dir, c.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(full);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return c.line !== undefined ? `file is missing (${full} does not exist)` : 'file is missing';
    if (code === 'EISDIR') return 'is a directory, not an image';
    return `cannot be read (${(e as Error).message})`;
  }
  try {
    const info = checkImage(bytes);
    if (info.width !== o.width || info.height !== o.height) {
      return `is ${info.width}x${info.height} (width x height), expected ${o.width}x${o.height}`;
    }
    if (o.verify === 'full') await verifyDecode(bytes);
  } catch (e) {
    if (e instanceof ImageProblem) return e.message;
    throw e;
  }
  o.cache?.put(full, bytes);
  return null;
}

/**
 * Parses labels.csv: a `file,label` header, then one `file,label` row per line. Fields may be
 * double-quoted (with "" for a quote inside). Blank lines are ignored. A row that cannot be
 * parsed is a problem of its line; a bad header fails the whole file, even with skipBad.
 */
export function parseLabelsCsv(text: string, csvPath = LABELS_FILE): { rows: Candidate[]; problems: SkippedItem[] } {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const rows: Candidate[] = [];
  const problems: SkippedItem[] = [];
  const seen = new Map<string, number>();
  let header = true;
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    if (lines[i].trim() === '') continue;
    const fields = splitCsvLine(lines[i]);
    if (header) {
      header = false;
      const names = Array.isArray(fields) ? fields.map((f) => f.trim().toLowerCase()) : [];
      if (names.length !== 2 || names[0] !== 'file' || names[1] !== 'label') {
        throw new UserError(`${csvPath} line ${line}: expected the header 'file,label', found '${lines[i]}'`);
      }
      continue;
    }
    if (typeof fields === 'string') {
      problems.push({ file: '', problem: `malformed line: ${fields}: '${lines[i]}'`, line });
      continue;
    }
    if (fields.length !== 2) {
      problems.push({ file: '', problem: `malformed line: expected 2 fields (file,label), found ${fields.length}: '${lines[i]}'`, line });
      continue;
    }
    const file = fields[0].trim();
    const label = fields[1].trim();
    if (!file || !label) {
      problems.push({ file, problem: `malformed line: empty ${file ? 'label' : 'file'}: '${lines[i]}'`, line });
      continue;
    }
    if (path.isAbsolute(file)) {
      problems.push({ file, problem: 'malformed line: the file must be relative to the dataset directory', line });
      continue;
    }
    const key = path.normalize(file);
    const before = seen.get(key);
    if (before !== undefined) {
      problems.push({ file, problem: `listed twice (also on line ${before})`, line });
      continue;
    }
    seen.set(key, line);
    rows.push({ file, label, line });
  }
  if (header) throw new UserError(`${csvPath} is empty: expected the header 'file,label' and one row per image`);
  return { rows, problems };
}

/** The fields of one csv line, or why it cannot be split. */
function splitCsvLine(line: string): string[] | string {
  const fields: string[] = [];
  let i = 0;
  while (true) {
    let field = '';
    let q = i;
    while (line[q] === ' ' || line[q] === '\t') q++; // blanks may surround a quoted field
    if (line[q] === '"') {
      i = q + 1;
      while (true) {
        if (i >= line.length) return 'unterminated quote';
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      while (line[i] === ' ' || line[i] === '\t') i++;
      if (i < line.length && line[i] !== ',') return 'text after a closing quote';
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      field = line.slice(i, end);
      if (field.includes('"')) return 'a quote inside an unquoted field';
      i = end;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

export interface SplitOptions {
  /** Fraction of the items for validation, in (0, 1). */
  valFraction: number;
  seed: number | string;
}

/**
 * Splits a dataset into train and validation parts, for when no separate validation directory
 * is given. Items are ranked by a seeded hash of their file name and the first
 * round(n * valFraction) go to validation: the same seed gives the same split whatever the
 * order of the items, and adding files to a dataset moves few existing ones across. Both parts
 * keep the dataset's order and share its byte cache.
 */
export function splitDataset(ds: Dataset, opts: SplitOptions): { train: Dataset; val: Dataset } {
  const { valFraction } = opts;
  if (!(valFraction > 0 && valFraction < 1)) {
    throw new UserError(`validation fraction must be between 0 and 1 (exclusive), got ${valFraction}`);
  }
  const n = ds.items.length;
  const nVal = Math.round(n * valFraction);
  if (nVal === 0 || nVal === n) {
    throw new UserError(
      `validation fraction ${valFraction} of ${n} items leaves ${nVal === 0 ? 'no validation' : 'no training'} items`,
    );
  }
  const keys = ds.items.map((item, i) => ({ i, key: itemKey(opts.seed, item.file), file: item.file }));
  keys.sort((a, b) => a.key - b.key || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const isVal = new Uint8Array(n);
  for (let k = 0; k < nVal; k++) isVal[keys[k].i] = 1;
  const part = (want: number): Dataset => ({ ...ds, items: ds.items.filter((_, i) => isVal[i] === want), skipped: [] });
  return { train: part(0), val: part(1) };
}

/** A 53-bit hash of (seed, file). */
function itemKey(seed: number | string, file: string): number {
  const rng = new Rng(`split\u0000${seed}\u0000${file}`);
  return rng.nextUint32() * 2097152 + (rng.nextUint32() >>> 11);
}
