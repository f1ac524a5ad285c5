import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/infra/db.ts';
import type { TrialHistoryStatus } from '../../src/sweep/early-stop.ts';
import { EARLY_TERMINATE } from '../../src/sweep/schema.ts';
import { earlyStopCheck, sweepHistories } from '../../src/track/histories.ts';
import type { SweepMetric } from '../../src/track/metrics.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';

const ACC: SweepMetric = { name: 'val_seq_acc', goal: 'maximize' };

describe('sweep histories (Postgres)', () => {
  let tdb: TestDatabase;
  let db: Database;

  async function sweep(id: string): Promise<void> {
    await db.prisma.sweep.create({ data: { id, name: id, method: 'grid', spec: {}, metricName: ACC.name, metricGoal: ACC.goal } });
  }

  /** A trial with its val_seq_acc per (phase, epoch), plus a loss point for every epoch. */
  async function trial(
    sweepId: string,
    id: string,
    index: number,
    status: TrialHistoryStatus,
    points: Array<[phase: string, epoch: number, value: number | null]>,
  ): Promise<void> {
    await db.prisma.trial.create({ data: { id, sweepId, index, params: {}, seed: 0, status } });
    const rows = points.flatMap(([phase, epoch, value]) => [
      { trialId: id, phase, epoch, key: 'loss', value: 20 - epoch },
      ...(value === null ? [] : [{ trialId: id, phase, epoch, key: ACC.name, value }]),
    ]);
    if (rows.length > 0) await db.prisma.metricPoint.createMany({ data: rows });
  }

  beforeAll(async () => {
    tdb = await createTestDatabase();
    db = await openDatabase({ env: { DATABASE_URL: tdb.url }, migrate: true });
  });
  afterAll(async () => {
    await db?.close();
    await tdb?.drop();
  });

  it('orders each trial by phase (pretrain, then gru) and epoch, whatever order the rows were written in', async () => {
    await sweep('order');
    // Written gru first, epochs out of order, with epoch numbers that would interleave if the
    // phases were ignored.
    await trial('order', 'b', 1, 'running', [
      ['gru', 1, 0.6],
      ['gru', 0, 0.5],
      ['pretrain', 2, 0.3],
      ['pretrain', 0, 0.1],
      ['pretrain', 1, 0.2],
    ]);
    await trial('order', 'a', 0, 'finished', [
      ['pretrain', 0, 0.05],
      ['gru', 0, 0.15],
    ]);
    expect(await sweepHistories(db.prisma, 'order', ACC.name)).toEqual([
      { trialId: 'a', status: 'finished', values: [0.05, 0.15] },
      { trialId: 'b', status: 'running', values: [0.1, 0.2, 0.3, 0.5, 0.6] },
    ]);
    // Another key reads its own values.
    expect((await sweepHistories(db.prisma, 'order', 'loss'))[1].values).toEqual([20, 19, 18, 20, 19]);
  });

  it('a trial without the metric, or without any point, has an empty history; a missing epoch is skipped', async () => {
    await sweep('missing');
    await trial('missing', 'no-metric', 0, 'failed', [
      ['pretrain', 0, null],
      ['pretrain', 1, null],
    ]);
    await trial('missing', 'queued', 1, 'queued', []);
    await trial('missing', 'gap', 2, 'running', [
      ['pretrain', 0, 0.1],
      ['pretrain', 1, null],
      ['gru', 0, 0.4],
    ]);
    expect(await sweepHistories(db.prisma, 'missing', ACC.name)).toEqual([
      { trialId: 'no-metric', status: 'failed', values: [] },
      { trialId: 'queued', status: 'queued', values: [] },
      { trialId: 'gap', status: 'running', values: [0.1, 0.4] },
    ]);
    // Trials of other sweeps stay out; an unknown sweep has none.
    expect(await sweepHistories(db.prisma, 'no-such-sweep', ACC.name)).toEqual([]);
  });

  it('values Postgres can hold but that are not measurements (NaN, infinities) are skipped', async () => {
    await sweep('nan');
    await trial('nan', 'x', 0, 'running', [
      ['pretrain', 0, 0.1],
      ['pretrain', 1, NaN],
      ['pretrain', 2, Infinity],
      ['gru', 0, 0.2],
    ]);
    expect(await sweepHistories(db.prisma, 'nan', ACC.name)).toEqual([{ trialId: 'x', status: 'running', values: [0.1, 0.2] }]);
  });

  describe('earlyStopCheck', () => {
    // max_iter 5, eta 2, s 2 -> bands [1, 2]. At iteration 2 (pretrain epoch 1): done 0.5,
    // good 0.4, bad 0.1 -> best first [0.5, 0.4, 0.1][trunc(3/2) = 1] = 0.4: bad stops.
    const config = EARLY_TERMINATE.hyperband.parse({ type: 'hyperband', max_iter: 5, eta: 2, s: 2 });

    beforeAll(async () => {
      await sweep('check');
      await trial('check', 'done', 0, 'finished', [
        ['pretrain', 0, 0.2],
        ['pretrain', 1, 0.5],
        ['gru', 0, 0.7],
      ]);
      await trial('check', 'good', 1, 'running', [
        ['pretrain', 0, 0.2],
        ['pretrain', 1, 0.4],
      ]);
      await trial('check', 'bad', 2, 'running', [
        ['pretrain', 0, 0.2],
        ['pretrain', 1, 0.1],
      ]);
    });

    it('returns the decision for a running trial the rule stops', async () => {
      expect(await earlyStopCheck(db.prisma, { sweepId: 'check', trialId: 'bad', config, metric: ACC })).toEqual({
        trialId: 'bad',
        iteration: 2,
        reason: 'hyperband band 2: val_seq_acc 0.1 below threshold 0.4 (eta 2)',
      });
    });

    it('null for a trial that goes on, one that is not running, and a sweep without early_terminate', async () => {
      expect(await earlyStopCheck(db.prisma, { sweepId: 'check', trialId: 'good', config, metric: ACC })).toBeNull();
      expect(await earlyStopCheck(db.prisma, { sweepId: 'check', trialId: 'done', config, metric: ACC })).toBeNull();
      expect(await earlyStopCheck(db.prisma, { sweepId: 'check', trialId: 'bad', config: undefined, metric: ACC })).toBeNull();
      // The metric's goal decides the direction: minimized, bad's 0.1 is the best value at band 2.
      const low: SweepMetric = { name: ACC.name, goal: 'minimize' };
      expect(await earlyStopCheck(db.prisma, { sweepId: 'check', trialId: 'bad', config, metric: low })).toBeNull();
    });

    it('the median rule through the same read', async () => {
      // At iteration 2 the others of bad have 0.5 and 0.4: median 0.45 > 0.2 (bad's best).
      const median = EARLY_TERMINATE.median.parse({ type: 'median', min_trials: 2 });
      expect(await earlyStopCheck(db.prisma, { sweepId: 'check', trialId: 'bad', config: median, metric: ACC })).toEqual({
        trialId: 'bad',
        iteration: 2,
        reason: 'median rule at iteration 2: best val_seq_acc 0.2 below median 0.45 of 2 other trials',
      });
    });
  });
});
