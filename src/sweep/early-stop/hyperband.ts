/**
 * Hyperband early termination as W&B runs it: `hyperband_stop_runs` in wandb/sweeps
 * (src/sweeps/hyperband_stopping.py, the version with `strict`, default true since W&B made
 * strict the default). Mirrored step by step:
 *
 * - Bands (the iterations at which trials are judged): with `max_iter` and `s`, max_iter/eta,
 *   max_iter/eta^2, ... (s of them, stopping before one falls below 1), each truncated to an
 *   integer, ascending; with `min_iter`, min_iter * eta^k truncated, for k = 0..99.
 * - Threshold of band b: the values at iteration b (`h[b - 1]`) of every trial that has
 *   reached it, whatever its status, the trial being judged included; sorted best first, the
 *   one at index trunc(n / eta). A trial at most that bad passes, so about the best 1/eta of
 *   the trials go on.
 * - A running trial is judged at the last band it has reached. `strict`: its value at that
 *   band must not be worse than the threshold. Not strict: its best value so far must not be
 *   (so a trial that was behind at the band but has caught up since goes on).
 * - Worse means strictly worse: a trial equal to the threshold goes on.
 *
 * W&B negates the values of a maximized metric and then always minimizes; so does this code,
 * and it shows the values un-negated in the reasons.
 */
import type { EarlyTerminate } from '../schema.ts';
import type { SweepMetric } from '../schema.ts';
import { finiteValues, judged, showValue, worseWord, type StopDecision, type StoppingRule, type TrialHistory } from './rule.ts';

export type HyperbandConfig = Extract<EarlyTerminate, { type: 'hyperband' }>;

/** How many bands the min_iter form has (W&B's `range(100)`). */
const MIN_ITER_BANDS = 100;

/**
 * The iterations at which trials are judged, ascending. `max_iter` with `s` takes precedence
 * over `min_iter`, as in W&B (which fails on `max_iter` without `s`; this falls back to
 * `min_iter` then).
 */
export function hyperbandBands(config: HyperbandConfig): number[] {
  const { eta } = config;
  const bands: number[] = [];
  if (config.max_iter !== undefined && config.s !== undefined) {
    let band = config.max_iter;
    for (let i = 0; i < config.s; i++) {
      band /= eta;
      if (band < 1) break;
      bands.push(Math.trunc(band));
    }
    return bands.sort((a, b) => a - b);
  }
  if (config.min_iter !== undefined) {
    // Repeated multiplication, not eta ** k, so the truncated bands equal W&B's exactly.
    let band = config.min_iter;
    for (let i = 0; i < MIN_ITER_BANDS; i++) {
      bands.push(Math.trunc(band));
      band *= eta;
    }
    return bands;
  }
  throw new Error(`hyperband needs min_iter, or max_iter with s (got ${JSON.stringify(config)})`);
}

/**
 * Each band's threshold over `histories` (lower is better: maximized values already negated):
 * the value at index trunc(n / eta) of the n values at that iteration, sorted; Infinity where
 * no trial has reached the band.
 */
export function hyperbandThresholds(bands: readonly number[], eta: number, histories: readonly (readonly number[])[]): number[] {
  const r = 1 / eta;
  return bands.map((band) => {
    const atBand = histories.filter((h) => h.length >= band).map((h) => h[band - 1]);
    if (atBand.length === 0) return Infinity;
    atBand.sort((a, b) => a - b);
    // r * n, then truncation, as W&B computes int(r * len(values)).
    return atBand[Math.trunc(r * atBand.length)];
  });
}

export const hyperbandStopRuns: StoppingRule<HyperbandConfig> = (config, metric, trials, only) => {
  const sign = metric.goal === 'maximize' ? -1 : 1;
  // Lower is better from here on; `sign` turns a value back for the reasons.
  const histories = trials.map((t) => finiteValues(t.values).map((v) => sign * v));
  // A band no trial has reached is no trial's last band: leave it out (its threshold would be
  // Infinity and never used), which spares the min_iter form's 100 bands.
  const longest = Math.max(0, ...histories.map((h) => h.length));
  const bands = hyperbandBands(config).filter((b) => b <= longest);
  if (bands.length === 0) return [];
  const thresholds = hyperbandThresholds(
    bands,
    config.eta,
    histories.filter((h) => h.length > 0),
  );

  const decisions: StopDecision[] = [];
  trials.forEach((trial, i) => {
    if (!judged(trial, only)) return;
    const h = histories[i];
    let band = -1;
    let threshold = 0;
    for (let k = 0; k < bands.length && bands[k] <= h.length; k++) {
      band = bands[k];
      threshold = thresholds[k];
    }
    if (band === -1) return; // no band reached yet
    const value = config.strict ? h[band - 1] : Math.min(...h);
    if (value > threshold) decisions.push(decision(trial, h.length, band, sign * value, sign * threshold, config, metric));
  });
  return decisions;
};

function decision(
  trial: TrialHistory,
  iteration: number,
  band: number,
  value: number,
  threshold: number,
  config: HyperbandConfig,
  metric: SweepMetric,
): StopDecision {
  const what = config.strict ? metric.name : `best ${metric.name}`;
  const how = config.strict ? `eta ${config.eta}` : `eta ${config.eta}, not strict`;
  return {
    trialId: trial.trialId,
    iteration,
    reason: `hyperband band ${band}: ${what} ${showValue(value)} ${worseWord(metric.goal)} threshold ${showValue(threshold)} (${how})`,
  };
}
