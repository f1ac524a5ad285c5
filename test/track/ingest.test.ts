import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/infra/db.ts';
import { stopEmbedded } from '../../src/infra/embedded.ts';
import type { MetricRow } from '../../src/track/metrics.ts';
import { upsertMetrics, UPSERT_CHUNK } from '../../src/track/ingest.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';

const KEYS = ['loss', 'char_acc', 'seq_acc', 'val_loss', 'val_char_acc', 'val_seq_acc', 'images_per_s', 'seconds'];

/** `epochs` epochs of every key for one trial; value = f(epoch, key index). */
function epochs(trialId: string, phase: string, n: number, f: (epoch: number, k: number) => number, from = 0): MetricRow[] {
  const rows: MetricRow[] = [];
  for (let e = from; e < from + n; e++) KEYS.forEach((key, k) => rows.push({ trialId, phase, epoch: e, key, value: f(e, k) }));
  return rows;
}

interface Target {
  name: string;
  open(): Promise<Database>;
  cleanup(): Promise<void>;
  /** Rows in the large batch: beyond the bind-parameter limit on the server; several chunks on the embedded database (PGlite is slower). */
  large: number;
}

function postgres(): Target {
  let tdb: TestDatabase | undefined;
  return {
    name: 'Postgres server',
    large: 70_000,
    async open() {
      tdb = await createTestDatabase();
      return openDatabase({ env: { DATABASE_URL: tdb.url }, migrate: true });
    },
    cleanup: async () => tdb?.drop(),
  };
}

function embedded(): Target {
  let home: string | undefined;
  return {
    name: 'embedded database',
    large: 2 * UPSERT_CHUNK + KEYS.length,
    async open() {
      home = await mkdtemp(path.join(os.tmpdir(), 'sweep-ingest-'));
      return openDatabase({ env: { SWEEP_HOME: home }, migrate: true });
    },
    async cleanup() {
      if (!home) return;
      await stopEmbedded({ SWEEP_HOME: home });
      await rm(home, { recursive: true, force: true });
    },
  };
}

