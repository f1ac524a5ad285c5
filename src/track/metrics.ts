/**
 * Metrics as the database keeps them: one MetricPoint per (trial, phase, epoch, key), where
 * `epoch` is the trainer's 0-based epoch index within its phase (pretrain-e0001 on disk is
 * epoch 0 here), and the sweep metric that ranks trials.
 *
 * Pure functions; the writes live in store.ts.
 */
import { leaves } from '../sweep/space.ts';
import type { Goal, ParamSpec, SweepMetric } from '../sweep/schema.ts';
import type { EpochMetrics, TrialResult } from '../train/trainer.ts';

export interface MetricRow {
  trialId: string;
  phase: string;
  epoch: number;
  key: string;
  value: number;
}

/** Keys of an epoch that are labels, not measurements. */
const NOT_MEASURED = new Set(['phase', 'epoch']);

/** One row per finite numeric value of the epoch. */
export function epochRows(trialId: string, m: EpochMetrics): MetricRow[] {
  const rows: MetricRow[] = [];
  for (const [key, value] of Object.entries(m)) {
    if (NOT_MEASURED.has(key) || typeof value !== 'number' || !Number.isFinite(value)) continue;
    rows.push({ trialId, phase: m.phase, epoch: m.epoch, key, value });
  }
  return rows;
}

// The metric's shape and default are the sweep file schema's.
export { DEFAULT_METRIC } from '../sweep/default-metric.ts';
export type { Goal, SweepMetric } from '../sweep/schema.ts';

/** True when `a` is better than `b` (a missing `b` is beaten by any number). */
export function better(goal: Goal, a: number, b: number | null | undefined): boolean {
  if (b === null || b === undefined || !Number.isFinite(b)) return Number.isFinite(a);
  return goal === 'maximize' ? a > b : a < b;
}

/** The sweep metric of one epoch, when the epoch reports it. */
export function epochMetric(metric: SweepMetric, m: EpochMetrics): number | null {
  const v = (m as unknown as Record<string, unknown>)[metric.name];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * The sweep metric of a finished trial: the result's value (the saved model's, e.g. its
 * val_seq_acc) when it has one, else the best value seen over its epochs.
 */
export function resultMetric(metric: SweepMetric, result: TrialResult, history: readonly EpochMetrics[] = []): number | null {
  const v = (result as unknown as Record<string, unknown>)[metric.name];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  let best: number | null = null;
  for (const m of history) {
    const x = epochMetric(metric, m);
    if (x !== null && better(metric.goal, x, best)) best = x;
  }
  return best;
}

/** Dotted names of the parameters a sweep varies (constants left out), in grid order. */
export function sweptKeys(parameters: Record<string, ParamSpec> | undefined): string[] {
  return leaves(parameters ?? {})
    .filter((l) => l.spec.distribution !== 'constant')
    .map((l) => l.path.join('.'));
}

function valueAt(params: Record<string, unknown>, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), params);
}

function show(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** `kernel_size=3 dropout=0.1`: the given (dotted) keys of a trial's params, else all of them. */
export function formatParams(params: Record<string, unknown>, keys?: readonly string[]): string {
  const shown = keys && keys.length > 0 ? keys : Object.keys(params);
  return shown
    .map((k) => [k, valueAt(params, k)] as const)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ');
}

/**
 * A trial's validation character and sequence accuracy: a finished trial's are its saved
 * model's (its result's), any other's those of its latest epoch. Shown beside the sweep
 * metric, because early in training the sequence accuracy reads 0 while characters are learnt.
 */
export interface ValAccuracy {
  valCharAcc: number | null;
  valSeqAcc: number | null;
}

const ACCURACY_KEYS = [
  ['val_char_acc', 'valCharAcc'],
  ['val_seq_acc', 'valSeqAcc'],
] as const;

/** The accuracies shown beside `metric` (itself left out), as [name, value] pairs. */
export function accuracyPairs(metric: SweepMetric, a: ValAccuracy): Array<[string, number | null]> {
  return ACCURACY_KEYS.filter(([name]) => name !== metric.name).map(([name, field]) => [name, a[field]]);
}

/** `val_char_acc 0.3512` (and `val_seq_acc ...` when the sweep ranks by something else); known values only. */
export function accuracyText(metric: SweepMetric, a: ValAccuracy): string {
  return accuracyPairs(metric, a)
    .filter((p): p is [string, number] => p[1] !== null)
    .map(([name, v]) => `${name} ${v.toFixed(4)}`)
    .join(' ');
}

/** `best: #index id metric value val_char_acc value` of a sweep that has a best trial, as launch and status print it. */
export function bestTrial(s: { metric: SweepMetric; best: (ValAccuracy & { index: number; trialId: string; value: number; status: string }) | null }): string {
  const b = s.best!;
  const acc = accuracyText(s.metric, b);
  return `best: #${b.index} ${b.trialId} ${s.metric.name} ${b.value.toFixed(4)}${acc ? ` ${acc}` : ''}${b.status === 'running' ? ' (running)' : ''}`;
}
