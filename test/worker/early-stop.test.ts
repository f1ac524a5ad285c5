/**
 * Early termination in a running sweep: the worker asks the sweep's rule after every stored
 * epoch, stops a trial it condemns after that epoch's checkpoint, records it `stopped` with
 * the reason (metrics and checkpoint kept) and goes on to the next trial. Real processes,
 * Redis and Postgres; the evidence is a finished trial written into the sweep beforehand.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/infra/db.ts';
import { launchSweep } from '../../src/scheduler/launch.ts';
import { runCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';

let t: TestEnv;
let db: Database;

beforeAll(async () => {
  t = await testEnv('earlystop');
  db = await t.db();
});
afterAll(async () => {
  await db?.close();
  await t?.cleanup();
});

describe('early termination in the worker', () => {
  it('median rule: trials worse than the others stop after their first judged epoch; the worker moves on', async () => {
    const yaml = tinySweep({ name: 'median', dropout: [0.1, 0.2], pretrain: 4, gru: 2 })
      .replace('metric: {name: val_seq_acc, goal: maximize}', 'metric: {name: val_loss, goal: minimize}')
      .replace('parameters:', 'early_terminate: {type: median, min_iter: 2, min_trials: 1}\nparameters:');
    const launched = await launchSweep({ file: writeFile(t.dir, 'median.yaml', yaml), env: t.env });
    const trials = await db.prisma.trial.findMany({ where: { sweepId: launched.sweep.id }, orderBy: { index: 'asc' } });
    expect(trials).toHaveLength(2);
    // The evidence: a finished trial of the same sweep whose val_loss no real trial can match.
    await db.prisma.trial.create({ data: { id: 'evidence', sweepId: launched.sweep.id, index: 99, params: {}, seed: 0, status: 'finished' } });
    await db.prisma.metricPoint.createMany({
      data: [0, 1, 2, 3].map((epoch) => ({ trialId: 'evidence', phase: 'pretrain', epoch, key: 'val_loss', value: 0.001 })),
    });

    const w = await runCli(['worker', '--exit-when-idle'], t.env);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr).toMatch(/early termination \(median\): median rule at iteration 2/);
    for (const trial of trials) {
      const done = await db.prisma.trial.findUniqueOrThrow({ where: { id: trial.id }, include: { artifacts: true } });
      expect(done.status).toBe('stopped');
      expect(done.error, done.error ?? '').toMatch(/^median rule at iteration 2: best val_loss [\d.]+ above median [\d.]+ of [12] other trials/);
      expect(done.finishedAt).not.toBeNull();
      // Stopped after iteration 2: two pretrain epochs stored, the rest never ran.
      const epochs = await db.prisma.metricPoint.findMany({ where: { trialId: trial.id, key: 'val_loss' }, orderBy: { epoch: 'asc' } });
      expect(epochs.map((p) => `${p.phase}/${p.epoch}`)).toEqual(['pretrain/0', 'pretrain/1']);
      const checkpoint = done.artifacts.find((a) => a.kind === 'checkpoint');
      expect(checkpoint).toBeDefined();
      // The checkpoint it was stopped at is kept and names its epoch: the second pretrain epoch.
      const state = JSON.parse(readFileSync(path.join(checkpoint!.path, 'state.json'), 'utf8')) as { phase: string; checkpoint: string };
      expect(state.checkpoint).toBe('pretrain-e0002');
      expect(existsSync(path.join(checkpoint!.path, state.checkpoint, 'weights.bin'))).toBe(true);
    }
    expect(w.stderr).toMatch(/2 stopped/);
  });
});
