/**
 * The sweep report at scale: a synthetic sweep of 1,000 trials x 50 epochs (10 pretrain + 40
 * GRU) x 9 keys (450,000 metric points), stored validation predictions of the 5 best (2,000
 * examples each) and an ensemble, inserted straight into a scratch Postgres database; then
 * `sweep report`'s work (writeSweepReport) timed, and the page opened in headless Chromium.
 *
 *   npx tsx bench/report.ts [--trials 1000] [--epochs 50] [--loads 3] [--out FILE]
 *
 * Goals: the page at most 10 MB, and at most 2 s from navigation start to the last chart drawn
 * (the page's own mark after its last setOption and one animation frame; median of --loads
 * fresh pages). Uses a database of its own on the Postgres at SWEEP_TEST_PG_URL (default
 * postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end. Chromium: CHROMIUM_PATH
 * or /usr/bin/chromium. Results go to bench/results/report.md and .json; --out keeps the page.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { openDatabase, type PrismaClient } from '../src/infra/db.ts';
import { datasetHash } from '../src/track/codec.ts';
import { upsertMetrics } from '../src/track/ingest.ts';
import type { MetricRow } from '../src/track/metrics.ts';
import { savePredictions } from '../src/track/predictions.ts';
import { writeSweepReport } from '../src/report/write.ts';
import { Rng } from '../src/util/rng.ts';
import { createTestDatabase } from '../support/pg.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    trials: { type: 'string', default: '1000' },
    epochs: { type: 'string', default: '50' },
    loads: { type: 'string', default: '3' },
    out: { type: 'string' },
  },
});
const TRIALS = Number(a.trials);
const EPOCHS = Number(a.epochs);
const LOADS = Number(a.loads);
const PRETRAIN = Math.max(1, Math.round(EPOCHS / 5));
const GRU = EPOCHS - PRETRAIN;
const KEYS = ['loss', 'char_acc', 'seq_acc', 'val_loss', 'val_char_acc', 'val_seq_acc', 'lr', 'images_per_s', 'seconds'];
const WORKERS = 8;
const VAL = 2000;
const CHARSET = '0123456789abcdefghijklmnopqrstuvwxyz';
const GOAL_BYTES = 10 * 1024 ** 2;
const GOAL_MS = 2000;

const SPEC = {
  name: 'bench-report',
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

function statusOf(r: Rng): string {
  const x = r.next();
  return x < 0.85 ? 'finished' : x < 0.93 ? 'stopped' : x < 0.97 ? 'failed' : x < 0.99 ? 'running' : 'queued';
}

async function seed(prisma: PrismaClient): Promise<{ sweepId: string; points: number }> {
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
      const acc = t.skill * (1 - Math.exp(-(i + 1) / 12)) * (0.97 + 0.06 * r.next());
      const values: Record<string, number> = {
        loss: 3 * Math.exp(-i / 15) + 0.1 * r.next(),
        char_acc: Math.min(1, acc ** 0.3),
        seq_acc: acc,
        val_loss: 3.2 * Math.exp(-i / 16) + 0.2 * r.next(),
        val_char_acc: Math.min(1, (acc * 0.95) ** 0.3),
        val_seq_acc: acc * 0.95,
        lr: t.params.lr,
        images_per_s: 800 + 50 * r.next(),
        seconds: 20 + r.next(),
      };
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
  return { sweepId: sweep.id, points };
}

async function main(): Promise<void> {
  const started = runStart();
  const db0 = await createTestDatabase('sweep_bench_report');
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-report-'));
  const db = await openDatabase({ env: { DATABASE_URL: db0.url, SWEEP_HOME: dir }, migrate: true });
  try {
    const s0 = performance.now();
    const { points } = await seed(db.prisma);
    const seedSeconds = (performance.now() - s0) / 1000;
    console.log(`seeded ${TRIALS} trials, ${points} metric points in ${seedSeconds.toFixed(1)} s`);

    const out = path.join(dir, 'report.html');
    const w0 = performance.now();
    const c0 = process.cpuUsage();
    const written = await writeSweepReport(db.prisma, SPEC.name, { out, env: { SWEEP_HOME: dir } });
    const cpu = process.cpuUsage(c0);
    const writeSeconds = (performance.now() - w0) / 1000;
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    if (a.out) copyFileSync(out, a.out);
    console.log(`report: ${(written.bytes / 1024 ** 2).toFixed(2)} MB in ${writeSeconds.toFixed(2)} s (${cpuSeconds.toFixed(2)} CPU s)`);

    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' });
    const loads: Array<{ readyMs: number; drawMs: number; taskMs: number; charts: Record<string, number> }> = [];
    try {
      for (let i = 0; i < LOADS; i++) {
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        // The renderer's main-thread task time (CDP Performance.TaskDuration) beside the wall
        // clock: how much of the load was the page's own work rather than waiting to start.
        const cdp = await page.context().newCDPSession(page);
        await cdp.send('Performance.enable');
        const busy = async () => (await cdp.send('Performance.getMetrics')).metrics.find((x) => x.name === 'TaskDuration')?.value ?? 0;
        const before = await busy();
        await page.goto(`file://${out}`);
        await page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
        const taskMs = ((await busy()) - before) * 1000;
        const m = await page.evaluate(() => {
          const r = (window as unknown as { __report: { readyAt: number; drawMs: number; timings: Record<string, number> } }).__report;
          return { readyMs: r.readyAt, drawMs: r.drawMs, charts: r.timings };
        });
        loads.push({ ...m, taskMs });
        console.log(`load ${i + 1}: last chart drawn ${m.readyMs.toFixed(0)} ms after navigation start (page script ${m.drawMs.toFixed(0)} ms, main-thread tasks ${taskMs.toFixed(0)} ms)`);
        await page.close();
      }
    } finally {
      await browser.close();
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const readyMs = median(loads.map((l) => l.readyMs));
    const drawMs = median(loads.map((l) => l.drawMs));
    const taskMs = median(loads.map((l) => l.taskMs));
    const rows = [
      ['page size', `${(written.bytes / 1024 ** 2).toFixed(2)} MB`, '<= 10 MB', written.bytes <= GOAL_BYTES ? 'met' : 'missed'],
      ['navigation start to last chart (median)', `${(readyMs / 1000).toFixed(2)} s`, '<= 2 s', readyMs <= GOAL_MS ? 'met' : 'missed'],
      ['of which the page script', `${(drawMs / 1000).toFixed(2)} s`, '', ''],
      ['renderer main-thread task time until then (median)', `${(taskMs / 1000).toFixed(2)} s`, '', ''],
      ['writing the report (queries, shaping, HTML)', `${writeSeconds.toFixed(2)} s wall, ${cpuSeconds.toFixed(2)} s CPU`, '', ''],
    ];
    const markdown = [
      `A synthetic sweep of ${TRIALS.toLocaleString('en-US')} trials x ${EPOCHS} epochs (${PRETRAIN} pretrain + ${GRU} GRU) x ${KEYS.length} keys: ${points.toLocaleString('en-US')} metric points, about 85% finished, 8% stopped, 4% failed, 2% running, 1% queued, on ${WORKERS} workers; the 5 best store ${VAL.toLocaleString('en-US')} validation predictions each; one ensemble. The validation images are not on disk (the page says so).`,
      '',
      markdownTable(['measure', 'value', 'goal', ''], rows),
      '',
      `Load: headless Chromium (${LOADS} fresh pages), from navigation start to the page's mark after its last chart's setOption and one animation frame. Every load: ${loads.map((l) => `${(l.readyMs / 1000).toFixed(2)} s`).join(', ')}. The main thread's task time (CDP TaskDuration, navigation to the mark) is the time the renderer spent running the page's tasks (parsing, the chart library, the page script, layout); it is wall time too, so a loaded machine inflates it. Per chart (ms, first load): ${Object.entries(loads[0]?.charts ?? {}).map(([k, v]) => `${k.replace('chart-', '')} ${v}`).join(', ')}.`,
    ].join('\n');
    const files = writeResults({
      name: 'report',
      title: 'Sweep report: page size and time to draw, 1,000 trials',
      markdown,
      data: { trials: TRIALS, epochs: EPOCHS, keys: KEYS.length, points, bytes: written.bytes, write_s: writeSeconds, write_cpu_s: cpuSeconds, ready_ms: readyMs, draw_ms: drawMs, task_ms: taskMs, loads, goals: { bytes: GOAL_BYTES, ready_ms: GOAL_MS } },
      ...started,
    });
    console.log(`wrote ${files.md} and ${files.json}`);
  } finally {
    await db.close();
    await db0.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
