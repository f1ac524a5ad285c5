/**
 * The exported reader's `manifest.json`: what the reader is (members, weights, how they are
 * combined, the input it takes, the labels it reads) and the sha256 of every other file, so a
 * damaged or edited reader is refused before it reads anything.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sha256File } from '../util/hash.ts';

export const MANIFEST_FILE = 'manifest.json';
export const READER_FORMAT = 'sweep-reader';
export const READER_VERSION = 1;

export type CombineMethod = 'vote' | 'soft' | 'greedy' | 'single';

export interface ManifestMember {
  trialId: string;
  sweep: string | null;
  rank: number;
  weight: number;
  params: Record<string, unknown>;
  /** Accuracies recorded when the reader was exported (validation, and test if there was one). */
  metrics: Record<string, unknown>;
  /** The member's TF.js model directory, relative to the reader. */
  dir: string;
}

export interface Manifest {
  format: typeof READER_FORMAT;
  version: number;
  name: string;
  method: CombineMethod;
  createdAt: string;
  sweep: { id: string; name: string } | null;
  input: { height: number; width: number; channels: number };
  /** `case`: how the labels' letter case was read in training (train/shape.ts); absent in readers exported before it: `lower`. */
  label: { length: number; classes: number; charset: string; case?: 'lower' | 'upper' | 'fold' };
  /** Hashes of the validation and test sets the members' stored predictions were made on. */
  datasets: { val: string | null; test: string | null };
  members: ManifestMember[];
  /** sha256 of every file of the reader but this one, by path relative to the reader. */
  files: Record<string, string>;
}

export class ReaderError extends Error {}

function fail(dir: string, what: string): never {
  throw new ReaderError(`${path.join(dir, MANIFEST_FILE)}: ${what}`);
}

/** Reads and checks a manifest's shape (not yet the files). */
export function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  if (!existsSync(file)) throw new ReaderError(`${dir}: no ${MANIFEST_FILE} (not an exported reader)`);
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  } catch (err) {
    return fail(dir, `not valid JSON (${(err as Error).message})`);
  }
  if (m.format !== READER_FORMAT) fail(dir, `"format" is ${JSON.stringify(m.format)}, expected "${READER_FORMAT}"`);
  if (m.version !== READER_VERSION) fail(dir, `format version ${m.version}; this version of sweep reads version ${READER_VERSION}`);
  if (!Array.isArray(m.members) || m.members.length === 0) fail(dir, '"members" should list at least one member');
  if (!m.files || typeof m.files !== 'object') fail(dir, '"files" should map each file to its sha256');
  for (const k of ['height', 'width'] as const) if (!Number.isInteger(m.input?.[k]) || m.input[k] < 1) fail(dir, `"input.${k}" should be a positive integer`);
  if (!Number.isInteger(m.label?.length) || typeof m.label?.charset !== 'string') fail(dir, '"label" should give length and charset');
  return m;
}

/** Every file the manifest lists exists and has its recorded sha256; the first one that does not is named. */
export function verifyFiles(dir: string, m: Manifest): void {
  for (const [rel, sum] of Object.entries(m.files)) {
    const file = path.join(dir, rel);
    if (path.relative(dir, file).startsWith('..')) fail(dir, `file ${JSON.stringify(rel)} points outside the reader`);
    if (!existsSync(file)) throw new ReaderError(`${file}: missing (listed in ${MANIFEST_FILE}); export the reader again`);
    const actual = sha256File(file);
    if (actual !== sum) {
      throw new ReaderError(`${file}: sha256 ${actual.slice(0, 16)}… does not match ${MANIFEST_FILE}'s ${sum.slice(0, 16)}…: the file was changed or damaged; export the reader again`);
    }
  }
  for (const mem of m.members) {
    if (!Object.keys(m.files).some((f) => f.startsWith(`${mem.dir}/`))) fail(dir, `member ${mem.trialId} lists no files under ${mem.dir}`);
  }
}

/** The batch input shape [null, H, W, C] of a saved layers model, when it names one. */
export function findInputShape(modelJson: unknown): number[] | null {
  const layers = (modelJson as { modelTopology?: { config?: { layers?: Array<{ config?: { batch_input_shape?: number[] } }> } } })?.modelTopology?.config?.layers;
  const s = layers?.find((l) => Array.isArray(l.config?.batch_input_shape))?.config?.batch_input_shape;
  return s ?? null;
}