describe.each([postgres(), embedded()])('upsertMetrics ($name)', (target) => {
  let db: Database;
  let trial = 0;

  /** A fresh trial (MetricPoint rows need one). */
  async function newTrial(): Promise<string> {
    const id = `trial-${++trial}`;
    await db.prisma.trial.create({ data: { id, sweepId: 'sweep', index: trial, params: {}, seed: 0 } });
    return id;
  }

  async function stored(trialId: string): Promise<Map<string, number>> {
    const rows = await db.prisma.metricPoint.findMany({ where: { trialId } });
    return new Map(rows.map((r) => [`${r.phase}/${r.epoch}/${r.key}`, r.value]));
  }

  const asMap = (rows: MetricRow[]) => new Map(rows.map((r) => [`${r.phase}/${r.epoch}/${r.key}`, r.value]));

  beforeAll(async () => {
    db = await target.open();
    await db.prisma.sweep.create({ data: { id: 'sweep', name: 'ingest', method: 'grid', spec: {}, metricName: 'val_seq_acc', metricGoal: 'maximize' } });
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  it('stores every point, values exactly as given', async () => {
    const t = await newTrial();
    const odd = [0.1, 1 / 3, 1e-300, -0.5, 123456789.123456, 5e-324, 2 ** 53 - 1, 0];
    const rows = epochs(t, 'pretrain', 3, (e, k) => odd[k] * (e + 1));
    expect(await upsertMetrics(db.prisma, rows)).toBe(rows.length);
    expect(await stored(t)).toEqual(asMap(rows));
  });

  it('with an owner, writes only rows of trials that worker owns', async () => {
    const mine = await newTrial();
    const theirs = await newTrial();
    await db.prisma.trial.update({ where: { id: mine }, data: { status: 'running', worker: 'me:1' } });
    await db.prisma.trial.update({ where: { id: theirs }, data: { status: 'running', worker: 'other:2' } });
    const old = epochs(theirs, 'pretrain', 1, (_e, k) => k);
    await upsertMetrics(db.prisma, old);
    const rows = [...epochs(mine, 'pretrain', 1, (_e, k) => k + 0.5), ...epochs(theirs, 'pretrain', 1, (_e, k) => k + 0.5)];
    expect(await upsertMetrics(db.prisma, rows, { owner: 'me:1' })).toBe(KEYS.length);
    expect(await stored(mine)).toEqual(asMap(rows.filter((r) => r.trialId === mine)));
    // The other worker's values stay as they were.
    expect(await stored(theirs)).toEqual(asMap(old));
  });

  it('a replayed epoch overwrites its values and never adds a row', async () => {
    const t = await newTrial();
    const first = epochs(t, 'gru', 4, (e, k) => e + k / 10);
    await upsertMetrics(db.prisma, first);

    // The same rows again: nothing to write.
    expect(await upsertMetrics(db.prisma, first)).toBe(0);
    expect(await stored(t)).toEqual(asMap(first));

    // Epochs 2 and 3 re-run with other results, epoch 4 is new.
    const replay = epochs(t, 'gru', 3, (e, k) => 100 + e + k, 2);
    expect(await upsertMetrics(db.prisma, replay)).toBe(replay.length);
    const want = asMap([...first.filter((r) => r.epoch < 2), ...replay]);
    const got = await stored(t);
    expect(got).toEqual(want);
    expect(await db.prisma.metricPoint.count({ where: { trialId: t } })).toBe(5 * KEYS.length);
  });

  it('keeps one row per point when a batch names it twice: the last value wins', async () => {
    const t = await newTrial();
    const rows: MetricRow[] = [
      { trialId: t, phase: 'pretrain', epoch: 0, key: 'loss', value: 3 },
      { trialId: t, phase: 'pretrain', epoch: 0, key: 'val_loss', value: 4 },
      { trialId: t, phase: 'pretrain', epoch: 0, key: 'loss', value: 2 },
      { trialId: t, phase: 'gru', epoch: 0, key: 'loss', value: 1 },
    ];
    expect(await upsertMetrics(db.prisma, rows)).toBe(3);
    expect(await stored(t)).toEqual(new Map([['pretrain/0/loss', 2], ['pretrain/0/val_loss', 4], ['gru/0/loss', 1]]));
  });

  it('writes batches larger than the bind-parameter limit, in chunks, and replays them', async () => {
    // On the server, 70,000 rows: more rows than Postgres' 65,535 bind parameters.
    const t = await newTrial();
    const n = Math.ceil(target.large / KEYS.length);
    const rows = epochs(t, 'gru', n, (e, k) => e * 10 + k);
    expect(rows.length).toBeGreaterThan(2 * UPSERT_CHUNK);
    expect(await upsertMetrics(db.prisma, rows)).toBe(rows.length);
    expect(await db.prisma.metricPoint.count({ where: { trialId: t } })).toBe(rows.length);

    const replay = rows.map((r) => ({ ...r, value: -r.value - 1 }));
    expect(await upsertMetrics(db.prisma, replay)).toBe(rows.length);
    expect(await db.prisma.metricPoint.count({ where: { trialId: t } })).toBe(rows.length);
    const sum = await db.prisma.metricPoint.aggregate({ where: { trialId: t }, _sum: { value: true } });
    expect(sum._sum.value).toBe(replay.reduce((s, r) => s + r.value, 0));
  });

  it('writes a batch of several chunks all or nothing', async () => {
    const t = await newTrial();
    const rows = epochs(t, 'gru', Math.ceil((UPSERT_CHUNK * 2) / KEYS.length), (e) => e);
    // The last chunk names a trial that does not exist: its foreign key fails.
    rows.push({ trialId: 'no-such-trial', phase: 'gru', epoch: 0, key: 'loss', value: 1 });
    await expect(upsertMetrics(db.prisma, rows)).rejects.toThrow(/foreign key|MetricPoint_trialId_fkey/i);
    expect(await db.prisma.metricPoint.count({ where: { trialId: t } })).toBe(0);
  });

  it('refuses a non-finite value or a fractional epoch, naming the point, and writes nothing', async () => {
    const t = await newTrial();
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const rows = [...epochs(t, 'pretrain', 1, () => 1), { trialId: t, phase: 'pretrain', epoch: 1, key: 'loss', value: bad }];
      const err = await upsertMetrics(db.prisma, rows).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RangeError);
      expect((err as Error).message).toContain(`trial ${t}, pretrain epoch 1, loss`);
      expect((err as Error).message).toContain(String(bad));
    }
    await expect(upsertMetrics(db.prisma, [{ trialId: t, phase: 'gru', epoch: 1.5, key: 'loss', value: 1 }])).rejects.toThrow(/epoch must be an integer.*1\.5/);
    expect(await db.prisma.metricPoint.count({ where: { trialId: t } })).toBe(0);
  });

  it('does nothing with no rows', async () => {
    expect(await upsertMetrics(db.prisma, [])).toBe(0);
  });
});
