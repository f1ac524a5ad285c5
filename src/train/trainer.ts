/**
 * One trial: pretrain the CNN, then train the CNN+GRU from its conv weights, keep each
 * phase's best weights (by val sequence accuracy, then character accuracy, then loss: see
 * best-epoch.ts), stop early on patience, and write the final model, metrics and
 * per-character probabilities (outputs.ts). Checkpoints are checkpoint.ts's.
 *
 * The loop is written out (not `model.fit`) because it must accumulate gradients over
 * micro-batches (the wasm heap cannot hold the full model at batch 32), checkpoint the
 * optimizer and the data order after every epoch, and resume to the same result.
 *
 * Determinism: the data order is a function of (seed, phase, epoch); dropout masks of
 * (seed, step); the optimizer state is saved exactly. A trial killed after epoch e and
 * resumed runs epochs e+1.. exactly as an uninterrupted run would.
 */
import * as tf from './tf.ts';
import { tfl } from './tf.ts';
import { registerFileRouter } from './io.ts';
import { buildGruModel, buildPretrainModel, copyTrunkWeights, isTrunkLayer, l2Penalty, tfSeed, type ModelSpec } from './model.ts';
import { betterEpoch } from './best-epoch.ts';
import { epochAugment, type TrainParams } from './params.ts';
import { checkpointName, Checkpoints, freshState } from './checkpoint.ts';
import { diskWaitSeconds, writeDurably } from './durable-write.ts';
import { writeOutputs } from './outputs.ts';
import type { EpochMetrics, EvalMetrics, Phase, TrainBatch, TrainerState, TrainSet, TrialResult } from './types.ts';

export type { EpochMetrics, EvalMetrics, Phase, TrainBatch, TrainSet, TrialResult } from './types.ts';

export interface BatchProgress {
  phase: Phase;
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  loss: number;
}

/** Callbacks the worker and the CLI use to log and display; the trainer awaits them. */
export interface TrainerEvents {
  log?(message: string): void;
  phaseStart?(phase: Phase, epochs: number, startEpoch: number): void;
  batchEnd?(p: BatchProgress): void;
  /** `step`: the epoch's place in the trial's history (0-based over both phases), the same on every attempt. */
  epochEnd?(m: EpochMetrics, step: number): void | Promise<void>;
  /** A resumed trial's epochs from before its last checkpoint, in order (step = index). */
  resumed?(history: readonly EpochMetrics[]): void | Promise<void>;
  checkpoint?(c: { phase: Phase; epoch: number; dir: string }): void | Promise<void>;
}

export interface TrainInput {
  params: TrainParams;
  /** The active tfjs backend name ('wasm', 'tensorflow', 'cpu', ...); stored with the run. */
  backend: string;
  data: { train: TrainSet; val: TrainSet; test?: TrainSet };
  shape: { height: number; width: number; length: number; classes: number };
  outDir: string;
  events?: TrainerEvents;
  /** Aborting ends the trial after the running epoch has been checkpointed. */
  signal?: AbortSignal;
  /** Also evaluate the test set after every epoch (for accuracy-over-time curves). */
  testEveryEpoch?: boolean;
}

export class DivergedError extends Error {
  constructor(readonly phase: Phase, readonly epoch: number, readonly loss: number) {
    super(`training diverged: loss ${loss} in ${phase} epoch ${epoch + 1}`);
    this.name = 'DivergedError';
  }
}

export class TrainingAborted extends Error {
  constructor(readonly phase: Phase, readonly epoch: number) {
    super(`training stopped after ${phase} epoch ${epoch + 1} (checkpointed)`);
    this.name = 'TrainingAborted';
  }
}

export function microBatchFor(params: TrainParams, backend: string): number {
  if (params.micro_batch > 0) return Math.min(params.micro_batch, params.batch_size);
  // The wasm heap holds about 8 full-width images' activations and gradients; memory scales
  // roughly with the filter multiplier.
  if (backend === 'wasm' || backend === 'cpu') {
    return Math.max(1, Math.min(params.batch_size, Math.floor(8 / params.width)));
  }
  return params.batch_size;
}

