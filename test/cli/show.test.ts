import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { showText, sparkline } from '../../src/cli/show.ts';
import { openDatabase, type Database } from '../../src/infra/db.ts';
import { resolveTrialRef, trialView, type TrialView } from '../../src/track/trial-view.ts';
import { UserError } from '../../src/util/errors.ts';
import { trialDir } from '../../src/infra/artifacts.ts';
import { runCli } from '../e2e/helpers.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';
import { addEpochs, epochValues, setTrial, storeSweep, writeCheckpoints, type StoredSweep } from './view-fixtures.ts';

const NOW = new Date('2026-11-27T12:00:00Z');
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000);

let pgdb: TestDatabase;
let db: Database;
let dir: string;
let env: Record<string, string>;
let s: StoredSweep;
const FAILURE = ['Error: wasm abort: out of memory', ...Array.from({ length: 20 }, (_, i) => `    at frame${i} (src/train/trainer.ts:${400 + i})`)].join('\n');

beforeAll(async () => {
  pgdb = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'sweep-show-'));
  env = { DATABASE_URL: pgdb.url, SWEEP_HOME: path.join(dir, 'home'), SWEEP_ARTIFACTS: path.join(dir, 'artifacts') };
  db = await openDatabase({ env, migrate: true });
  const p = db.prisma;
  s = await storeSweep(p, 'showcase', [0.1, 0.2, 0.3, 0.4, 0.5]);

  // #0 finished, with both phases, a result and its files.
  const out0 = path.join(dir, 'out0');
  mkdirSync(path.join(out0, 'model'), { recursive: true });
  writeFileSync(path.join(out0, 'model', 'weights.bin'), Buffer.alloc(2048));
  mkdirSync(path.join(out0, 'predictions'));
  writeFileSync(path.join(out0, 'predictions', 'val.probs.f32'), Buffer.alloc(100));
  const ckpt0 = writeCheckpoints(out0, ['pretrain-e0003', 'gru-e0001', 'gru-e0002'], { checkpoint: 'gru-e0002', best: { pretrain: 'pretrain-e0003', gru: 'gru-e0001' } });
  await setTrial(p, s.ids[0], {
    status: 'finished',
    worker: 'box-a:101',
    attempts: 2,
    backend: 'wasm',
    startedAt: minutesAgo(30),
    finishedAt: minutesAgo(20),
    heartbeatAt: minutesAgo(20),
    bestMetric: 0.25,
    summary: {
      val_seq_acc: 0.25, val_char_acc: 0.61, val_loss: 12.5, test_seq_acc: 0.2, test_char_acc: 0.58, test_loss: 13.25,
      backend: 'wasm', images_per_s: 18.3, seconds: 455, parameter_count: 4967448,
      best: { pretrain: { epoch: 2, val_seq_acc: 0.1, val_loss: 19 }, gru: { epoch: 0, val_seq_acc: 0.25, val_loss: 18.5 } },
      epochs_run: { pretrain: 3, gru: 2 },
    },
  });
  await addEpochs(p, s.ids[0], [
    { phase: 'pretrain', epoch: 0, values: epochValues(0) },
    { phase: 'pretrain', epoch: 1, values: epochValues(0.05) },
    { phase: 'pretrain', epoch: 2, values: epochValues(0.1) },
    { phase: 'gru', epoch: 0, values: epochValues(0.25) },
    { phase: 'gru', epoch: 1, values: epochValues(0.2) },
  ]);
  await p.artifact.createMany({
    data: [
      { trialId: s.ids[0], kind: 'model', path: path.join(out0, 'model'), bytes: 2048 },
      { trialId: s.ids[0], kind: 'predictions', path: path.join(out0, 'predictions', 'val.probs.f32'), phase: 'val', bytes: 100 },
      { trialId: s.ids[0], kind: 'predictions', path: path.join(out0, 'predictions', 'test.probs.f32'), phase: 'test', bytes: 100 },
      { trialId: s.ids[0], kind: 'checkpoint', path: ckpt0 },
    ],
  });

  // #1 running, one pretrain epoch stored without the training accuracies; its checkpoints
  // are where the worker puts them (no artifact rows yet).
  await setTrial(p, s.ids[1], { status: 'running', worker: 'box-b:202', attempts: 1, startedAt: minutesAgo(3), heartbeatAt: new Date(NOW.getTime() - 5000) });
  await addEpochs(p, s.ids[1], [{ phase: 'pretrain', epoch: 0, values: { loss: 21.5, val_loss: 21.4, val_seq_acc: 0, seconds: 70 } }]);
  writeCheckpoints(trialDir(s.ids[1], env), ['pretrain-e0001'], { checkpoint: 'pretrain-e0001', best: { pretrain: 'pretrain-e0001' } });

  await setTrial(p, s.ids[2], { status: 'failed', worker: 'box-a:101', attempts: 3, error: FAILURE, startedAt: minutesAgo(10), finishedAt: minutesAgo(9) });
  await setTrial(p, s.ids[3], { status: 'diverged', worker: 'box-b:202', attempts: 1, error: 'training diverged: loss NaN in gru epoch 2', backend: 'wasm' });

  // Another sweep whose two trial ids share a prefix.
  const other = await p.sweep.create({ data: { name: 'other', method: 'grid', spec: {}, metricName: 'val_loss', metricGoal: 'minimize' } });
  for (const [i, id] of ['abcdef0000000000000a', 'abcdef0000000000000b'].entries()) {
    await p.trial.create({ data: { id, sweepId: other.id, index: i, params: { lr: 0.001 * (i + 1) }, seed: 0 } });
  }
});

