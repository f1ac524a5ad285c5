/**
 * The sweep report's reads: Postgres rows and validation images, gathered into a ReportInput
 * for model.ts to shape. Read-only: nothing here writes to the database.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { PrismaClient } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import { loadPredictions } from '../track/predictions.ts';
import { findSweep } from '../track/store.ts';
import { trainShape, type DataSourceSpec, type TrainDefaults } from '../sweep/schema.ts';
import { shapeFromParams } from '../train/shape.ts';
import { UserError } from '../util/errors.ts';
import { generatedDir } from '../worker/data.ts';
import {
  CAPTCHAS,
  CURVE_KEYS,
  pickCaptchas,
  predictionTrials,
  readProbs,
  type CaptchaImages,
  type CurveInput,
  type Goal,
  type ReadingsInput,
  type ReportInput,
  type TrialInput,
} from './model.ts';

/** The sweep (by name or id) and everything the report shows of it. */
export async function loadReportInput(prisma: PrismaClient, nameOrId: string, opts: { env?: Env; now?: Date } = {}): Promise<ReportInput> {
  const found = await findSweep(prisma, nameOrId);
  if (!found) throw new UserError(`no sweep named ${JSON.stringify(nameOrId)}; \`sweep status\` lists them`);
  const sweep = await prisma.sweep.findUniqueOrThrow({ where: { id: found.id } });
  const goal = sweep.metricGoal as Goal;
  const trials: TrialInput[] = (
    await prisma.trial.findMany({
      where: { sweepId: sweep.id },
      orderBy: { index: 'asc' },
      select: { id: true, index: true, params: true, seed: true, status: true, worker: true, attempts: true, error: true, startedAt: true, finishedAt: true, bestMetric: true },
    })
  ).map((t) => ({ ...t, params: (t.params ?? {}) as Record<string, unknown> }));
  const curves = await loadCurves(prisma, sweep.id, curveKeys(sweep.metricName));
  const extras = await loadExtras(prisma, sweep, trials, opts.env ?? process.env);
  return {
    sweep: {
      id: sweep.id,
      name: sweep.name,
      method: sweep.method,
      status: sweep.status,
      metricName: sweep.metricName,
      metricGoal: goal,
      spec: sweep.spec,
      specText: stringify(sweep.spec, { lineWidth: 0 }),
      createdAt: sweep.createdAt,
    },
    trials,
    curves,
    ...extras,
    now: opts.now ?? new Date(),
  };
}

/** The ensembles, the best trials' readings and the validation images they read. */
export async function loadExtras(
  prisma: PrismaClient,
  sweep: { id: string; spec: unknown; metricGoal: string },
  trials: readonly TrialInput[],
  env: Env,
): Promise<Pick<ReportInput, 'ensembles' | 'readings' | 'captchas'>> {
  const ensembles = await prisma.ensemble.findMany({
    where: { sweepId: sweep.id },
    orderBy: { createdAt: 'asc' },
    select: { name: true, method: true, k: true, metric: true, summary: true, createdAt: true },
  });
  const paramsOf = new Map(trials.map((t) => [t.id, t.params]));
  const readings = await loadReadings(prisma, predictionTrials(trials, sweep.metricGoal as Goal), (id) => shapeFromParams(paramsOf.get(id)).label.charset);
  const captchas = readings[0] ? readCaptchas(sweep.spec, readings[0], env) : { images: [] };
  return { ensembles, readings, captchas };
}

/** These trials' values of the given keys, one row per (trial, phase, key). */
export async function loadTrialCurves(prisma: PrismaClient, trialIds: readonly string[], keys: readonly string[]): Promise<CurveInput[]> {
  if (trialIds.length === 0) return [];
  const rows = await prisma.$queryRaw<Array<{ trialId: string; phase: string; key: string; epochs: number[]; values: number[] }>>`
    SELECT m."trialId", m."phase", m."key",
           array_agg(m."epoch" ORDER BY m."epoch") AS "epochs",
           array_agg(m."value" ORDER BY m."epoch") AS "values"
    FROM "MetricPoint" m
    WHERE m."trialId" = ANY(${[...trialIds]}::text[]) AND m."key" = ANY(${[...keys]}::text[])
    GROUP BY m."trialId", m."phase", m."key"`;
  return rows.map((r) => ({ trialId: r.trialId, phase: r.phase, key: r.key, epochs: r.epochs.map(Number), values: r.values.map(Number) }));
}

