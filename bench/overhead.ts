/**
 * What a worker spends per epoch besides training, against the epoch itself. Goal: <= 2% of
 * the epoch's time at width 0.25.
 *
 *   checkpoint  model weights + Adam state + state.json, written by the trainer after every
 *               epoch (trainer.ts trainEpochs, checkpoint.ts). The trainer has no event before it saves, so
 *               it is timed as: checkpoint event - epoch start - the epoch's `seconds` (training
 *               + validation). The epoch starts when the previous epoch's epochEnd returns (or
 *               at phaseStart), which is exactly where the trainer starts its own clock.
 *   logging     what the worker does with an epoch while the trial process waits for its
 *               `epoch-ack` (runner.ts, attempt.ts): the EpochMetrics over IPC (advanced
 *               serialization, as TrialProcess forks), recordMetrics(epochRows) and the
 *               heartbeat UPDATE at once, the log line, the ack back. A stand-in worker process
 *               (this script with --stand-in) does exactly that against a real database, with
 *               the worker's 10-s heartbeat timer running (which pooled connections are still
 *               open when an epoch ends depends on it); it reports its database time with the
 *               ack, the rest is IPC. The table also counts the connections it had to open.
 *               With --early-terminate (as a sweep's `early_terminate`), the worker then asks the
 *               rule (earlyStopCheck: every trial's metric history in one query) before it acks;
 *               the bench sweep holds --sweep-trials other trials of 20 epochs each for it to read.
 *               (Not included: the W&B outbox row the worker also writes when W&B is on.)
 *   progress    the throttled `progress` messages the trial process sends during an epoch
 *               (one every 2 s; the worker forwards them to the queue without blocking it).
 *
 * The trainer is the real one (trainTrial, wasm backend through initBackend('auto')) on
 * generated railway images. Every epoch is one sample: medians are per phase and over all.
 *
 *   npx tsx bench/overhead.ts [--images 2000] [--val 200] [--width 0.25] [--batch 32]
 *                             [--pretrain 1] [--gru 2] [--backend auto]
 *                             [--early-terminate hyperband|median|none] [--sweep-trials 100] [--json]
 *
 * The defaults take 9-10 CPU minutes here (an epoch of 2,000 images at width 0.25 is about
 * 3 CPU minutes on this machine's wasm).
 *
 * Data is generated once under bench/out/overhead/; the trial is written to
 * bench/out/overhead/trial (removed first, so it never resumes); the table and the raw numbers
 * go to bench/results/overhead.md and .json. The database is a new one on the Postgres at SWEEP_TEST_PG_URL
 * (default postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { EarlyTerminate } from '../src/sweep/schema.ts';
import type { MetricRow } from '../src/track/metrics.ts';
import type { BatchProgress, EpochMetrics, Phase } from '../src/train/trainer.ts';
import { runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    images: { type: 'string', default: '2000' },
    val: { type: 'string', default: '200' },
    width: { type: 'string', default: '0.25' },
    batch: { type: 'string', default: '32' },
    pretrain: { type: 'string', default: '1' },
    gru: { type: 'string', default: '2' },
    backend: { type: 'string', default: 'auto' },
    'early-terminate': { type: 'string', default: 'hyperband' },
    'sweep-trials': { type: 'string', default: '100' },
    json: { type: 'boolean', default: false },
    // Internal: run as the worker stand-in (database, sweep, trial and worker from the env).
    'stand-in': { type: 'boolean', default: false },
  },
});

/** runner.ts sends a progress message at most this often (its PROGRESS_EVERY_MS). */
const PROGRESS_EVERY_MS = 2_000;
const OUT = 'bench/out/overhead';

type FromStandIn = { type: 'ready' } | { type: 'epoch-ack'; abort: boolean; dbMs: number; earlyStopMs: number; rows: number; cpuMs: number };
type ToStandIn = { type: 'epoch'; metrics: EpochMetrics } | { type: 'progress'; progress: BatchProgress };