/** The learning rate of a phase's epoch `epoch` (0-based): lr * lr_decay^epoch. */
export function epochLearningRate(params: TrainParams, epoch: number): number {
  return params.lr * params.lr_decay ** epoch;
}

/** Whether a phase anneals its learning rate along a half cosine (lr_cosine 1: both, 2: GRU only). */
export function cosinePhase(params: TrainParams, phase: Phase): boolean {
  return params.lr_cosine === 1 || (params.lr_cosine === 2 && phase === 'gru');
}

/**
 * The learning rate of step `batch` (0-based) of a phase's epoch `epoch`: the epoch's rate,
 * times, when the phase anneals (cosinePhase), the half cosine 0.5 * (1 + cos(pi * s / S)) of
 * the phase's step s out of S = epochs * batchesPerEpoch (so 1 at the phase's first step, near 0
 * at its last). It depends on the position alone, so a resumed phase follows the same curve.
 */
export function stepLearningRate(params: TrainParams, phase: Phase, epoch: number, batch: number, epochs: number, batchesPerEpoch: number): number {
  const lr = epochLearningRate(params, epoch);
  if (!cosinePhase(params, phase)) return lr;
  const total = Math.max(1, epochs * batchesPerEpoch);
  const s = Math.min(epoch * batchesPerEpoch + batch, total);
  return lr * 0.5 * (1 + Math.cos((Math.PI * s) / total));
}

function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  // Adam reads its learningRate field at every update.
  (optimizer as unknown as { learningRate: number }).learningRate = lr;
}

function dropoutLayers(model: tfl.LayersModel): tfl.layers.Layer[] {
  return model.layers.filter((l) => l.getClassName() === 'Dropout');
}

/** Dropout masks are drawn from a seed per (trial seed, step, layer) so a resumed run draws the same. */
function seedDropout(layers: tfl.layers.Layer[], seed: number, phase: Phase, step: number): void {
  const base = (seed * 7919 + (phase === 'gru' ? 1 : 0) * 104729 + step * 31) >>> 0;
  layers.forEach((l, i) => {
    (l as unknown as { seed: number }).seed = tfSeed(base + i);
  });
}

function ceLoss(outputs: tf.Tensor[], yOneHot: tf.Tensor): tf.Scalar {
  // Keras' categorical cross-entropy on softmax outputs: clip, log, sum over heads.
  const probs = tf.stack(outputs, 1);
  const logp = tf.log(tf.clipByValue(probs, 1e-7, 1 - 1e-7));
  return tf.neg(tf.sum(tf.mul(yOneHot, logp))) as tf.Scalar;
}

/** Counts correct characters and all-correct sequences of one (micro-)batch. */
function countCorrect(argmax: Int32Array | Float32Array | Uint8Array, y: Int32Array, n: number, length: number): { chars: number; seqs: number } {
  let chars = 0;
  let seqs = 0;
  for (let i = 0; i < n; i++) {
    let all = true;
    for (let j = 0; j < length; j++) {
      if (argmax[i * length + j] === y[i * length + j]) chars++;
      else all = false;
    }
    if (all) seqs++;
  }
  return { chars, seqs };
}

function oneHot(y: Int32Array, n: number, length: number, classes: number): tf.Tensor3D {
  return tf.tidy(() => tf.reshape(tf.oneHot(tf.tensor1d(y, 'int32'), classes), [n, length, classes]) as tf.Tensor3D);
}

function imageTensor(x: Float32Array, n: number, shape: TrainInput['shape']): tf.Tensor4D {
  return tf.tensor4d(x, [n, shape.height, shape.width, 3]);
}

class TrainingRun {
  private readonly spec: ModelSpec;
  private readonly micro: number;
  private readonly checkpoints: Checkpoints;
  private state!: TrainerState;

