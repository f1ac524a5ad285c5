/**
 * Which finished trials an ensemble is built from: ranked by a metric (ties: earlier finish),
 * with their stored predictions, refused when the predictions are missing or were not made on
 * the same examples. Pure ranking; the queries sit at the end.
 */
import type { PrismaClient } from '../infra/db.ts';
import { loadPredictions, type PredictionSet, type PredictionSplit } from '../track/predictions.ts';
import { UserError } from '../util/errors.ts';

export interface Candidate {
  id: string;
  index: number;
  params: Record<string, unknown>;
  metric: number | null;
  finishedAt: Date | null;
}

export type Goal = 'minimize' | 'maximize';

/** Best first by `metric` (missing values last), ties broken by the earlier finish, then index. */
export function rankCandidates(trials: readonly Candidate[], goal: Goal): Candidate[] {
  const sign = goal === 'maximize' ? -1 : 1;
  return [...trials].sort((a, b) => {
    const am = a.metric ?? null;
    const bm = b.metric ?? null;
    if (am === null || bm === null) {
      if (am !== bm) return am === null ? 1 : -1;
    } else if (am !== bm) {
      return sign * (am - bm);
    }
    const at = a.finishedAt?.getTime() ?? Infinity;
    const bt = b.finishedAt?.getTime() ?? Infinity;
    return at !== bt ? at - bt : a.index - b.index;
  });
}

/** The goal of a metric that is not the sweep's own: losses fall, everything else rises. */
export function metricGoal(name: string, sweepMetric: { name: string; goal: Goal }): Goal {
  if (name === sweepMetric.name) return sweepMetric.goal;
  return /loss/.test(name) ? 'minimize' : 'maximize';
}

/** Result keys a trial can be ranked by (numbers in its stored result). */
export const RANKABLE_METRICS = ['val_seq_acc', 'val_char_acc', 'val_loss', 'test_seq_acc', 'test_char_acc', 'test_loss'] as const;

export interface SweepTrials {
  sweep: { id: string; name: string; metric: { name: string; goal: Goal } };
  finished: Candidate[];
}

/** The finished trials of a sweep with the value of `metric` (the sweep's own by default). */
export async function finishedTrials(prisma: PrismaClient, sweep: SweepTrials['sweep'], metric: string): Promise<Candidate[]> {
  const rows = await prisma.trial.findMany({
    where: { sweepId: sweep.id, status: 'finished' },
    select: { id: true, index: true, params: true, bestMetric: true, summary: true, finishedAt: true },
  });
  return rows.map((r) => {
    const summary = (r.summary ?? {}) as Record<string, unknown>;
    const fromSummary = summary[metric];
    const value = metric === sweep.metric.name ? (r.bestMetric ?? (typeof fromSummary === 'number' ? fromSummary : null)) : typeof fromSummary === 'number' ? fromSummary : null;
    return { id: r.id, index: r.index, params: (r.params ?? {}) as Record<string, unknown>, metric: value, finishedAt: r.finishedAt };
  });
}

export function short(id: string): string {
  return id.slice(0, 10);
}

/**
 * The chosen trials' predictions for one split, all made on one dataset. `required`: a trial
 * without them is an error (validation); otherwise a split missing for every trial yields null
 * (no test set), and missing for some is an error.
 */
export async function memberPredictions(
  prisma: PrismaClient,
  sweepName: string,
  chosen: readonly Candidate[],
  split: PredictionSplit,
  required: boolean,
): Promise<PredictionSet[] | null> {
  const sets = await loadPredictions(prisma, chosen.map((c) => c.id), split);
  const missing = chosen.filter((c) => !sets.has(c.id));
  if (missing.length === chosen.length && !required) return null;
  if (missing.length > 0) {
    const what = split === 'val' ? 'validation' : 'test';
    throw new UserError(
      `${missing.length} of the chosen trials have no stored ${what} predictions: ${missing.map((c) => `#${c.index} ${short(c.id)}`).join(', ')}. ` +
        `Trials finished before predictions were stored in the database need \`sweep ensemble backfill ${sweepName}\`, ` +
        'run where their artifact directories are (SWEEP_ARTIFACTS)',
    );
  }
  const ordered = chosen.map((c) => sets.get(c.id)!);
  sameDataset(ordered, chosen, split);
  return ordered;
}

/** Refuses predictions made on different examples (or orders), naming two trials that differ. */
export function sameDataset(sets: readonly PredictionSet[], chosen: readonly Pick<Candidate, 'id' | 'index'>[], split: string): void {
  const first = sets[0];
  for (let i = 1; i < sets.length; i++) {
    const s = sets[i];
    const shapeDiffers = s.length !== first.length || s.classes !== first.classes;
    if (s.datasetId === first.datasetId && !shapeDiffers) continue;
    const a = chosen[0];
    const b = chosen[i];
    const why = shapeDiffers
      ? `predict ${first.length} characters of ${first.classes} classes against ${s.length} of ${s.classes}`
      : `were made on different ${split} examples (dataset ${first.datasetId.slice(0, 12)}, ${first.files.length} images, against ${s.datasetId.slice(0, 12)}, ${s.files.length} images)`;
    throw new UserError(
      `trials #${a.index} ${short(a.id)} and #${b.index} ${short(b.id)} cannot be combined: their ${split} predictions ${why}; ` +
        'an ensemble combines only predictions made on the same examples in the same order',
    );
  }
}
