/**
 * A synthetic sweep for the report and dashboard benchmarks, inserted straight into Postgres:
 * N trials x E epochs (a fifth pretrain, the rest GRU) x 9 keys, about 85% finished, 8%
 * stopped, 4% failed, 2% running, 1% queued, on 8 workers; the 5 best store 2,000 validation
 * predictions each; one ensemble. Deterministic (seeded).
 */
import type { PrismaClient } from '../../src/infra/db.ts';
import { datasetHash } from '../../src/track/codec.ts';
import { upsertMetrics } from '../../src/track/ingest.ts';
import type { MetricRow } from '../../src/track/metrics.ts';
import { savePredictions } from '../../src/track/predictions.ts';
import { Rng } from '../../src/util/rng.ts';

export const KEYS = ['loss', 'char_acc', 'seq_acc', 'val_loss', 'val_char_acc', 'val_seq_acc', 'lr', 'images_per_s', 'seconds'];
export const WORKERS = 8;
export const VAL = 2000;
const CHARSET = '0123456789abcdefghijklmnopqrstuvwxyz';

export interface SyntheticSweep {
  name: string;
  sweepId: string;
  points: number;
  pretrain: number;
  gru: number;
  /** The running trials: id, epochs stored (over both phases), skill and lr, to add epochs to. */
  running: Array<{ id: string; ran: number; skill: number; lr: number }>;
}

/** The 9 keys' values of a trial's i-th epoch (from 0, over both phases). */
export function epochValues(r: Rng, skill: number, lr: number, i: number): Record<string, number> {
  const acc = skill * (1 - Math.exp(-(i + 1) / 12)) * (0.97 + 0.06 * r.next());
  return {
    loss: 3 * Math.exp(-i / 15) + 0.1 * r.next(),
    char_acc: Math.min(1, acc ** 0.3),
    seq_acc: acc,
    val_loss: 3.2 * Math.exp(-i / 16) + 0.2 * r.next(),
    val_char_acc: Math.min(1, (acc * 0.95) ** 0.3),
    val_seq_acc: acc * 0.95,
    lr,
    images_per_s: 800 + 50 * r.next(),
    seconds: 20 + r.next(),
  };
}

function statusOf(r: Rng): string {
  const x = r.next();
  return x < 0.85 ? 'finished' : x < 0.93 ? 'stopped' : x < 0.97 ? 'failed' : x < 0.99 ? 'running' : 'queued';
}