/** The keys the page draws: the learning curves' and the sweep metric. */
export function curveKeys(metricName: string): string[] {
  return [...new Set([...CURVE_KEYS, metricName])];
}

/** Every trial's values of the given keys, one row per (trial, phase, key): one statement. */
export async function loadCurves(prisma: PrismaClient, sweepId: string, keys: readonly string[]): Promise<CurveInput[]> {
  const rows = await prisma.$queryRaw<Array<{ trialId: string; phase: string; key: string; epochs: number[]; values: number[] }>>`
    SELECT m."trialId", m."phase", m."key",
           array_agg(m."epoch" ORDER BY m."epoch") AS "epochs",
           array_agg(m."value" ORDER BY m."epoch") AS "values"
    FROM "MetricPoint" m JOIN "Trial" t ON t."id" = m."trialId"
    WHERE t."sweepId" = ${sweepId} AND m."key" = ANY(${[...keys]}::text[])
    GROUP BY m."trialId", m."phase", m."key"`;
  return rows.map((r) => ({ trialId: r.trialId, phase: r.phase, key: r.key, epochs: r.epochs.map(Number), values: r.values.map(Number) }));
}

/** The trials' stored validation predictions read as text, in the order given (those without any left out). */
async function loadReadings(prisma: PrismaClient, trialIds: readonly string[], charsetOf: (trialId: string) => string): Promise<ReadingsInput[]> {
  if (trialIds.length === 0) return [];
  const sets = await loadPredictions(prisma, trialIds, 'val');
  const out: ReadingsInput[] = [];
  for (const id of trialIds) {
    const s = sets.get(id);
    if (!s) continue;
    out.push({ trialId: id, files: s.files, labels: s.labels, readings: readProbs(s.probs, s.files.length, s.length, s.classes, charsetOf(id)) });
  }
  return out;
}

/**
 * Where the validation images are, as the worker finds them: the spec's `train.val` (a
 * directory, or generated CAPTCHAs under SWEEP_HOME/data), else the training set a share of
 * which was held out. `label` names it without the machine's paths.
 */
export function validationSource(spec: unknown, env: Env): { dir: string; label: string } | null {
  const train = (spec && typeof spec === 'object' ? (spec as { train?: TrainDefaults }).train : undefined) ?? undefined;
  if (!train) return null;
  const from = (s: DataSourceSpec | undefined, what: string) => {
    if (s === undefined) return null;
    if (typeof s === 'string') return { dir: s, label: `${what} directory ${path.basename(s)}` };
    const dir = generatedDir(s, trainShape(train), env);
    return { dir, label: `${what} set ${path.basename(dir)} (generated under SWEEP_HOME/data)` };
  };
  return from(train.val, 'validation') ?? from(train.data, 'training (a share held out for validation)') ?? from(train.generate, 'training (a share held out for validation)');
}

const MIME: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp', '.bmp': 'image/bmp' };

/** Up to CAPTCHAS of the best trial's validation images as data: URIs, or why there are none. */
export function readCaptchas(spec: unknown, best: ReadingsInput, env: Env): CaptchaImages {
  const source = validationSource(spec, env);
  if (!source) return { missing: 'The stored sweep names no validation data.' };
  if (!existsSync(source.dir)) return { missing: `The validation images (${source.label}) are not on this machine.` };
  const images: Array<{ file: string; src: string }> = [];
  for (const i of pickCaptchas(best.labels, best.readings, CAPTCHAS)) {
    const file = best.files[i];
    const full = path.resolve(source.dir, file);
    // A stored name never leads out of the dataset's directory.
    if (!full.startsWith(path.resolve(source.dir) + path.sep) || !existsSync(full)) continue;
    const mime = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    images.push({ file, src: `data:${mime};base64,${readFileSync(full).toString('base64')}` });
  }
  if (images.length === 0) return { missing: `The validation images (${source.label}) were not found on this machine.` };
  return { images };
}