/** The rule a sweep file's `early_terminate` would give (schema defaults filled in). */
function earlyTerminate(type: string): EarlyTerminate | null {
  if (type === 'none') return null;
  if (type === 'hyperband') return { type: 'hyperband', min_iter: 3, eta: 3, strict: true };
  if (type === 'median') return { type: 'median', min_iter: 1, min_trials: 5, interval: 1 };
  throw new Error(`--early-terminate must be hyperband, median or none, got ${type}`);
}

// ---------------------------------------------------------------------------------------------
// The worker stand-in: what attempt.ts does with an `epoch` message, on a real database.

async function standIn(): Promise<void> {
  const { openDatabase } = await import('../src/infra/db.ts');
  const { recordMetrics, heartbeat, HEARTBEAT_MS } = await import('../src/track/store.ts');
  const { better, epochMetric, epochRows, DEFAULT_METRIC } = await import('../src/track/metrics.ts');
  const { earlyStopCheck } = await import('../src/track/histories.ts');
  const { formatSeconds } = await import('../src/util/progress.ts');
  const trialId = process.env.BENCH_TRIAL!;
  const sweepId = process.env.BENCH_SWEEP!;
  const worker = process.env.BENCH_WORKER!;
  const early = earlyTerminate(a['early-terminate']!);
  const db = await openDatabase({ env: { DATABASE_URL: process.env.DATABASE_URL } });
  // A worker's connection and statements are warm by the time an epoch ends (it claimed the
  // trial; after its first epoch ever, it has stored metrics): so are this one's.
  await heartbeat(db.prisma, trialId, worker, null);
  const warm = { trialId, phase: 'warm-up', epoch: 0, key: 'loss', value: 1 };
  await recordMetrics(db.prisma, [warm]);
  await recordMetrics(db.prisma, [{ ...warm, value: 2 }]);
  await db.prisma.metricPoint.deleteMany({ where: { trialId, phase: 'warm-up' } });
  let best: number | null = null;
  // The worker's heartbeat timer: it also decides which pooled connections are still open when
  // an epoch ends (the pool closes a connection idle for 10 s).
  const beat = setInterval(() => void heartbeat(db.prisma, trialId, worker, best).catch(() => {}), HEARTBEAT_MS);
  const send = (m: FromStandIn) => process.send!(m);
  process.on('message', (msg: ToStandIn) => {
    if (msg.type !== 'epoch') return; // progress: the worker hands it to the queue, unawaited
    void (async () => {
      const m = msg.metrics;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const v = epochMetric(DEFAULT_METRIC, m);
      if (v !== null && better(DEFAULT_METRIC.goal, v, best)) best = v;
      const rows: MetricRow[] = epochRows(trialId, m);
      const [, status] = await Promise.all([recordMetrics(db.prisma, rows), heartbeat(db.prisma, trialId, worker, best)]);
      if (status !== 'running') throw new Error(`the bench trial should be running, is ${status}`);
      const dbMs = performance.now() - t0;
      // The worker asks the rule once the epoch is stored; the bench trial trains on whatever it says.
      const t1 = performance.now();
      if (early) await earlyStopCheck(db.prisma, { sweepId, trialId, config: early, metric: DEFAULT_METRIC });
      const earlyStopMs = performance.now() - t1;
      process.stderr.write(
        `  ${m.phase} ${m.epoch + 1}: loss ${m.loss.toFixed(4)} val_loss ${m.val_loss.toFixed(4)} ` +
          `val_seq_acc ${m.val_seq_acc.toFixed(4)} ${m.images_per_s.toFixed(1)} img/s ${formatSeconds(m.seconds)}\n`,
      );
      const c = process.cpuUsage(c0);
      send({ type: 'epoch-ack', abort: false, dbMs, earlyStopMs, rows: rows.length, cpuMs: (c.user + c.system) / 1000 });
    })().catch((err: unknown) => {
      process.stderr.write(`worker stand-in: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    });
  });
  process.on('disconnect', () => {
    clearInterval(beat);
    void db.close().finally(() => process.exit(0));
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------------
// The trial: the real trainer, timed around its events.

interface EpochSample {
  phase: Phase;
  epoch: number;
  /** The trainer's own: training + validation. */
  epochS: number;
  /** Training only (images / images_per_s). */
  trainS: number;
  checkpointS: number;
  checkpointMB: number;
  /** epoch message sent -> ack received. */
  loggingMs: number;
  /** recordMetrics + heartbeat in the worker stand-in. */
  dbMs: number;
  /** Database connections the stand-in opened for them (its pool had closed idle ones). */
  newConnections: number;
  /** The early-termination rule's query and decision, after the store. */
  earlyStopMs: number;
  progressMs: number;
  progressMessages: number;
  imagesPerS: number;
  /** This process's CPU over the whole epoch, checkpoint and logging included (all threads). */
  cpuS: number;
  overheadPct: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
const log = (m: string) => process.stderr.write(`${m}\n`);

function dirMB(dir: string): number {
  let bytes = 0;
  for (const f of readdirSync(dir)) bytes += statSync(join(dir, f)).size;
  return bytes / 2 ** 20;
}

async function main(): Promise<void> {
  const { DEFAULT_LABEL_SPEC } = await import('../src/data/charset.ts');
  const { loadDataset } = await import('../src/data/dataset.ts');
  const { generateDataset } = await import('../src/data/generate/index.ts');
  const { toTrainSet } = await import('../src/data/trainset.ts');
  const { openDatabase } = await import('../src/infra/db.ts');
  const { initBackend } = await import('../src/train/backend.ts');
  const { DEFAULT_PARAMS } = await import('../src/train/params.ts');
  const { upsertMetrics } = await import('../src/track/ingest.ts');
  const { epochRows } = await import('../src/track/metrics.ts');
  const { microBatchFor, trainTrial } = await import('../src/train/trainer.ts');
  const { createTestDatabase } = await import('../support/pg.ts');

  const num = (k: 'images' | 'val' | 'width' | 'batch' | 'pretrain' | 'gru', integer = true) => {
    const v = Number(a[k]);
    if (!(v >= 0) || (integer && !Number.isInteger(v))) throw new Error(`--${k} must be a ${integer ? 'non-negative integer' : 'positive number'}, got ${a[k]}`);
    return v;
  };
  const images = num('images');
  const valImages = num('val');
  const width = num('width', false);
  const batch = num('batch');
  const pretrain = num('pretrain');
  const gru = num('gru');
  if (pretrain + gru === 0) throw new Error('--pretrain and --gru are both 0: nothing to measure');
  const early = earlyTerminate(a['early-terminate']!);
  const sweepTrials = Number(a['sweep-trials']);
  if (!Number.isInteger(sweepTrials) || sweepTrials < 0) throw new Error(`--sweep-trials must be a non-negative integer, got ${a['sweep-trials']}`);

  const started = runStart();
  const startLoad = loadavg();
  const cpu0 = process.cpuUsage();
  const dataset = async (name: string, count: number, seed: number) => {
    const dir = join(OUT, `${name}-${count}-s${seed}`);
    if (!existsSync(join(dir, 'labels.csv'))) {
      log(`generating ${count} railway images into ${dir}`);
      await generateDataset({ style: 'railway', count, seed, out: dir });
    }
    return loadDataset(dir, { spec: DEFAULT_LABEL_SPEC });
  };
  const train = await dataset('train', images, 11);
  const val = await dataset('val', valImages, 12);
  const active = await initBackend(a.backend as Parameters<typeof initBackend>[0], log);

  const tdb = await createTestDatabase('sweep_bench_overhead');
  // Interrupted: drop the database rather than leave it behind. (The trainer yields between
  // batches, so this runs within one training step.)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: dropping ${tdb.name}`);
      void tdb.drop().finally(() => process.exit(130));
    });
  }
  const db = await openDatabase({ env: { DATABASE_URL: tdb.url }, migrate: true });
  const trialId = 'bench-overhead-trial';
  const worker = `${os.hostname()}:${process.pid}`;
  const sweep = await db.prisma.sweep.create({ data: { name: 'bench-overhead', method: 'grid', spec: {}, metricName: 'val_seq_acc', metricGoal: 'maximize' }, select: { id: true } });
  await db.prisma.trial.create({ data: { id: trialId, sweepId: sweep.id, index: sweepTrials, params: {}, seed: 1, status: 'running', worker, attempts: 1, startedAt: new Date(), heartbeatAt: new Date() } });
  // The rest of the sweep: finished trials of 10 + 10 epochs, every key of every epoch stored,
  // for the early-termination query to read.
  const others = Array.from({ length: sweepTrials }, (_, i) => `bench-other-${i}`);
  await db.prisma.trial.createMany({ data: others.map((id, i) => ({ id, sweepId: sweep.id, index: i, params: {}, seed: i, status: 'finished' as const, attempts: 1 })) });
  const history: MetricRow[] = [];
  others.forEach((id, i) => {
    for (let e = 0; e < 20; e++) {
      const acc = Math.min(1, ((e + 1) / 20) * (0.5 + (i % 10) / 20));
      const m: EpochMetrics = {
        phase: e < 10 ? 'pretrain' : 'gru', epoch: e % 10, loss: 21.5 * (1 - acc), char_acc: acc, seq_acc: acc ** 6, val_loss: 21.5 * (1 - acc),
        val_char_acc: acc, val_seq_acc: acc ** 6, val_char_acc_by_position: [acc, acc, acc, acc, acc, acc], lr: 1e-3, images_per_s: 10, seconds: 200,
      };
      history.push(...epochRows(id, m));
    }
  });
  await upsertMetrics(db.prisma, history);

  // The worker stand-in, forked as TrialProcess forks the trial process (the roles are swapped:
  // here the trainer is the parent; the messages and their serialization are the same).
  const child: ChildProcess = fork(process.argv[1], ['--stand-in'], {
    execArgv: process.execArgv,
    env: { ...process.env, DATABASE_URL: tdb.url, BENCH_TRIAL: trialId, BENCH_SWEEP: sweep.id, BENCH_WORKER: worker },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  type Ack = Extract<FromStandIn, { type: 'epoch-ack' }>;
  let waiting: { resolve: (m: Ack) => void; reject: (e: Error) => void } | null = null;
  const ready = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => {
      const err = new Error(`the worker stand-in exited (code ${code})`);
      reject(err);
      waiting?.reject(err);
    });
    child.on('message', (m: FromStandIn) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'epoch-ack') waiting?.resolve(m);
    });
  });
  await ready;

  const outDir = join(OUT, 'trial');
  rmSync(outDir, { recursive: true, force: true });
  const params = { ...DEFAULT_PARAMS, width, batch_size: batch, pretrain_epochs: pretrain, gru_epochs: gru, patience: pretrain + gru + 1, seed: 1 };
  const samples: EpochSample[] = [];
  let epochStart = 0;
  let epochCpu = process.cpuUsage();
  let checkpointAt = 0;
  let checkpointMB = 0;
  let progressMs = 0;
  let progressMessages = 0;
  let lastProgress = 0;
  let batches = 0;
  const trainStarted = performance.now();
  log(
    `training: ${train.items.length} train / ${val.items.length} val images, width ${width}, batch ${batch} (micro ${microBatchFor(params, active.backend)}), ` +
      `${active.backend}, ${pretrain} + ${gru} epochs; early termination ${early?.type ?? 'none'} over ${sweepTrials} other trials; load ${startLoad}`,
  );
  let endedAt = 0;
  let lastEpochEnd = 0;
  try {
    await trainTrial({
      params,
      backend: active.backend,
      data: { train: toTrainSet(train), val: toTrainSet(val) },
      shape: { height: 60, width: 200, length: DEFAULT_LABEL_SPEC.length, classes: DEFAULT_LABEL_SPEC.charset.length },
      outDir,
      events: {
        phaseStart: () => {
          epochStart = performance.now();
          epochCpu = process.cpuUsage();
        },
        batchEnd: (p) => {
          batches = p.batch;
          const now = Date.now();
          if (now - lastProgress < PROGRESS_EVERY_MS) return;
          lastProgress = now;
          const t0 = performance.now();
          child.send({ type: 'progress', progress: p } satisfies ToStandIn);
          progressMs += performance.now() - t0;
          progressMessages++;
        },
        checkpoint: (c) => {
          checkpointAt = performance.now();
          checkpointMB = dirMB(c.dir);
        },
        epochEnd: async (m) => {
          const t0 = performance.now();
          const sentAt = new Date();
          const ack = await new Promise<Ack>((resolve, reject) => {
            waiting = { resolve, reject };
            child.send({ type: 'epoch', metrics: m } satisfies ToStandIn);
          });
          waiting = null;
          const loggingMs = performance.now() - t0;
          const [opened] = await db.prisma.$queryRaw<{ n: number }[]>`
            SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_start >= ${sentAt}`;
          const checkpointS = (checkpointAt - epochStart) / 1000 - m.seconds;
          const overheadS = checkpointS + (loggingMs + progressMs) / 1000;
          samples.push({
            phase: m.phase,
            epoch: m.epoch,
            epochS: m.seconds,
            trainS: (batches * batch) / m.images_per_s,
            checkpointS,
            checkpointMB,
            loggingMs,
            dbMs: ack.dbMs,
            newConnections: opened.n,
            earlyStopMs: ack.earlyStopMs,
            progressMs,
            progressMessages,
            imagesPerS: m.images_per_s,
            cpuS: cpuSeconds(process.cpuUsage(epochCpu)),
            overheadPct: (100 * overheadS) / m.seconds,
          });
          log(`    checkpoint ${(1000 * checkpointS).toFixed(0)} ms (${checkpointMB.toFixed(1)} MB), logging ${loggingMs.toFixed(1)} ms (store ${ack.dbMs.toFixed(1)} ms, ${opened.n} new connection(s); early termination ${ack.earlyStopMs.toFixed(1)} ms), progress ${progressMs.toFixed(2)} ms: ${samples.at(-1)!.overheadPct.toFixed(2)}% of the epoch (load ${loadavg()})`);
          progressMs = 0;
          progressMessages = 0;
          // The trainer starts the next epoch's clock as this returns.
          epochCpu = process.cpuUsage();
          epochStart = lastEpochEnd = performance.now();
        },
      },
    });
    endedAt = performance.now();
  } finally {
    child.disconnect();
    await db.close();
    await tdb.drop();
  }
  const endLoad = loadavg();
  const totalCpu = cpuSeconds(process.cpuUsage(cpu0));

  const cpus = os.cpus();
  const machine = `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const command = `npx tsx bench/overhead.ts ${process.argv.slice(2).join(' ')}`.trim();
  const phases = [...new Set(samples.map((s) => s.phase))];
  const summary = [...phases.map((p) => [p, samples.filter((s) => s.phase === p)] as const), ['all', samples] as const].map(([label, ss]) => ({
    label,
    n: ss.length,
    epochS: median(ss.map((s) => s.epochS)),
    trainS: median(ss.map((s) => s.trainS)),
    checkpointS: median(ss.map((s) => s.checkpointS)),
    checkpointMB: median(ss.map((s) => s.checkpointMB)),
    loggingMs: median(ss.map((s) => s.loggingMs)),
    dbMs: median(ss.map((s) => s.dbMs)),
    newConnections: median(ss.map((s) => s.newConnections)),
    earlyStopMs: median(ss.map((s) => s.earlyStopMs)),
    ipcMs: median(ss.map((s) => s.loggingMs - s.dbMs - s.earlyStopMs)),
    progressMs: median(ss.map((s) => s.progressMs)),
    cpuS: median(ss.map((s) => s.cpuS)),
    overheadPct: median(ss.map((s) => s.overheadPct)),
    maxOverheadPct: Math.max(...ss.map((s) => s.overheadPct)),
    /** Training images/s (the trainer's). */
    imagesPerS: median(ss.map((s) => s.imagesPerS)),
  }));
  const report = {
    machine,
    backend: active.backend,
    command,
    loadAverage: { start: startLoad, end: endLoad },
    setup: { images: train.items.length, val: val.items.length, width, batch, micro: microBatchFor(params, active.backend), pretrain, gru, earlyTerminate: early, sweepTrials },
    trialEndSeconds: (endedAt - lastEpochEnd) / 1000,
    trainWallSeconds: (endedAt - trainStarted) / 1000,
    processCpuSeconds: totalCpu,
    samples,
    summary,
  };
  const all = summary.at(-1)!;
  const lines: string[] = [];
  const out = (line = '') => lines.push(line);
  const head = `${command}: ${report.setup.images} train / ${report.setup.val} val railway images, width ${width}, batch ${batch} (micro ${report.setup.micro}); early termination ${early?.type ?? 'none'} over ${sweepTrials} other trials of 20 epochs; this process used ${(totalCpu / 60).toFixed(1)} CPU min in ${(report.trainWallSeconds / 60).toFixed(1)} min of training`;
  out('| phase | epoch | epoch s (train + val) | epoch CPU s | checkpoint ms | checkpoint MB | logging ms (all) | of which store ms (new connections) | of which early termination ms | progress msgs ms | overhead % of epoch |');
  out('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const s of samples) {
    out(
      `| ${s.phase} | ${s.epoch + 1} | ${s.epochS.toFixed(1)} | ${s.cpuS.toFixed(1)} | ${(1000 * s.checkpointS).toFixed(0)} | ${s.checkpointMB.toFixed(1)} | ` +
        `${s.loggingMs.toFixed(1)} | ${s.dbMs.toFixed(1)} (${s.newConnections}) | ${s.earlyStopMs.toFixed(1)} | ${s.progressMs.toFixed(2)} (${s.progressMessages}) | ${s.overheadPct.toFixed(2)}% |`,
    );
  }
  for (const m of summary) {
    out(
      `| **median, ${m.label}** (${m.n}) | | ${m.epochS.toFixed(1)} | ${m.cpuS.toFixed(1)} | ${(1000 * m.checkpointS).toFixed(0)} | ${m.checkpointMB.toFixed(1)} | ` +
        `${m.loggingMs.toFixed(1)} | ${m.dbMs.toFixed(1)} (${m.newConnections}) | ${m.earlyStopMs.toFixed(1)} | ${m.progressMs.toFixed(2)} | ${m.overheadPct.toFixed(2)}% (max ${m.maxOverheadPct.toFixed(2)}%) |`,
    );
  }
  out();
  out(`goal <= 2% of the epoch: ${all.maxOverheadPct <= 2 ? 'met' : all.overheadPct <= 2 ? 'met at the median, not on every epoch' : 'NOT met'} (median ${all.overheadPct.toFixed(2)}%, worst epoch ${all.maxOverheadPct.toFixed(2)}%)`);
  // The checkpoint and the epoch's logging cost the same whatever the epoch's length; progress
  // messages cost a little per second. Below this length an epoch's overhead passes 2%.
  const fixedS = all.checkpointS + all.loggingMs / 1000;
  const perSecond = all.progressMs / 1000 / all.epochS;
  const breakEvenS = fixedS / (0.02 - perSecond);
  out(
    `the overhead is ${(1000 * fixedS).toFixed(0)} ms an epoch whatever its length: it passes 2% only for epochs shorter than ${breakEvenS.toFixed(1)} s ` +
      `(about ${Math.ceil((breakEvenS * all.imagesPerS) / 10) * 10} training images at the ${all.imagesPerS.toFixed(1)} images/s measured here)`,
  );
  out(`once per trial, after the last epoch: ${report.trialEndSeconds.toFixed(1)} s (final model, val predictions, history and result files)`);
  writeResults({
    name: 'overhead',
    title: 'What a worker spends per epoch besides training',
    ...started,
    markdown: [
      `Backend ${active.backend}. ${head}.`,
      '',
      'checkpoint: weights + Adam state + state.json after every epoch; logging: the epoch over IPC to a stand-in worker process, its metric INSERT and heartbeat, the early-termination query, the ack back; progress: the throttled progress messages. Goal: <= 2% of the epoch at width 0.25.',
      '',
      ...lines,
    ].join('\n'),
    data: report,
  });
  if (a.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  console.log(`\nmachine: ${machine}; backend ${active.backend}`);
  console.log(`load average (1, 5, 15 min): ${startLoad} at start, ${endLoad} at end`);
  console.log(`${head}\n`);
  for (const line of lines) console.log(line);
}

if (a['stand-in']) await standIn();
else await main();