  constructor(private readonly input: TrainInput) {
    const { params, shape, backend } = input;
    this.spec = {
      kernel_size: params.kernel_size,
      kernel_width: params.kernel_width,
      padding: params.padding,
      alpha: params.alpha,
      dropout: params.dropout,
      width: params.width,
      seed: params.seed,
      height: shape.height,
      imageWidth: shape.width,
      length: shape.length,
      classes: shape.classes,
    };
    this.micro = microBatchFor(params, backend);
    this.checkpoints = new Checkpoints(input.outDir);
  }

  private log(msg: string): void {
    this.input.events?.log?.(msg);
  }

  async run(): Promise<TrialResult> {
    registerFileRouter();
    const resumed = this.checkpoints.open(this.input.params, (m) => this.log(m));
    this.state = resumed ?? freshState(this.input.params);
    if (resumed) {
      this.log(`resuming from ${resumed.phase} epoch ${resumed.epoch + 1} (checkpoint ${resumed.checkpoint ?? 'none'})`);
      if (resumed.history.length) await this.input.events?.resumed?.(resumed.history);
    }
    const { params } = this.input;

    if (this.state.phase === 'pretrain') {
      const model = buildPretrainModel(this.spec);
      try {
        await this.runPhase('pretrain', model, params.pretrain_epochs);
      } finally {
        model.dispose();
      }
      this.state.phase = params.gru_epochs > 0 ? 'gru' : 'done';
      this.state.epoch = 0;
      this.state.step = 0;
      this.state.sinceBest = 0;
      this.state.checkpoint = null;
      this.state.previous = null;
      this.state.adamBetaPowers = null;
      await this.checkpoints.writeState(this.state);
    }
    if (this.state.phase === 'gru') {
      const model = buildGruModel(this.spec);
      try {
        if (this.state.checkpoint === null && this.state.best.pretrain) {
          const pre = await this.checkpoints.loadModel(this.state.best.pretrain.dir);
          const copied = copyTrunkWeights(pre, model);
          pre.dispose();
          this.log(`gru: copied ${copied} conv/BN layers from pretrain epoch ${this.state.best.pretrain.epoch + 1}`);
        }
        await this.runPhase('gru', model, params.gru_epochs);
      } finally {
        model.dispose();
      }
      this.state.phase = 'done';
      this.state.checkpoint = null;
      this.state.previous = null;
      this.state.adamBetaPowers = null;
      await this.checkpoints.writeState(this.state);
    }
    return this.finish();
  }

  private async runPhase(phase: Phase, model: tfl.LayersModel, epochs: number): Promise<void> {
    const { params, data, events, signal, shape } = this.input;
    const optimizer = tf.train.adam(params.lr, 0.9, 0.999, 1e-7);
    try {
      await this.trainEpochs(phase, model, optimizer, epochs);
    } finally {
      optimizer.dispose();
    }
  }

