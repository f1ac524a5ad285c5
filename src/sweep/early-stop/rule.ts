/**
 * What every stopping rule shares: the trial histories it reads, the decisions it returns,
 * and how a reason shows a value. See ../early-stop.ts for the conventions.
 */
import type { SweepMetric } from '../schema.ts';

export type TrialHistoryStatus = 'queued' | 'running' | 'finished' | 'failed' | 'diverged' | 'stopped' | 'cancelled';

export interface TrialHistory {
  trialId: string;
  status: TrialHistoryStatus;
  /** The sweep metric per iteration, in order. */
  values: number[];
}

export interface StopDecision {
  trialId: string;
  /** Iterations the trial had reported when it was judged; it stops after this one. */
  iteration: number;
  /** Why, with the numbers, e.g. "hyperband band 3: val_seq_acc 0.12 below threshold 0.31 (eta 3)". */
  reason: string;
}

/**
 * A stopping rule: the running trials to stop now, in the order of `trials`. With `only`, just
 * that trial is judged (every trial is still evidence): the same answer for it, less work.
 */
export type StoppingRule<C> = (config: C, metric: SweepMetric, trials: readonly TrialHistory[], only?: string) => StopDecision[];

/** Whether a rule judges `trial` now: it is running, and it is the one asked about, if any. */
export function judged(trial: TrialHistory, only: string | undefined): boolean {
  return trial.status === 'running' && (only === undefined || trial.trialId === only);
}

/** The values that count: the finite ones, in order. */
export function finiteValues(values: readonly number[]): number[] {
  return values.filter((v) => typeof v === 'number' && Number.isFinite(v));
}

/** A metric value in a reason: six significant digits, no trailing zeros. */
export function showValue(v: number): string {
  return String(+v.toPrecision(6));
}

/** "below" when the goal is to maximize (a worse value is lower), else "above". */
export function worseWord(goal: SweepMetric['goal']): string {
  return goal === 'maximize' ? 'below' : 'above';
}
