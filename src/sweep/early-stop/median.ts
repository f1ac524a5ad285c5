/**
 * Median stopping, with the semantics of optuna's MedianPruner (`PercentilePruner` at the
 * 50th percentile, optuna/pruners/_percentile.py), not Ray's MedianStoppingRule (which
 * compares against the median of the other trials' running averages):
 *
 * - A running trial is judged at its latest iteration i, when i >= min_iter and i is one of
 *   min_iter, min_iter + interval, min_iter + 2 * interval, ... (optuna's n_warmup_steps is
 *   min_iter - 1 here, its steps being 0-based, and its interval_steps is `interval`).
 * - It stops when its best value so far is strictly worse than the median of the other
 *   trials' values at iteration i, once at least `min_trials` other trials have one (optuna's
 *   n_min_trials). The median of an even count is the mean of the middle two (numpy's
 *   percentile, as optuna computes it).
 * - Unlike optuna, which takes only completed trials, every other trial that has reached
 *   iteration i counts, whatever its status (as W&B's hyperband takes every run): trials of a
 *   sweep run side by side, and waiting for `min_trials` of them to finish would let the whole
 *   first wave run to the end.
 */
import type { EarlyTerminate } from '../schema.ts';
import { finiteValues, judged, showValue, worseWord, type StopDecision, type StoppingRule } from './rule.ts';

export type MedianConfig = Extract<EarlyTerminate, { type: 'median' }>;

/** The median, the mean of the middle two for an even count; NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export const medianStopRuns: StoppingRule<MedianConfig> = (config, metric, trials, only) => {
  const histories = trials.map((t) => finiteValues(t.values));
  const maximize = metric.goal === 'maximize';
  const decisions: StopDecision[] = [];
  trials.forEach((trial, i) => {
    if (!judged(trial, only)) return;
    const h = histories[i];
    const at = h.length;
    if (at < config.min_iter || (at - config.min_iter) % config.interval !== 0) return;
    const others = histories.filter((o, j) => j !== i && o.length >= at).map((o) => o[at - 1]);
    if (others.length < config.min_trials) return;
    const mid = median(others);
    const best = maximize ? Math.max(...h) : Math.min(...h);
    if (maximize ? best < mid : best > mid) {
      decisions.push({
        trialId: trial.trialId,
        iteration: at,
        reason:
          `median rule at iteration ${at}: best ${metric.name} ${showValue(best)} ${worseWord(metric.goal)} ` +
          `median ${showValue(mid)} of ${others.length} other trials`,
      });
    }
  });
  return decisions;
};