  private async trainEpochs(phase: Phase, model: tfl.LayersModel, optimizer: tf.Optimizer, epochs: number): Promise<void> {
    const { params, data, events, signal, shape } = this.input;
    if (this.state.checkpoint) await this.checkpoints.restore(this.state.checkpoint, this.state.adamBetaPowers, model, optimizer);
    // Head and GRU variables first: Adam keys its moments by position, and freezing the CNN
    // drops the trailing (trunk) variables without shifting the others.
    const trainable = model.trainableWeights;
    const trunkNames = new Set(model.layers.filter((l) => isTrunkLayer(l.name)).flatMap((l) => l.trainableWeights.map((w) => w.name)));
    const headVars = trainable.filter((w) => !trunkNames.has(w.name)).map((w) => w.read() as tf.Variable);
    const trunkVars = trainable.filter((w) => trunkNames.has(w.name)).map((w) => w.read() as tf.Variable);
    const dropouts = dropoutLayers(model);
    const batchesPerEpoch = Math.floor(data.train.size / params.batch_size) || 1;

    events?.phaseStart?.(phase, epochs, this.state.epoch);
    for (let epoch = this.state.epoch; epoch < epochs; epoch++) {
      if (this.state.sinceBest >= params.patience) break;
      const frozen = phase === 'gru' && epoch < params.freeze_epochs;
      const lr = stepLearningRate(params, phase, epoch, 0, epochs, batchesPerEpoch);
      const anneal = cosinePhase(params, phase);
      setLearningRate(optimizer, lr);
      const vars = frozen ? headVars : [...headVars, ...trunkVars];
      const started = performance.now();
      let lossSum = 0;
      let seen = 0;
      let chars = 0;
      let seqs = 0;
      let batch = 0;
      const dropRemainder = data.train.size >= params.batch_size;
      // Training batches only: precise_bn, validation and test see the images as they are.
      const augment = epochAugment(params, phase, epoch);
      for await (const b of data.train.batches({ batchSize: params.batch_size, shuffle: true, seed: params.seed * 2 + (phase === 'gru' ? 1 : 0), epoch, dropRemainder, augment })) {
        seedDropout(dropouts, params.seed, phase, this.state.step);
        if (anneal) setLearningRate(optimizer, stepLearningRate(params, phase, epoch, batch, epochs, batchesPerEpoch));
        const r = this.step(model, optimizer, vars, b);
        this.state.step++;
        if (!Number.isFinite(r.loss)) throw new DivergedError(phase, epoch, r.loss);
        lossSum += r.loss * b.n;
        seen += b.n;
        chars += r.chars;
        seqs += r.seqs;
        batch++;
        events?.batchEnd?.({ phase, epoch, epochs, batch, batches: batchesPerEpoch, loss: lossSum / seen });
      }
      const trainSeconds = (performance.now() - started) / 1000;
      if (params.precise_bn > 0) await this.recalibrateBatchNorm(model, phase, epoch);
      const val = await this.evaluate(model, data.val);
      const m: EpochMetrics = {
        phase,
        epoch,
        loss: lossSum / seen,
        char_acc: chars / (seen * shape.length),
        seq_acc: seqs / seen,
        val_loss: val.loss,
        val_char_acc: val.char_acc,
        val_seq_acc: val.seq_acc,
        val_char_acc_by_position: val.char_acc_by_position,
        lr,
        images_per_s: seen / trainSeconds,
        seconds: 0,
      };
      if (this.input.testEveryEpoch && data.test) {
        const t = await this.evaluate(model, data.test);
        Object.assign(m, { test_loss: t.loss, test_char_acc: t.char_acc, test_seq_acc: t.seq_acc });
      }
      m.seconds = (performance.now() - started) / 1000;
      this.state.trainSeconds += trainSeconds;
      this.state.trainImages += seen;
      this.state.history.push(m);

      // Checkpoint: weights + optimizer into a new directory, then the state that points to it.
      // A full disk is waited out (durable-write.ts); the previous checkpoint stays untouched.
      const durably = <T>(what: string, where: string, write: () => Promise<T> | T, cleanup?: () => void) =>
        writeDurably(what, write, { waitS: diskWaitSeconds(), log: (msg) => this.log(msg), where, cleanup });
      const ckName = checkpointName(phase, epoch);
      const saved = await durably(`checkpoint ${ckName}`, this.checkpoints.path(ckName), () => this.checkpoints.save(phase, epoch, model, optimizer), () => {
        const named = [this.state.checkpoint, this.state.previous, ...Object.values(this.state.best).map((b) => b?.dir)];
        if (!named.includes(ckName)) this.checkpoints.discard(ckName);
      });
      const ckDir = saved.dir;
      this.state.adamBetaPowers = saved.adamBetaPowers;
      const best = this.state.best[phase];
      if (betterEpoch(m, best)) {
        this.state.best[phase] = { epoch, val_seq_acc: m.val_seq_acc, val_char_acc: m.val_char_acc, val_loss: m.val_loss, dir: ckDir };
        this.state.sinceBest = 0;
      } else {
        this.state.sinceBest++;
      }
      this.state.previous = this.state.checkpoint;
      this.state.checkpoint = ckDir;
      this.state.epoch = epoch + 1;
      const sealed = this.state;
      await durably(`checkpoint ${ckDir}`, this.checkpoints.root, async () => {
        this.checkpoints.seal(ckDir, sealed);
        await this.checkpoints.writeState(sealed);
      });
      await events?.checkpoint?.({ phase, epoch, dir: this.checkpoints.path(ckDir) });
      await events?.epochEnd?.(m, this.state.history.length - 1);
      if (signal?.aborted) throw new TrainingAborted(phase, epoch);
    }
  }

