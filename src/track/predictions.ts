/**
 * A finished trial's validation and test predictions in Postgres, so an ensemble can be built
 * from any machine, not only the worker's that wrote `predictions/*.probs.f32`.
 *
 * The trainer writes, per set, `<set>.probs.f32` (n x length x classes float32) and
 * `<set>.json` ({shape, files, labels, metrics}). Here they become one TrialPredictions row
 * (probabilities as float16) pointing at a PredictionDataset row (the file names and labels,
 * stored once per distinct set). The dataset's id is a hash of names and labels in order, so
 * predictions combine only when they were made on the same examples in the same order.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { PrismaClient } from '../infra/db.ts';
import { checkListed, describeProblems } from '../train/integrity.ts';
import type { TrialResult } from '../train/trainer.ts';
import { datasetHash, decodeProbs, encodeProbs } from './codec.ts';

export const PREDICTION_SPLITS = ['val', 'test'] as const;
export type PredictionSplit = (typeof PREDICTION_SPLITS)[number];

/** One set's predictions, as the trainer wrote them or as stored. */
export interface PredictionSet {
  split: PredictionSplit;
  datasetId: string;
  files: string[];
  labels: string[];
  length: number;
  classes: number;
  /** n x length x classes probabilities. */
  probs: Float32Array;
}

/** A problem with a predictions file, naming it. */
export class PredictionFileError extends Error {}

/** The `.json` beside a `.probs.f32` file. */
function sidecar(probsPath: string): string {
  return probsPath.replace(/\.probs\.f32$/, '.json');
}

/**
 * Reads `<set>.probs.f32` and its `.json`, checking them against the directory's file list
 * (size and sha256 as written, when the trainer wrote one) and that their sizes agree.
 */
export function readPredictionFiles(probsPath: string, split: PredictionSplit): PredictionSet {
  const metaPath = sidecar(probsPath);
  for (const p of [probsPath, metaPath]) if (!existsSync(p)) throw new PredictionFileError(`${p}: not found`);
  const damaged = checkListed(path.dirname(probsPath), [path.basename(probsPath), path.basename(metaPath)]);
  if (damaged.length) throw new PredictionFileError(`damaged predictions: ${describeProblems(damaged)}`);
  let meta: { shape?: unknown; files?: unknown; labels?: unknown };
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8'));
  } catch (err) {
    throw new PredictionFileError(`${metaPath}: not valid JSON (${(err as Error).message})`);
  }
  const shape = meta.shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((x) => Number.isInteger(x) && x > 0)) {
    throw new PredictionFileError(`${metaPath}: "shape" should be [items, length, classes], got ${JSON.stringify(shape)}`);
  }
  const [n, length, classes] = shape as number[];
  const files = meta.files;
  const labels = meta.labels;
  if (!isStrings(files, n) || !isStrings(labels, n)) {
    throw new PredictionFileError(`${metaPath}: "files" and "labels" should be ${n} strings each`);
  }
  const bytes = readFileSync(probsPath);
  const expected = n * length * classes * 4;
  if (bytes.byteLength !== expected) {
    throw new PredictionFileError(`${probsPath}: ${bytes.byteLength} bytes where ${n}x${length}x${classes} float32 make ${expected}`);
  }
  const probs = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { split, datasetId: datasetHash(files, labels), files, labels, length, classes, probs };
}

function isStrings(x: unknown, n: number): x is string[] {
  return Array.isArray(x) && x.length === n && x.every((s) => typeof s === 'string');
}

/** The predictions files of a trial's output directory that exist (val always, test if made). */
export function predictionFilesIn(trialOut: string): Array<{ split: PredictionSplit; path: string }> {
  return PREDICTION_SPLITS.map((split) => ({ split, path: path.join(trialOut, 'predictions', `${split}.probs.f32`) })).filter((f) =>
    existsSync(f.path),
  );
}

/** Long enough for a few MB of predictions on a busy database; Prisma's default is 5 s. */
const STORE_TIMEOUT_MS = 120_000;

