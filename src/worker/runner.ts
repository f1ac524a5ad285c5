/**
 * The trial process: a child of the worker that trains one trial at a time, for as long as
 * the worker keeps it. It has no connections of its own; everything goes to the worker as
 * messages (protocol.ts). Started by trial-process.ts (compiled, or TypeScript with tsx's loader).
 *
 * Signals: SIGINT and SIGTERM are ignored, because a terminal's Ctrl-C reaches the whole
 * process group and only the worker decides what happens to a trial (it sends `abort`). If
 * the worker dies, the IPC channel closes and this process exits at once: its job will be
 * re-delivered to a worker that resumes from the last checkpoint, and two processes must
 * never train into the same directory.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadDataset, type Dataset } from '../data/dataset.ts';
import { shapeFromParams, type DataShape } from '../train/shape.ts';
import { writeLabelFile } from '../train/label-file.ts';
import { loadTrialData, toTrainSet } from '../data/trainset.ts';
import { initBackend } from '../train/backend.ts';
import { resolveParams } from '../train/params.ts';
import { DivergedError, TrainingAborted, trainTrial, type EpochMetrics, type TrainerEvents, type TrialResult } from '../train/trainer.ts';
import { StorageUnavailable } from '../train/durable-write.ts';
import { UserError } from '../util/errors.ts';
import { materialize } from './data.ts';
import type { DataSource } from '../sweep/data-plan.ts';
import type { FailureKind, FromTrial, RunTrial, ToTrial } from './protocol.ts';

const PROGRESS_EVERY_MS = 2_000;

function send(msg: FromTrial): void {
  process.send?.(msg);
}

process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('disconnect', () => process.exit(70));

let running: AbortController | null = null;
let ackWaiter: ((abort: boolean) => void) | null = null;

/** Datasets already read, by directory and shape: the next trial of the sweep reuses them. */
const loaded = new Map<string, Dataset>();
const MAX_LOADED = 4;

async function dataset(dir: string, shape: DataShape): Promise<Dataset> {
  const key = JSON.stringify([dir, shape]);
  let ds = loaded.get(key);
  if (!ds) {
    ds = await loadDataset(dir, { spec: shape.label, height: shape.height, width: shape.width });
    if (loaded.size >= MAX_LOADED) loaded.delete(loaded.keys().next().value!);
    loaded.set(key, ds);
  }
  return ds;
}

function classify(err: unknown, signal: AbortSignal): FailureKind {
  if (err instanceof TrainingAborted) return 'aborted';
  if (signal.aborted && (err as Error)?.name === 'AbortError') return 'aborted';
  if (err instanceof DivergedError) return 'diverged';
  if (err instanceof UserError) return 'bad-input';
  if (err instanceof StorageUnavailable) return 'storage';
  return 'error';
}

function epochEnd(m: EpochMetrics, step: number, ac: AbortController): Promise<void> {
  return new Promise((resolve) => {
    ackWaiter = (abort) => {
      ackWaiter = null;
      if (abort) ac.abort();
      resolve();
    };
    send({ type: 'epoch', metrics: m, step });
  });
}

async function train(msg: RunTrial, ac: AbortController): Promise<TrialResult> {
  const log = (message: string) => send({ type: 'log', message });
  const params = resolveParams(msg.params, `trial ${msg.trialId} parameters`);
  const shape = shapeFromParams(msg.params);
  const dir = (s: DataSource | undefined) => (s ? materialize(s, { shape, log, signal: ac.signal }) : Promise.resolve(undefined));
  const trainDir = (await dir(msg.data.train))!;
  const valDir = await dir(msg.data.val);
  const testDir = await dir(msg.data.test);
  const active = await initBackend(msg.backend, log);

  const { train, val, test } = await loadTrialData({
    spec: shape.label,
    train: trainDir,
    val: valDir,
    test: testDir,
    valFraction: params.val_fraction,
    seed: params.seed,
    load: (d) => dataset(d, shape),
  });
  writeLabelFile(msg.outDir, shape.label);
  ac.signal.throwIfAborted();
  send({ type: 'started', backend: active.backend, images: { train: train.items.length, val: val.items.length, test: test?.items.length ?? 0 } });

  let lastProgress = 0;
  const events: TrainerEvents = {
    log,
    phaseStart: (phase, epochs, start) => send({ type: 'phase', phase, epochs, start }),
    batchEnd: (progress) => {
      const now = Date.now();
      if (now - lastProgress < PROGRESS_EVERY_MS) return;
      lastProgress = now;
      send({ type: 'progress', progress });
    },
    epochEnd: (m, step) => epochEnd(m, step, ac),
    resumed: (history) => send({ type: 'resumed', history }),
  };
  return trainTrial({
    params,
    backend: active.backend,
    data: { train: toTrainSet(train), val: toTrainSet(val), test: test && toTrainSet(test) },
    shape: { height: shape.height, width: shape.width, length: shape.label.length, classes: shape.label.charset.length },
    outDir: msg.outDir,
    events,
    signal: ac.signal,
  });
}

/** The benchmark stand-in for the trainer (see TrainerKind): one epoch, no model, no data. */
async function noop(msg: RunTrial, ac: AbortController): Promise<TrialResult> {
  send({ type: 'started', backend: 'none', images: { train: 0, val: 0, test: 0 } });
  const m: EpochMetrics = {
    phase: 'pretrain', epoch: 0, loss: 1, char_acc: 0, seq_acc: 0, val_loss: 1, val_char_acc: 0, val_seq_acc: 0, val_char_acc_by_position: [], lr: 0, images_per_s: 0, seconds: 0,
  };
  await epochEnd(m, 0, ac);
  if (ac.signal.aborted) throw new TrainingAborted('pretrain', 0);
  return {
    val_seq_acc: 0, val_char_acc: 0, val_loss: 1, test_seq_acc: null, test_char_acc: null, test_loss: null,
    backend: 'none', images_per_s: 0, seconds: 0, parameter_count: 0, best: {}, epochs_run: { pretrain: 1, gru: 0 },
    model_dir: path.join(msg.outDir, 'model'), predictions: { val: path.join(msg.outDir, 'predictions', 'val.probs.f32'), test: null },
    params: resolveParams(msg.params),
  };
}

function history(outDir: string): EpochMetrics[] {
  try {
    return JSON.parse(readFileSync(path.join(outDir, 'history.json'), 'utf8')) as EpochMetrics[];
  } catch {
    return [];
  }
}

async function run(msg: RunTrial): Promise<void> {
  const ac = new AbortController();
  running = ac;
  try {
    const result = await (msg.trainer === 'noop' ? noop(msg, ac) : train(msg, ac));
    send({ type: 'result', result, history: msg.trainer === 'noop' ? [] : history(msg.outDir) });
  } catch (err) {
    const e = err as Error;
    send({ type: 'failed', kind: classify(err, ac.signal), message: e?.message ?? String(err), stack: e?.stack });
  } finally {
    running = null;
  }
}

process.on('message', (msg: ToTrial) => {
  if (msg.type === 'run') void run(msg);
  else if (msg.type === 'abort') running?.abort();
  else if (msg.type === 'epoch-ack') ackWaiter?.(msg.abort);
});

send({ type: 'ready', pid: process.pid });
