/**
 * Early termination as tables of metric histories. The hyperband expectations are worked out
 * by hand from wandb/sweeps' hyperband_stop_runs (src/sweeps/hyperband_stopping.py, the
 * version with `strict`): bands, the threshold of each band (index trunc(n/eta) of the values
 * at that iteration, sorted best first, the judged trial included), then each running trial
 * against the last band it reached.
 */
import { describe, expect, it } from 'vitest';
import { stopRuns, type StopDecision, type TrialHistory } from '../../src/sweep/early-stop.ts';
import { hyperbandBands, hyperbandThresholds } from '../../src/sweep/early-stop/hyperband.ts';
import { median } from '../../src/sweep/early-stop/median.ts';
import { EARLY_TERMINATE } from '../../src/sweep/schema.ts';
import type { SweepMetric } from '../../src/track/metrics.ts';

const hyperband = (c: Record<string, unknown>) => EARLY_TERMINATE.hyperband.parse({ type: 'hyperband', ...c });
const medianRule = (c: Record<string, unknown>) => EARLY_TERMINATE.median.parse({ type: 'median', ...c });

const LOSS: SweepMetric = { name: 'loss', goal: 'minimize' };
const ACC: SweepMetric = { name: 'val_seq_acc', goal: 'maximize' };

const trial = (trialId: string, status: TrialHistory['status'], values: number[]): TrialHistory => ({ trialId, status, values });
const ids = (ds: StopDecision[]) => ds.map((d) => d.trialId);

describe('hyperband bands', () => {
  it('defaults: eta 3, strict', () => {
    expect(hyperband({ min_iter: 3 })).toMatchObject({ eta: 3, strict: true });
  });

  it.each([
    // max_iter / eta^k for k = 1..s, truncated, ascending
    [{ max_iter: 5, eta: 2, s: 2 }, [1, 2]], // 2.5 -> 2, 1.25 -> 1
    [{ max_iter: 9, eta: 3, s: 2 }, [1, 3]],
    [{ max_iter: 18, eta: 3, s: 2 }, [2, 6]], // W&B's test_init_from_max_iter
    [{ max_iter: 81, eta: 3, s: 3 }, [3, 9, 27]], // W&B's test_hyperband_max_iter_bands
    [{ max_iter: 10, eta: 3, s: 5 }, [1, 3]], // 3.33, 1.11, then 0.37 < 1 ends it
    [{ max_iter: 300, eta: 3, s: 2 }, [33, 100]],
  ])('max_iter form %j -> %j', (c, bands) => {
    expect(hyperbandBands(hyperband(c))).toEqual(bands);
  });

  it.each([
    [{ min_iter: 3, eta: 3 }, [3, 9, 27, 81]], // W&B's test_hyperband_min_iter_bands
    [{ min_iter: 2, eta: 2 }, [2, 4, 8, 16]],
    [{ min_iter: 30, eta: 1.5 }, [30, 45, 67, 101]], // 67.5 -> 67, 101.25 -> 101 (W&B's hyper_data tests)
    [{ min_iter: 1, eta: 1.5 }, [1, 1, 2, 3]], // truncation repeats a band, as in W&B
  ])('min_iter form %j starts %j (100 bands)', (c, first) => {
    const bands = hyperbandBands(hyperband(c));
    expect(bands.slice(0, first.length)).toEqual(first);
    expect(bands).toHaveLength(100);
  });

  it('max_iter with s takes precedence over min_iter, as in W&B', () => {
    expect(hyperbandBands(hyperband({ min_iter: 1, max_iter: 18, s: 2 }))).toEqual([2, 6]);
    // W&B fails on max_iter without s; here min_iter applies.
    expect(hyperbandBands(hyperband({ min_iter: 2, max_iter: 18, eta: 2 })).slice(0, 3)).toEqual([2, 4, 8]);
  });

  it('thresholds: index trunc(n/eta) of the values at the band, sorted; Infinity where no trial reached it', () => {
    const h = [[10, 9], [10, 10], [10, 8, 8], [10, 7, 7], [10, 6, 6]];
    // band 1: [10,10,10,10,10][trunc(5/2)=2] = 10; band 2: [6,7,8,9,10][2] = 8; band 4: none
    expect(hyperbandThresholds([1, 2, 4], 2, h)).toEqual([10, 8, Infinity]);
    // eta 3, three values at band 3: [6,7,8][trunc((1/3)*3) = 1] = 7
    expect(hyperbandThresholds([3], 3, [[0, 0, 8], [0, 0, 7], [0, 0, 6], [0]])).toEqual([7]);
  });
});