afterAll(async () => {
  await db?.close();
  await pgdb?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function userError(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return (err as Error).message;
}

describe('trial references', () => {
  it('resolve by id, unique prefix, SWEEP#INDEX (name or sweep id) and ignore case of a prefix', async () => {
    const p = db.prisma;
    expect(await resolveTrialRef(p, s.ids[2])).toBe(s.ids[2]);
    expect(await resolveTrialRef(p, s.ids[2].slice(0, 8))).toBe(s.ids[2]);
    expect(await resolveTrialRef(p, s.ids[2].slice(0, 8).toUpperCase())).toBe(s.ids[2]);
    expect(await resolveTrialRef(p, 'showcase#3')).toBe(s.ids[3]);
    expect(await resolveTrialRef(p, `${s.id}#0`)).toBe(s.ids[0]);
    expect(await resolveTrialRef(p, 'other#1')).toBe('abcdef0000000000000b');
    expect(await resolveTrialRef(p, 'abcdef0000000000000a')).toBe('abcdef0000000000000a');
  });

  it('refuse ambiguous, short, unknown and malformed references, saying what was expected', async () => {
    const p = db.prisma;
    const ambiguous = await userError(resolveTrialRef(p, 'abcdef'));
    expect(ambiguous).toMatch(/prefix matches several trials; give more characters/);
    expect(ambiguous).toContain('abcdef0000000000000a  other#0  queued');
    expect(ambiguous).toContain('abcdef0000000000000b  other#1  queued');
    expect(await userError(resolveTrialRef(p, 'abc'))).toMatch(/expected a trial id, an id prefix of at least 6 characters, or SWEEP#INDEX/);
    expect(await userError(resolveTrialRef(p, 'ffffff99'))).toMatch(/no trial id starts with "ffffff99"/);
    expect(await userError(resolveTrialRef(p, 'showcase#9'))).toMatch(/sweep showcase has no trial #9; its 5 trial\(s\) are #0..#4/);
    expect(await userError(resolveTrialRef(p, 'nosuch#1'))).toMatch(/no sweep named "nosuch"/);
    expect(await userError(resolveTrialRef(p, 'showcase#one'))).toMatch(/expected SWEEP#INDEX/);
    expect(await userError(resolveTrialRef(p, 'showcase'))).toMatch(/showcase is a sweep: name one of its trials as showcase#INDEX/);
    expect(await userError(resolveTrialRef(p, ''))).toMatch(/no trial given/);
  });
});

describe('trialView', () => {
  let v: TrialView;
  beforeAll(async () => {
    v = await trialView(db.prisma, 'showcase#0', { env, now: NOW });
  });

  it('gathers the row, params with the swept ones marked, and the sweep metric', () => {
    expect(v).toMatchObject({
      sweep: { id: s.id, name: 'showcase', method: 'grid', metric: { name: 'val_seq_acc', goal: 'maximize' } },
      id: s.ids[0],
      index: 0,
      status: 'finished',
      error: null,
      attempts: 2,
      worker: 'box-a:101',
      backend: 'wasm',
      seed: 0,
      durationSeconds: 600,
      epochSeconds: 5 * 65,
      heartbeatAgeSeconds: null,
      metric: { name: 'val_seq_acc', goal: 'maximize', best: 0.25, bestAt: { phase: 'gru', epoch: 1 } },
    });
    expect(v.params.find((q) => q.name === 'dropout')).toEqual({ name: 'dropout', value: 0.1, swept: true });
    expect(v.params.find((q) => q.name === 'gru_epochs')).toEqual({ name: 'gru_epochs', value: 4, swept: false });
    expect(v.params.filter((q) => q.swept).map((q) => q.name)).toEqual(['dropout']);
  });

  it('has the epochs per phase in training order, counted from 1, with the metric per epoch', () => {
    expect(v.phases.map((ph) => [ph.phase, ph.planned, ph.epochs.map((e) => e.epoch)])).toEqual([
      ['pretrain', 3, [1, 2, 3]],
      ['gru', 4, [1, 2]],
    ]);
    expect(v.phases[0].metric).toEqual([0, 0.05, 0.1]);
    expect(v.phases[1].epochs[0].values).toEqual(epochValues(0.25));
  });

  it('lists artifacts (whether they are on this machine) and the checkpoint epochs on disk', () => {
    expect(v.artifacts.map((a) => [a.kind, a.phase, a.exists])).toEqual([
      ['checkpoint', null, true],
      ['model', null, true],
      ['predictions', 'test', false],
      ['predictions', 'val', true],
    ]);
    expect(v.checkpoints.exists).toBe(true);
    expect(v.checkpoints.found.map((c) => [c.phase, c.epoch, c.latest, c.best])).toEqual([
      ['pretrain', 3, false, true],
      ['gru', 1, false, true],
      ['gru', 2, true, false],
    ]);
    expect(v.summary).toMatchObject({ test_seq_acc: 0.2, epochs_run: { pretrain: 3, gru: 2 } });
    expect(v.wandb).toBeNull();
  });

  it('finds a running trial\'s checkpoints under the artifacts directory and its heartbeat age', async () => {
    const r = await trialView(db.prisma, s.ids[1].slice(0, 7), { env, now: NOW });
    expect(r.status).toBe('running');
    expect(r.heartbeatAgeSeconds).toBe(5);
    expect(r.durationSeconds).toBe(180);
    expect(r.checkpoints.dir).toBe(path.join(dir, 'artifacts', 'trials', s.ids[1], 'checkpoints'));
    expect(r.checkpoints.found.map((c) => c.name)).toEqual(['pretrain-e0001']);
    expect(r.metric.best).toBe(0);
    // Without a checkpoint directory on this machine.
    const q = await trialView(db.prisma, 'showcase#4', { env, now: NOW });
    expect(q.checkpoints).toMatchObject({ exists: false, found: [] });
    expect(q.phases).toEqual([]);
    expect(q.durationSeconds).toBeNull();
  });

  it('asks wandbLink for the link, and keeps going when it fails', async () => {
    const asked: string[] = [];
    const linked = await trialView(db.prisma, 'showcase#0', { env, wandbLink: async (id) => (asked.push(id), `https://wandb.ai/team/sweep/runs/${id}`) });
    expect(asked).toEqual([s.ids[0]]);
    expect(linked.wandb).toBe(`https://wandb.ai/team/sweep/runs/${s.ids[0]}`);
    expect(showText(linked)).toContain(`wandb: https://wandb.ai/team/sweep/runs/${s.ids[0]}`);
    const broken = await trialView(db.prisma, 'showcase#0', { env, wandbLink: async () => { throw new Error('W&B unreachable'); } });
    expect(broken.wandb).toBeNull();
    expect(showText(broken)).toContain('wandb: - (lookup failed: W&B unreachable)');
  });
});

describe('showText', () => {
  it('scales a sparkline from the lowest to the highest value, with gaps', () => {
    expect(sparkline([0, 0.05, 0.1])).toBe('▁▅█');
    expect(sparkline([1, 2, 3, 4, 5, 6, 7, 8])).toBe('▁▂▃▄▅▆▇█');
    expect(sparkline([0.5, null, 0.5])).toBe('▁ ▁');
    expect(sparkline([])).toBe('');
  });

  it('prints the header, params, epoch tables with sparklines, summary, artifacts, checkpoints and wandb', async () => {
    const text = showText(await trialView(db.prisma, 'showcase#0', { env, now: NOW }));
    const lines = text.split('\n');
    expect(lines[0]).toBe(`trial ${s.ids[0]}  showcase#0  (sweep showcase, grid)`);
    expect(text).toContain('status: finished\n');
    expect(text).toContain('attempts: 2  worker: box-a:101  backend: wasm  seed: 0');
    expect(text).toContain('started: 2026-11-27 11:30:00Z  finished: 2026-11-27 11:40:00Z');
    expect(text).toContain('duration: 10m00s (epochs: 5m25s)');
    expect(text).toMatch(/^ {2}\* {2}dropout +0\.1$/m);
    expect(text).toMatch(/^ {5}gru_epochs +4$/m);
    expect(text).toContain('val_seq_acc (maximize): best 0.2500 at gru epoch 1');
    // The pretrain table: every column the trainer reports, one row per epoch.
    const at = lines.indexOf('pretrain: 3 epoch(s), up to 3');
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1].split(/\s+/).filter(Boolean)).toEqual(['epoch', 'loss', 'val_loss', 'char_acc', 'val_char_acc', 'seq_acc', 'val_seq_acc', 'images/s', 'seconds']);
    expect(lines[at + 4].split(/\s+/).filter(Boolean)).toEqual(['3', '19.0000', '20.0000', '0.1500', '0.1000', '0.0500', '0.1000', '18.3', '1m05s']);
    expect(lines[at + 5]).toBe('  val_seq_acc ▁▅█  0.0000 -> 0.1000 (min 0.0000, max 0.1000)');
    expect(text).toContain('gru: 2 epoch(s), up to 4');
    expect(text).toContain('  val_seq_acc █▁  0.2500 -> 0.2000');
    expect(text).toContain('  test  seq_acc 0.2000  char_acc 0.5800  loss 13.2500');
    expect(text).toContain('  18.3 img/s, 7m35s training, 4,967,448 parameters, epochs run: pretrain 3, gru 2');
    expect(text).toContain('  kept weights: pretrain epoch 3 (val_seq_acc 0.1000), gru epoch 1 (val_seq_acc 0.2500)');
    expect(text).toMatch(/^ {2}model +.*out0\/model +2\.0 KiB$/m);
    expect(text).toMatch(/^ {2}predictions +test +.*test\.probs\.f32 +100 B \(not on this machine\)$/m);
    expect(text).toContain(`checkpoints: ${path.join(dir, 'out0', 'checkpoints')}: pretrain 3 (best), gru 1 (best), gru 2 (latest)`);
    expect(lines[lines.length - 1]).toBe('wandb: -');
  });

  it('shows only the columns a phase has, and an error with its first lines', async () => {
    const running = showText(await trialView(db.prisma, 'showcase#1', { env, now: NOW }));
    const header = running.split('\n').find((l) => l.trimStart().startsWith('epoch'))!;
    expect(header.split(/\s+/).filter(Boolean)).toEqual(['epoch', 'loss', 'val_loss', 'val_seq_acc', 'seconds']);
    expect(running).toContain('heartbeat: 2026-11-27 11:59:55Z (5.0s ago)');
    expect(running).toContain('duration: 3m00s so far (epochs: 1m10s)');
    expect(running).toContain('val_seq_acc (maximize): best 0.0000 at pretrain epoch 1');

    const failed = showText(await trialView(db.prisma, 'showcase#2', { env, now: NOW }));
    expect(failed).toContain('status: failed: Error: wasm abort: out of memory\n      at frame0 (src/train/trainer.ts:400)');
    expect(failed).toContain('at frame10 ');
    expect(failed).not.toContain('at frame11 ');
    expect(failed).toContain('... 9 more line(s) (--json has the whole error)');
    expect(failed).toContain('epochs: none stored yet');
    expect(failed).toContain('artifacts:\n  none stored');
    expect(failed).toContain('checkpoints: ');
    expect(failed).toContain(': not on this machine');
  });
});

describe('sweep show (CLI)', () => {
  it('prints one JSON object, and the text', async () => {
    const r = await runCli(['show', `${s.ids[0].slice(0, 6)}`, '--json'], env, { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(Object.keys(v)).toEqual(expect.arrayContaining([
      'sweep', 'id', 'index', 'status', 'error', 'attempts', 'worker', 'backend', 'seed', 'createdAt', 'startedAt', 'finishedAt',
      'heartbeatAt', 'durationSeconds', 'params', 'metric', 'phases', 'summary', 'artifacts', 'checkpoints', 'wandb',
    ]));
    expect(v.id).toBe(s.ids[0]);
    expect(v.startedAt).toBe('2026-11-27T11:30:00.000Z');
    expect(v.phases[1]).toMatchObject({ phase: 'gru', planned: 4, epochs: [{ epoch: 1, values: { val_seq_acc: 0.25 } }, { epoch: 2 }], metric: [0.25, 0.2] });
    expect(v.checkpoints.found).toHaveLength(3);
    expect(v.params).toContainEqual({ name: 'dropout', value: 0.1, swept: true });
    expect(v.wandb).toBeNull();

    const text = await runCli(['show', 'showcase#3'], env, { timeoutMs: 60_000 });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('status: diverged: training diverged: loss NaN in gru epoch 2');
    expect(text.stdout).toContain('wandb: -');
  });

  it('exits 2 with the candidates for an ambiguous prefix, and without a trial', async () => {
    const r = await runCli(['show', 'abcdef'], env, { timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('sweep: trial "abcdef": the prefix matches several trials');
    expect(r.stderr).toContain('abcdef0000000000000a  other#0  queued');
    const none = await runCli(['show'], env, { timeoutMs: 60_000 });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Not enough non-option arguments');
  });
});
