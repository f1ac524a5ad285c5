/**
 * The ensemble builder against a real Postgres: finished trials with stored (synthetic)
 * predictions, ranked, combined, stored; refusals for missing and mismatched predictions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/infra/db.ts';
import { buildEnsemble, BUILD_DEFAULTS } from '../../src/ensemble/build.ts';
import { rankCandidates } from '../../src/ensemble/members.ts';
import { datasetHash } from '../../src/track/codec.ts';
import { savePredictions, type PredictionSet } from '../../src/track/predictions.ts';
import { UserError } from '../../src/util/errors.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';
import { setTrial, storeSweep, type StoredSweep } from '../cli/view-fixtures.ts';

const CHARSET = '0123456789abcdefghijklmnopqrstuvwxyz';
const L = 6;
const C = 36;

let pgdb: TestDatabase;
let db: Database;

beforeAll(async () => {
  pgdb = await createTestDatabase();
  db = await openDatabase({ env: { DATABASE_URL: pgdb.url }, migrate: true });
});
afterAll(async () => {
  await db?.close();
  await pgdb?.drop();
});

/** n labels and a member's predictions that get the characters at `wrong` positions wrong. */
function labels(n: number, seed: number): string[] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: L }, (_, p) => CHARSET[(i * 7 + p * 5 + seed) % C]).join(''));
}

function predictions(split: 'val' | 'test', labs: string[], wrong: (item: number, pos: number) => boolean, files?: string[]): PredictionSet {
  const n = labs.length;
  const probs = new Float32Array(n * L * C).fill(0.1 / (C - 1));
  labs.forEach((label, i) => {
    for (let p = 0; p < L; p++) {
      const truth = CHARSET.indexOf(label[p]);
      const c = wrong(i, p) ? (truth + 1) % C : truth;
      probs[(i * L + p) * C + c] = 0.9;
    }
  });
  const names = files ?? labs.map((_, i) => `${i}.png`);
  return { split, datasetId: datasetHash(names, labs), files: names, labels: labs, length: L, classes: C, probs };
}

async function finish(s: StoredSweep, index: number, metric: number, finishedAt: Date, sets: PredictionSet[]): Promise<void> {
  await setTrial(db.prisma, s.ids[index], { status: 'finished', bestMetric: metric, finishedAt, summary: { val_seq_acc: metric, val_char_acc: metric } });
  await savePredictions(db.prisma, s.ids[index], sets);
}

describe('rankCandidates', () => {
  it('ranks by metric, then earlier finish, then index; missing metrics last', () => {
    const t = (id: string, index: number, metric: number | null, at: number) => ({ id, index, params: {}, metric, finishedAt: new Date(at) });
    const ranked = rankCandidates([t('a', 0, 0.5, 3), t('b', 1, 0.7, 5), t('c', 2, 0.7, 4), t('d', 3, null, 1), t('e', 4, 0.7, 4)], 'maximize');
    expect(ranked.map((r) => r.id)).toEqual(['c', 'e', 'b', 'a', 'd']);
    expect(rankCandidates([t('a', 0, 2, 1), t('b', 1, 1, 1)], 'minimize').map((r) => r.id)).toEqual(['b', 'a']);
  });
});