  /** One optimizer step over a batch, accumulating gradients over micro-batches. */
  private step(model: tfl.LayersModel, optimizer: tf.Optimizer, vars: tf.Variable[], b: TrainBatch): { loss: number; chars: number; seqs: number } {
    const { shape, params } = this.input;
    const pixels = shape.height * shape.width * 3;
    let grads: tf.Tensor[] | null = null;
    let loss = 0;
    let chars = 0;
    let seqs = 0;
    for (let s = 0; s < b.n; s += this.micro) {
      const m = Math.min(this.micro, b.n - s);
      const y = b.y.subarray(s * shape.length, (s + m) * shape.length);
      const x = imageTensor(b.x.subarray(s * pixels, (s + m) * pixels), m, shape);
      const yh = oneHot(y, m, shape.length, shape.classes);
      let argmax: tf.Tensor | null = null;
      const { value, grads: g } = tf.variableGrads(() => {
        const outputs = model.apply(x, { training: true }) as tf.Tensor[];
        argmax = tf.keep(tf.stack(outputs.map((o) => tf.argMax(o, 1)), 1));
        // Sum of per-sample losses over the whole batch; the L2 penalty once per batch.
        let total = tf.div(ceLoss(outputs, yh), b.n);
        const reg = l2Penalty(model, params.alpha);
        if (reg) total = tf.add(total, tf.mul(reg, m / b.n));
        return total as tf.Scalar;
      }, vars);
      x.dispose();
      yh.dispose();
      loss += value.dataSync()[0];
      value.dispose();
      const c = countCorrect((argmax as unknown as tf.Tensor).dataSync() as Int32Array, y, m, shape.length);
      (argmax as unknown as tf.Tensor).dispose();
      chars += c.chars;
      seqs += c.seqs;
      const list = vars.map((v) => g[v.name]);
      if (grads === null) {
        grads = list;
      } else {
        const prev: tf.Tensor[] = grads;
        grads = list.map((t, i) => {
          const sum = tf.add(prev[i], t);
          prev[i].dispose();
          t.dispose();
          return sum;
        });
      }
    }
    const named: tf.NamedTensorMap = {};
    vars.forEach((v, i) => {
      named[v.name] = grads![i];
    });
    optimizer.applyGradients(named);
    tf.dispose(grads!);
    return { loss, chars, seqs };
  }

  /**
   * Precise BatchNorm: replaces each BN layer's moving mean and variance with the average of
   * its batch statistics over the first `precise_bn` training images of a shuffled pass (batches
   * of batch_size, dropout off, as at inference). The moving averages (momentum 0.99) trail
   * the weights, and while the weights still move fast they can be far enough off to ruin the
   * validation and the checkpoint of a trunk that is fine with its batch statistics. Training
   * does not read the moving statistics, so this changes no later epoch's updates.
   */
  private async recalibrateBatchNorm(model: tfl.LayersModel, phase: Phase, epoch: number): Promise<void> {
    const { params, data, shape } = this.input;
    const norms = model.layers.filter((l) => l.getClassName() === 'BatchNormalization') as Array<tfl.layers.Layer & { momentum: number }>;
    if (!norms.length) return;
    const dropouts = dropoutLayers(model) as Array<tfl.layers.Layer & { rate: number }>;
    const momenta = norms.map((l) => l.momentum);
    const rates = dropouts.map((l) => l.rate);
    const batchSize = Math.min(params.batch_size, data.train.size);
    const batches = Math.max(1, Math.floor(params.precise_bn / batchSize));
    // The inference batch (no gradients) can be larger than the training micro-batch.
    const chunk = Math.max(this.micro, Math.min(batchSize, 32));
    const pixels = shape.height * shape.width * 3;
    try {
      dropouts.forEach((l) => (l.rate = 0));
      let k = 0;
      let passes = 0;
      // A data order of its own, so the next epoch's order is untouched.
      const seed = params.seed * 2 + (phase === 'gru' ? 1 : 0) + 0x5eed;
      for await (const b of data.train.batches({ batchSize, shuffle: true, seed, epoch, dropRemainder: data.train.size >= batchSize })) {
        if (k >= batches) break;
        k++;
        // Pass p updates with momentum 1 - 1/p: after it each moving statistic is the mean of
        // the p passes' statistics. BN sees a batch's statistics only when the batch is one
        // forward pass, so a batch larger than `chunk` contributes its chunks in turn.
        for (let s = 0; s < b.n; s += chunk) {
          const m = Math.min(chunk, b.n - s);
          passes++;
          norms.forEach((l) => (l.momentum = 1 - 1 / passes));
          tf.tidy(() => {
            model.apply(imageTensor(b.x.subarray(s * pixels, (s + m) * pixels), m, shape), { training: true });
          });
        }
      }
      this.log(`${phase} epoch ${epoch + 1}: BatchNorm statistics re-estimated over ${k * batchSize} training images`);
    } finally {
      norms.forEach((l, i) => (l.momentum = momenta[i]));
      dropouts.forEach((l, i) => (l.rate = rates[i]));
    }
  }