export async function seedSyntheticSweep(prisma: PrismaClient, opts: { name: string; trials: number; epochs: number }): Promise<SyntheticSweep> {
  const TRIALS = opts.trials;
  const EPOCHS = opts.epochs;
  const PRETRAIN = Math.max(1, Math.round(EPOCHS / 5));
  const GRU = EPOCHS - PRETRAIN;
  const SPEC = {
    name: opts.name,
    method: 'random',
    metric: { name: 'val_seq_acc', goal: 'maximize' },
    seed: 0,
    train: { generate: { style: 'railway', count: 60000, seed: 1 }, val: { style: 'railway', count: VAL, seed: 2 }, pretrain_epochs: PRETRAIN, gru_epochs: GRU, width: 0.25 },
    parameters: {
      lr: { distribution: 'log_uniform_values', min: 1e-4, max: 1e-2 },
      alpha: { distribution: 'log_uniform_values', min: 1e-6, max: 1e-3 },
      dropout: { distribution: 'uniform', min: 0, max: 0.5 },
      kernel_width: { distribution: 'categorical', values: [3, 5] },
      batch_size: { distribution: 'categorical', values: [16, 32, 64] },
    },
  };
  const r = new Rng(7);
  const sweep = await prisma.sweep.create({ data: { name: SPEC.name, method: SPEC.method, spec: SPEC, metricName: 'val_seq_acc', metricGoal: 'maximize' } });
  const t0 = Date.now() - 48 * 3600_000;
  const trials = Array.from({ length: TRIALS }, (_, i) => {
    const status = statusOf(r);
    const lr = 10 ** (-4 + 2 * r.next());
    const params = { lr, alpha: 10 ** (-6 + 3 * r.next()), dropout: 0.5 * r.next(), kernel_width: r.next() < 0.5 ? 3 : 5, batch_size: [16, 32, 64][Math.floor(r.next() * 3)] };
    // A skill per trial: the curves rise towards it; lr near 3e-3 does best.
    const skill = Math.max(0.02, 0.9 - 0.35 * Math.abs(Math.log10(lr) + 2.5) - params.dropout * 0.3 + 0.1 * r.next());
    const start = t0 + (i / WORKERS) * 20 * 60_000 * (0.9 + 0.2 * r.next());
    const ran = status === 'queued' ? 0 : status === 'stopped' ? Math.floor(EPOCHS * (0.2 + 0.4 * r.next())) : status === 'failed' ? Math.floor(EPOCHS * r.next()) : status === 'running' ? Math.floor(EPOCHS * 0.6) : EPOCHS;
    return { id: `bench${String(i).padStart(11, '0')}`, index: i, params, status, skill, start, ran };
  });
  await prisma.trial.createMany({
    data: trials.map((t) => ({
      id: t.id,
      sweepId: sweep.id,
      index: t.index,
      params: t.params,
      seed: t.index,
      status: t.status as 'finished',
      worker: t.status === 'queued' ? null : `gpu-box-${t.index % WORKERS}`,
      attempts: t.status === 'queued' ? 0 : 1,
      error: t.status === 'failed' ? `Error: CUDA out of memory at epoch ${t.ran}\n    at train (src/train/trainer.ts:1:1)` : t.status === 'stopped' ? `stopped by hyperband at iteration ${t.ran}` : null,
      startedAt: t.status === 'queued' ? null : new Date(t.start),
      finishedAt: t.status === 'queued' || t.status === 'running' ? null : new Date(t.start + t.ran * 20_000 + 5000),
      bestMetric: t.ran > 0 ? t.skill * (1 - Math.exp(-t.ran / 12)) : null,
    })),
  });
  let points = 0;
  let rows: MetricRow[] = [];
  const flush = async () => {
    points += await upsertMetrics(prisma, rows);
    rows = [];
  };
  for (const t of trials) {
    for (let i = 0; i < t.ran; i++) {
      const phase = i < PRETRAIN ? 'pretrain' : 'gru';
      const epoch = i < PRETRAIN ? i : i - PRETRAIN;
      const values = epochValues(r, t.skill, t.params.lr, i);
      for (const key of KEYS) rows.push({ trialId: t.id, phase, epoch, key, value: values[key] });
    }
    if (rows.length >= 20_000) await flush();
  }
  await flush();

  // Validation predictions of the five best finished trials, and an ensemble of them.
  const best = trials.filter((t) => t.status === 'finished').sort((x, y) => y.skill - x.skill).slice(0, 5);
  const files = Array.from({ length: VAL }, (_, i) => `${String(i).padStart(5, '0')}.png`);
  const labels = files.map(() => Array.from({ length: 6 }, () => CHARSET[Math.floor(r.next() * 36)]).join(''));
  for (const t of best) {
    const probs = new Float32Array(VAL * 6 * 36);
    for (let i = 0; i < VAL; i++) {
      for (let p = 0; p < 6; p++) {
        const row = (i * 6 + p) * 36;
        for (let c = 0; c < 36; c++) probs[row + c] = r.next() * 0.02;
        const right = r.next() < 0.7 + 0.3 * t.skill;
        probs[row + (right ? CHARSET.indexOf(labels[i][p]) : Math.floor(r.next() * 36))] += 0.9;
      }
    }
    await savePredictions(prisma, t.id, [{ split: 'val', datasetId: datasetHash(files, labels), files, labels, length: 6, classes: 36, probs }]);
  }
  await prisma.ensemble.create({
    data: {
      sweepId: sweep.id,
      name: 'vote-top5',
      method: 'vote',
      k: 5,
      metric: 'val_seq_acc',
      summary: {
        best: best[0].id,
        members: best.map((t, i) => ({ trialId: t.id, index: t.index, rank: i + 1, weight: 1, val: { seq_acc: 0.6 - 0.01 * i } })),
        ensemble: { val: { seq_acc: 0.64, char_acc: 0.93 }, test: null },
        gain: { val: { seq_acc: 0.04, seq_lo: 0.02, seq_hi: 0.06, char_acc: 0.01 }, test: null },
        optimistic: true,
      },
    },
  });
  return {
    name: opts.name,
    sweepId: sweep.id,
    points,
    pretrain: PRETRAIN,
    gru: GRU,
    running: trials.filter((t) => t.status === 'running').map((t) => ({ id: t.id, ran: t.ran, skill: t.skill, lr: t.params.lr })),
  };
}