describe('buildEnsemble', () => {
  it('votes the top k, measures members and the ensemble, and stores it under one name', async () => {
    const s = await storeSweep(db.prisma, 'ens-vote', [0.1, 0.2, 0.3, 0.4]);
    const val = labels(40, 1);
    const test = labels(60, 2);
    // Three members each wrong on a different third of the items: a majority is always right.
    const wrongThird = (k: number) => (i: number, p: number) => i % 3 === k && p === 2;
    for (let k = 0; k < 3; k++) await finish(s, k, 0.9 - k * 0.01, new Date(1000 + k), [predictions('val', val, wrongThird(k)), predictions('test', test, wrongThird(k))]);
    // A fourth, worst by metric, left out at k = 3.
    await finish(s, 3, 0.1, new Date(999), [predictions('val', val, () => true), predictions('test', test, () => true)]);

    const e = await buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-vote', topK: 3 });
    expect(e.name).toBe('vote-top3');
    expect(e.members.map((m) => m.trialId)).toEqual(s.ids.slice(0, 3));
    expect(e.members.every((m) => m.weight === 1)).toBe(true);
    expect(e.ensemble.test!.seq_acc).toBe(1);
    expect(e.members[0].test!.seq_acc).toBeCloseTo(40 / 60, 10);
    expect(e.gain.test!.seq_acc).toBeCloseTo(20 / 60, 10);
    expect(e.gain.test!.seq_lo).toBeGreaterThan(0);
    expect(e.optimistic).toBe(false);

    await buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-vote', topK: 2 , name: 'vote-top3' });
    const rows = await db.prisma.ensemble.findMany({ where: { sweepId: s.id }, include: { members: true } });
    expect(rows).toHaveLength(1);
    expect(rows[0].members).toHaveLength(2);
    expect(rows[0].k).toBe(2);
  });

  it('greedy selection picks complementary members with integer weights from the pool', async () => {
    const s = await storeSweep(db.prisma, 'ens-greedy', [0.1, 0.2, 0.3]);
    const val = labels(30, 3);
    const same = (i: number, p: number) => i % 3 === 0 && p === 0;
    await finish(s, 0, 0.9, new Date(1), [predictions('val', val, same)]);
    await finish(s, 1, 0.8, new Date(2), [predictions('val', val, same)]);
    await finish(s, 2, 0.7, new Date(3), [predictions('val', val, (i, p) => i % 3 === 1 && p === 0)]);
    const e = await buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-greedy', method: 'greedy', pool: 3, rounds: 5 });
    expect(e.pool).toBe(3);
    expect(e.members.reduce((a, m) => a + m.weight, 0)).toBe(5);
    expect(e.members.every((m) => Number.isInteger(m.weight))).toBe(true);
    // No test set: the validation numbers were selected on.
    expect(e.optimistic).toBe(true);
    expect(e.ensemble.test).toBeNull();
  });

  it('refuses predictions made on different examples, naming the trials', async () => {
    const s = await storeSweep(db.prisma, 'ens-mismatch', [0.1, 0.2]);
    const val = labels(10, 4);
    await finish(s, 0, 0.9, new Date(1), [predictions('val', val, () => false)]);
    await finish(s, 1, 0.8, new Date(2), [predictions('val', [...val].reverse(), () => false)]);
    const err = await buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-mismatch', topK: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/#0 \w+ and #1 \w+ cannot be combined/);
    expect((err as Error).message).toMatch(/same examples in the same order/);
  });

  it('refuses a test set that only some members have', async () => {
    const s = await storeSweep(db.prisma, 'ens-partial', [0.1, 0.2]);
    const val = labels(10, 5);
    await finish(s, 0, 0.9, new Date(1), [predictions('val', val, () => false), predictions('test', val, () => false)]);
    await finish(s, 1, 0.8, new Date(2), [predictions('val', val, () => false)]);
    await expect(buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-partial', topK: 2 })).rejects.toThrow(/1 of the chosen trials have no stored test predictions: #1/);
  });

  it('names trials without stored predictions and the backfill command', async () => {
    const s = await storeSweep(db.prisma, 'ens-missing', [0.1]);
    await setTrial(db.prisma, s.ids[0], { status: 'finished', bestMetric: 0.5, finishedAt: new Date() });
    await expect(buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-missing' })).rejects.toThrow(/sweep ensemble backfill ens-missing/);
  });

  it('refuses bad options and a sweep without finished trials', async () => {
    await storeSweep(db.prisma, 'ens-empty', [0.1]);
    await expect(buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-empty' })).rejects.toThrow(/no finished trial yet/);
    await expect(buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-empty', topK: 0 })).rejects.toThrow(/--top-k: expected an integer >= 1/);
    await expect(buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'ens-empty', metric: 'accuracy' })).rejects.toThrow(/--metric: expected one of/);
    await expect(buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'nope' })).rejects.toThrow(/no sweep named "nope"/);
  });
});
