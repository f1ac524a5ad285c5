/**
 * Early termination: which running trials to stop, as a pure function of (stopping rule, sweep
 * metric, every trial's metric history so far), like `stop_runs` in wandb/sweeps
 * (src/sweeps/run.py). It keeps no state: the worker asks after each stored epoch
 * (src/track/histories.ts reads the histories), so a decision depends only on what the
 * database holds, whichever worker asks.
 *
 * One file per rule under early-stop/, each a single function of the `StoppingRule` shape (as
 * optuna's pruners are one class with one method).
 *
 * Iterations are counted from 1: iteration i of a trial is `values[i - 1]`. Only finite values
 * count, in order (W&B's `metric_history(filter_invalid=True)`): a value that is missing or not
 * finite is skipped, and the later ones move down a place.
 */
import type { EarlyTerminate } from './schema.ts';
import type { SweepMetric } from './schema.ts';
import { hyperbandStopRuns } from './early-stop/hyperband.ts';
import { medianStopRuns } from './early-stop/median.ts';
import type { StopDecision, TrialHistory } from './early-stop/rule.ts';

export type { StopDecision, StoppingRule, TrialHistory, TrialHistoryStatus } from './early-stop/rule.ts';

/**
 * The trials to stop now under `config`. Only running trials are ever stopped; every trial is
 * evidence. With `only`, just that trial is judged (the worker asks about its own).
 */
export function stopRuns(config: EarlyTerminate, metric: SweepMetric, trials: readonly TrialHistory[], only?: string): StopDecision[] {
  switch (config.type) {
    case 'hyperband':
      return hyperbandStopRuns(config, metric, trials, only);
    case 'median':
      return medianStopRuns(config, metric, trials, only);
  }
}