  /** Loss and accuracy on a set; with `probs`, also every per-character probability. */
  private async evaluate(model: tfl.LayersModel, set: TrainSet, probs?: Float32Array): Promise<EvalMetrics> {
    const { shape, params } = this.input;
    const per = shape.length * shape.classes;
    let lossSum = 0;
    let seqs = 0;
    let seen = 0;
    const byPosition = new Array<number>(shape.length).fill(0);
    const reg = l2Penalty(model, params.alpha);
    const regValue = reg ? reg.dataSync()[0] : 0;
    reg?.dispose();
    // Inference keeps no gradients: it can take larger batches than training micro-batches.
    for await (const b of set.batches({ batchSize: Math.max(this.micro, 32), shuffle: false, seed: 0, epoch: 0 })) {
      const [lossT, argmaxT, probsT] = tf.tidy(() => {
        const x = imageTensor(b.x, b.n, shape);
        const outputs = model.apply(x, { training: false }) as tf.Tensor[];
        const stacked = tf.stack(outputs, 1);
        return [ceLoss(outputs, oneHot(b.y, b.n, shape.length, shape.classes)), tf.argMax(stacked, 2), stacked];
      });
      const r = {
        loss: lossT.dataSync()[0],
        argmax: argmaxT.dataSync() as Int32Array,
        probs: probs ? (probsT.dataSync() as Float32Array) : null,
      };
      tf.dispose([lossT, argmaxT, probsT]);
      if (probs && r.probs) probs.set(r.probs, seen * per);
      for (let i = 0; i < b.n; i++) {
        let all = true;
        for (let j = 0; j < shape.length; j++) {
          if (r.argmax[i * shape.length + j] === b.y[i * shape.length + j]) byPosition[j]++;
          else all = false;
        }
        if (all) seqs++;
      }
      lossSum += r.loss;
      seen += b.n;
    }
    return {
      loss: lossSum / seen + regValue,
      char_acc: byPosition.reduce((a, c) => a + c, 0) / (seen * shape.length),
      seq_acc: seqs / seen,
      char_acc_by_position: byPosition.map((c) => c / seen),
    };
  }

  private async finish(): Promise<TrialResult> {
    const finalPhase: Phase = this.state.best.gru ? 'gru' : 'pretrain';
    const best = this.state.best[finalPhase];
    if (!best) throw new Error('no epoch was trained: pretrain_epochs and gru_epochs are both 0');
    const model = await this.checkpoints.loadModel(best.dir);
    try {
      return await writeOutputs(this.input, this.state, model, (m, set, probs) => this.evaluate(m, set, probs));
    } finally {
      model.dispose();
    }
  }
}

/** Trains one trial into `outDir`, resuming from its last checkpoint when there is one. */
export async function trainTrial(input: TrainInput): Promise<TrialResult> {
  return new TrainingRun(input).run();
}