describe('hyperband stopping', () => {
  it("W&B's docstring example: max_iter 5, eta 2, s 2, minimize", () => {
    // bands [1, 2]; thresholds: band 1 -> 10, band 2 -> sorted [6,7,8,9,10][2] = 8
    //   b (running, 2 iters): band 2, value 10 > 8 -> stop
    //   c (running, 3 iters): band 2 (the last band), value 8 = 8 -> goes on. The docstring's
    //     comment "passes band 1 but not band 2" dates from W&B's 0-based band indexing.
    //   d: 7 -> goes on. a and e have ended: evidence only.
    const trials = [
      trial('a', 'finished', [10, 9]),
      trial('b', 'running', [10, 10]),
      trial('c', 'running', [10, 8, 8]),
      trial('d', 'running', [10, 7, 7]),
      trial('e', 'finished', [10, 6, 6]),
    ];
    const strict = stopRuns(hyperband({ max_iter: 5, eta: 2, s: 2 }), LOSS, trials);
    expect(strict).toEqual([{ trialId: 'b', iteration: 2, reason: 'hyperband band 2: loss 10 above threshold 8 (eta 2)' }]);
    // Not strict: best so far, b 10 > 8 stops; c's best 8 and d's 7 do not.
    const relaxed = stopRuns(hyperband({ max_iter: 5, eta: 2, s: 2, strict: false }), LOSS, trials);
    expect(relaxed).toEqual([{ trialId: 'b', iteration: 2, reason: 'hyperband band 2: best loss 10 above threshold 8 (eta 2, not strict)' }]);
  });

  // W&B's test_eta_3: max_iter 9, eta 3, s 2 -> bands [1, 3]
  //   band 1: five values, all 10: [10 x5][trunc(5/3) = 1] = 10
  //   band 3: c 8, d 7, e 6 (a and b have 2 iterations): [6,7,8][1] = 7
  const eta3 = [
    trial('a', 'finished', [10, 9]),
    trial('b', 'running', [10, 10]), // band 1: 10 = 10 -> goes on
    trial('c', 'running', [10, 8, 8, 3]), // band 3: 8 > 7; best 3 < 7
    trial('d', 'running', [10, 7, 7, 4]), // band 3: 7 = 7 -> goes on
    trial('e', 'running', [10, 6, 6, 6]), // band 3: 6 < 7 -> goes on
  ];

  it('eta 3, max_iter form: strict judges the value at the band, not strict the best so far', () => {
    const config = { max_iter: 9, eta: 3, s: 2 };
    expect(stopRuns(hyperband(config), LOSS, eta3)).toEqual([
      { trialId: 'c', iteration: 4, reason: 'hyperband band 3: loss 8 above threshold 7 (eta 3)' },
    ]);
    // c was behind at iteration 3 but its best so far (3) is ahead: not strict lets it go on.
    expect(stopRuns(hyperband({ ...config, strict: false }), LOSS, eta3)).toEqual([]);
  });

  it('maximize: the same table as accuracies (acc = (10 - loss) / 10) stops the same trial', () => {
    const acc = eta3.map((t) => ({ ...t, values: t.values.map((v) => (10 - v) / 10) }));
    // band 3 values 0.2, 0.3, 0.4 -> best first [0.4, 0.3, 0.2][1] = 0.3; c has 0.2 < 0.3
    expect(stopRuns(hyperband({ max_iter: 9, eta: 3, s: 2 }), ACC, acc)).toEqual([
      { trialId: 'c', iteration: 4, reason: 'hyperband band 3: val_seq_acc 0.2 below threshold 0.3 (eta 3)' },
    ]);
  });

  it("eta 3, min_iter form: W&B's test_hyperband_min_iter_bands", () => {
    // bands 3, 9, 27, ...; band 3: run1 10, run2 8 -> [8, 10][trunc(2/3) = 0] = 8
    // band 9: only run2 (2) -> 2. run1 (4 iters): band 3, 10 > 8 -> stop.
    // run2 (10 iters): band 9, 2 = 2 -> goes on.
    const trials = [trial('run1', 'running', [10, 10, 10, 10]), trial('run2', 'running', [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])];
    expect(stopRuns(hyperband({ min_iter: 3, eta: 3 }), LOSS, trials)).toEqual([
      { trialId: 'run1', iteration: 4, reason: 'hyperband band 3: loss 10 above threshold 8 (eta 3)' },
    ]);
    // Maximized (W&B's test_hyperband_min_iter_bands_max): 10 + i against a flat 10.
    const up = [trial('run1', 'running', [10, 10, 10, 10]), trial('run2', 'running', [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])];
    expect(ids(stopRuns(hyperband({ min_iter: 3, eta: 3 }), ACC, up))).toEqual(['run1']);
  });

  // eta 2, min_iter 2 -> bands 2, 4, 8, ...; maximize
  //   band 2 (value at iteration 2 of the six trials with 2+): f1 0.5, f2 0.4, r1 0.2, r2 0.15,
  //     r4 0.3, s1 0.1 -> best first [0.5, 0.4, 0.3, 0.2, 0.15, 0.1][trunc(6/2) = 3] = 0.2
  //   band 4: f1 0.7, r1 0.5, r4 0.4 -> [0.7, 0.5, 0.4][trunc(3/2) = 1] = 0.5
  const eta2 = [
    trial('f1', 'finished', [0.1, 0.5, 0.6, 0.7, 0.8]),
    trial('f2', 'failed', [0.1, 0.4, 0.5]),
    trial('r1', 'running', [0.1, 0.2, 0.45, 0.5]), // band 4: 0.5 = 0.5 -> goes on
    trial('r2', 'running', [0.3, 0.15]), // band 2: 0.15 < 0.2; best 0.3
    trial('r3', 'running', [0.05]), // no band reached yet
    trial('r4', 'running', [0.2, 0.3, 0.35, 0.4]), // band 4: 0.4 < 0.5, best 0.4 too
    trial('s1', 'stopped', [0.1, 0.1]), // worst of all, but already ended
    trial('q1', 'queued', []),
  ];

  it('eta 2, min_iter form, maximize: ended trials are evidence and never stopped', () => {
    expect(stopRuns(hyperband({ min_iter: 2, eta: 2 }), ACC, eta2)).toEqual([
      { trialId: 'r2', iteration: 2, reason: 'hyperband band 2: val_seq_acc 0.15 below threshold 0.2 (eta 2)' },
      { trialId: 'r4', iteration: 4, reason: 'hyperband band 4: val_seq_acc 0.4 below threshold 0.5 (eta 2)' },
    ]);
    expect(stopRuns(hyperband({ min_iter: 2, eta: 2, strict: false }), ACC, eta2)).toEqual([
      { trialId: 'r4', iteration: 4, reason: 'hyperband band 4: best val_seq_acc 0.4 below threshold 0.5 (eta 2, not strict)' },
    ]);
  });

  it('only: judges one trial, with every trial still evidence', () => {
    const config = hyperband({ min_iter: 2, eta: 2 });
    expect(ids(stopRuns(config, ACC, eta2, 'r4'))).toEqual(['r4']);
    expect(stopRuns(config, ACC, eta2, 'r1')).toEqual([]);
    expect(stopRuns(config, ACC, eta2, 's1')).toEqual([]); // not running
    expect(stopRuns(config, ACC, eta2, 'nobody')).toEqual([]);
    const median = medianRule({ min_trials: 3 });
    // At iteration 2 r2's others: 0.5, 0.4, 0.2, 0.3, 0.1 -> median 0.3 = its best 0.3: goes on.
    // r3 at 1: 0.1 x4, 0.3, 0.2 -> median 0.1 > 0.05: stops. r4 at 4: only 2 others (f1, r1).
    expect(stopRuns(median, ACC, eta2, 'r2')).toEqual([]);
    expect(ids(stopRuns(median, ACC, eta2))).toEqual(['r3']);
    expect(ids(stopRuns(median, ACC, eta2, 'r3'))).toEqual(['r3']);
  });

  it('the same histories with no trial running stop nothing', () => {
    for (const status of ['finished', 'failed', 'diverged', 'stopped', 'cancelled', 'queued'] as const) {
      const ended = eta2.map((t) => ({ ...t, status }));
      expect(stopRuns(hyperband({ min_iter: 2, eta: 2 }), ACC, ended)).toEqual([]);
    }
  });

  it('a trial alone is never stopped (its own value is the threshold)', () => {
    // W&B's test_single_run
    const one = [trial('a', 'running', [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])];
    expect(stopRuns(hyperband({ max_iter: 18, eta: 3, s: 2 }), LOSS, one)).toEqual([]);
    expect(stopRuns(hyperband({ min_iter: 1, eta: 2 }), ACC, [trial('a', 'running', [0, 0, 0, 0])])).toEqual([]);
  });

  it('two trials, eta 3: the better one passes band 2', () => {
    // The histories of W&B's test_2runs_band1_pass: bands [2, 6]; band 2: [9, 10][trunc(2/3) = 0]
    // = 9; band 6: only b (5). a (3 iters): band 2, 10 > 9 -> stop; b: 5 = 5 goes on. (That
    // test expects no stop: it predates strict, and is the non-strict result below.)
    const trials = [trial('a', 'running', [10, 10, 6]), trial('b', 'running', [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])];
    expect(ids(stopRuns(hyperband({ max_iter: 18, eta: 3, s: 2 }), LOSS, trials))).toEqual(['a']);
    // Not strict: a's best so far is 6 < 9, so it goes on.
    expect(ids(stopRuns(hyperband({ max_iter: 18, eta: 3, s: 2, strict: false }), LOSS, trials))).toEqual([]);
  });

  it('values that are not finite are skipped and the later ones move down', () => {
    // max_iter 5, eta 2, s 2 -> bands [1, 2]. a counts as [10, 12] (iteration 2 is its 12):
    // band 2: a 12, b 11, d 9 -> [9, 11, 12][trunc(3/2) = 1] = 11; a: 12 > 11 -> stop.
    const trials = [
      trial('a', 'running', [10, NaN, 12, Infinity]),
      trial('b', 'finished', [10, 11]),
      trial('d', 'finished', [10, 9]),
    ];
    expect(stopRuns(hyperband({ max_iter: 5, eta: 2, s: 2 }), LOSS, trials)).toEqual([
      { trialId: 'a', iteration: 2, reason: 'hyperband band 2: loss 12 above threshold 11 (eta 2)' },
    ]);
    // W&B's test_hyperband_runs_with_nan_metrics: one value then NaNs never reaches band 33.
    const nan = [trial('c', 'running', [19.7, ...Array(56).fill(NaN)]), trial('d', 'finished', [6.2, 6.0, 5.5])];
    expect(stopRuns(hyperband({ max_iter: 300, eta: 3, s: 2 }), LOSS, nan)).toEqual([]);
  });
});