/** Stores (or replaces) a trial's prediction sets, in one transaction; each dataset is stored once. */
export async function savePredictions(prisma: PrismaClient, trialId: string, sets: readonly PredictionSet[]): Promise<void> {
  if (sets.length === 0) return;
  await prisma.$transaction(
    async (tx) => {
      for (const s of sets) {
        // Trials of a sweep share their datasets and may finish at the same moment: one
        // INSERT ... ON CONFLICT DO NOTHING (an upsert reads, then inserts, and two trials
        // storing the same new dataset at once would both insert).
        await tx.predictionDataset.createMany({
          data: [{ id: s.datasetId, size: s.files.length, files: s.files, labels: s.labels }],
          skipDuplicates: true,
        });
        const row = { datasetId: s.datasetId, length: s.length, classes: s.classes, encoding: 'f16', data: new Uint8Array(encodeProbs(s.probs, s.classes)) as Uint8Array<ArrayBuffer> };
        await tx.trialPredictions.upsert({
          where: { trialId_split: { trialId, split: s.split } },
          create: { trialId, split: s.split, ...row },
          update: row,
          select: { trialId: true }, // not the megabytes just written
        });
      }
    },
    { timeout: STORE_TIMEOUT_MS, maxWait: STORE_TIMEOUT_MS },
  );
}

/** Stored prediction sets of the given trials for one split, by trial id (absent: none stored). */
export async function loadPredictions(prisma: PrismaClient, trialIds: readonly string[], split: PredictionSplit): Promise<Map<string, PredictionSet>> {
  // The probabilities come as base64 text: bytea through the driver adapter is parsed from hex
  // and converted twice more, several times the cost of decoding base64 once.
  const rows = await prisma.$queryRaw<Array<{ trialId: string; datasetId: string; length: number; classes: number; encoding: string; data: string }>>`
    SELECT "trialId", "datasetId", "length", "classes", "encoding", encode("data", 'base64') AS "data"
    FROM "TrialPredictions" WHERE "trialId" = ANY(${[...trialIds]}::text[]) AND "split" = ${split}`;
  const datasets = new Map<string, { files: string[]; labels: string[] }>();
  for (const id of new Set(rows.map((r) => r.datasetId))) {
    const d = await prisma.predictionDataset.findUniqueOrThrow({ where: { id } });
    datasets.set(id, { files: d.files as string[], labels: d.labels as string[] });
  }
  const out = new Map<string, PredictionSet>();
  for (const r of rows) {
    const d = datasets.get(r.datasetId)!;
    if (r.encoding !== 'f16') throw new Error(`trial ${r.trialId}: ${split} predictions stored as ${r.encoding}, which this version cannot read`);
    const count = d.files.length * r.length * r.classes;
    out.set(r.trialId, { split, datasetId: r.datasetId, files: d.files, labels: d.labels, length: r.length, classes: r.classes, probs: decodeProbs(Buffer.from(r.data, 'base64'), count) });
  }
  return out;
}

/** Ids (of those given) of trials that have no stored validation predictions. */
export async function trialsWithoutPredictions(prisma: PrismaClient, trialIds: readonly string[]): Promise<string[]> {
  const have = await prisma.trialPredictions.findMany({ where: { trialId: { in: [...trialIds] }, split: 'val' }, select: { trialId: true } });
  const set = new Set(have.map((h) => h.trialId));
  return trialIds.filter((id) => !set.has(id));
}

/**
 * The prediction sets a finished trial wrote, read for storing with it. A set that cannot be
 * read is left out with a message (the trial still finishes; `sweep ensemble backfill` can
 * store it later from the files).
 */
export function readTrialPredictions(result: Pick<TrialResult, 'predictions'>, log: (msg: string) => void): PredictionSet[] {
  const sets: PredictionSet[] = [];
  for (const split of PREDICTION_SPLITS) {
    const file = result.predictions[split];
    if (!file) continue;
    try {
      sets.push(readPredictionFiles(file, split));
    } catch (err) {
      log(`${split} predictions not stored in the database (${(err as Error).message}); \`sweep ensemble backfill\` can store them later`);
    }
  }
  return sets;
}