describe('median stopping', () => {
  it('median: middle value, mean of the middle two for an even count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  // Maximize. At iteration 2 the others have 0.5, 0.4, 0.3 -> median 0.4.
  const others = [trial('o1', 'finished', [0.2, 0.5, 0.6]), trial('o2', 'running', [0.1, 0.4]), trial('o3', 'stopped', [0.1, 0.3])];

  it('stops a running trial whose best so far is worse than the median of the others at its iteration', () => {
    const trials = [...others, trial('t', 'running', [0.1, 0.35])];
    expect(stopRuns(medianRule({ min_trials: 3 }), ACC, trials)).toEqual([
      { trialId: 't', iteration: 2, reason: 'median rule at iteration 2: best val_seq_acc 0.35 below median 0.4 of 3 other trials' },
    ]);
  });

  it('the trial itself is not among the others', () => {
    // Others at iteration 2: 0.5, 0.3 -> median 0.4 > 0.35 -> stop. With itself included the
    // median would be 0.35 and it would go on.
    const trials = [others[0], others[2], trial('t', 'running', [0.1, 0.35])];
    expect(ids(stopRuns(medianRule({ min_trials: 2 }), ACC, trials))).toEqual(['t']);
  });

  it('not before min_trials others have reached the iteration', () => {
    const trials = [...others, trial('t', 'running', [0.1, 0.35])];
    expect(stopRuns(medianRule({ min_trials: 4 }), ACC, trials)).toEqual([]);
    // A fourth trial that has only one iteration does not count at iteration 2.
    expect(stopRuns(medianRule({ min_trials: 4 }), ACC, [...trials, trial('o4', 'running', [0.9])])).toEqual([]);
    // One that has two does: others 0.5, 0.4, 0.3, 0.45 -> median 0.425.
    expect(stopRuns(medianRule({ min_trials: 4 }), ACC, [...trials, trial('o4', 'running', [0.9, 0.45])])).toEqual([
      { trialId: 't', iteration: 2, reason: 'median rule at iteration 2: best val_seq_acc 0.35 below median 0.425 of 4 other trials' },
    ]);
  });

  it('the best value so far counts, not the latest; equal to the median goes on', () => {
    expect(stopRuns(medianRule({ min_trials: 3 }), ACC, [...others, trial('t', 'running', [0.45, 0.1])])).toEqual([]);
    expect(stopRuns(medianRule({ min_trials: 3 }), ACC, [...others, trial('t', 'running', [0.4, 0.1])])).toEqual([]);
  });

  it('not before min_iter', () => {
    // Iteration 1: others 0.2, 0.1, 0.1 -> median 0.1; t has 0.05.
    const trials = [...others, trial('t', 'running', [0.05])];
    expect(ids(stopRuns(medianRule({ min_trials: 3, min_iter: 1 }), ACC, trials))).toEqual(['t']);
    expect(stopRuns(medianRule({ min_trials: 3, min_iter: 2 }), ACC, trials)).toEqual([]);
  });

  it('only every interval iterations from min_iter', () => {
    // min_iter 2, interval 2: judged at iterations 2, 4, 6, ... Loss, others at 3 and 4:
    const loss = [trial('o1', 'finished', [5, 4, 3, 2]), trial('o2', 'finished', [5, 4, 3, 2]), trial('o3', 'running', [5, 4, 3, 2])];
    const config = medianRule({ min_trials: 3, min_iter: 2, interval: 2 });
    // Iteration 3 (best 4 > median 3): not a check.
    expect(stopRuns(config, LOSS, [...loss, trial('t', 'running', [5, 4, 4])])).toEqual([]);
    // Iteration 4 (best 4 > median 2): stopped.
    expect(stopRuns(config, LOSS, [...loss, trial('t', 'running', [5, 4, 4, 4])])).toEqual([
      { trialId: 't', iteration: 4, reason: 'median rule at iteration 4: best loss 4 above median 2 of 3 other trials' },
    ]);
    // Iteration 2 (best 4 = median 4): checked, goes on.
    expect(stopRuns(config, LOSS, [...loss, trial('t', 'running', [5, 4])])).toEqual([]);
    // Iteration 1 of interval 1 and min_iter 1 would have been judged: 5 = 5 goes on, 6 stops.
    expect(ids(stopRuns(medianRule({ min_trials: 3 }), LOSS, [...loss, trial('t', 'running', [6])]))).toEqual(['t']);
  });

  it('every running trial is judged; ended ones never stopped', () => {
    const trials = [
      trial('a', 'running', [0.9, 0.9]),
      trial('b', 'running', [0.1, 0.1]),
      trial('c', 'finished', [0.1, 0.1]),
      trial('d', 'running', [0.5, 0.5]),
      trial('e', 'diverged', [0.0]),
    ];
    // At 2: b sees 0.9, 0.1, 0.5 -> 0.5 > 0.1 stop; d sees 0.9, 0.1, 0.1 -> 0.1 < 0.5 goes on.
    expect(ids(stopRuns(medianRule({ min_trials: 3, min_iter: 2 }), ACC, trials))).toEqual(['b']);
  });
});
