/**
 * One trained model ready to read CAPTCHAs: a trial's `model/` directory (TF.js layers format,
 * written by the trainer) loaded and, by default, folded for inference (see fold.ts): each
 * conv + BatchNorm + ReLU becomes one fused conv op, dropout goes, the GRU's input projection
 * is computed once (RepeatVector feeds it the same features at every step) and the heads run
 * as one batched matMul. Plain tf ops, so it runs on every backend; on wasm the fused convs go
 * to the native kernels when they are built (src/train/native-kernels.ts).
 *
 * `fold: false` keeps the loaded LayersModel and its `predict` (the reference the folded path
 * is tested against, and the benchmark's baseline).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '../train/tf.ts';
import { tfl } from '../train/tf.ts';
import { fileUrl, registerFileRouter } from '../train/io.ts';
import { describeProblems, modelProblems } from '../train/integrity.ts';
// Registers the custom layers (ResetAfterGRU, InputConv2D, TimeStep) the saved models name.
import '../train/model.ts';
import { UserError } from '../util/errors.ts';
import { planFromModel, UnfoldableModel, type InferencePlan } from './fold.ts';

export interface Member {
  /** The image size the model takes. */
  readonly height: number;
  readonly width: number;
  /** Characters per image and classes per character. */
  readonly length: number;
  readonly classes: number;
  /** Whether BatchNorm is folded into the convolutions (false: LayersModel.predict). */
  readonly folded: boolean;
  /**
   * Per-character probabilities [n, length, classes] of images [n, height, width, 3], float32
   * RGB in [0, 1] as the trainer feeds them. The caller disposes the result; `x` is not consumed.
   */
  predict(x: tf.Tensor4D): tf.Tensor3D;
  dispose(): void;
}

export interface LoadMemberOptions {
  /** Fold BatchNorm into the convolutions (default true); false keeps LayersModel.predict. */
  fold?: boolean;
  /**
   * Images per forward pass (default 32, as LayersModel.predict): a larger `predict` batch runs
   * in pieces. On one CPU core a pass of 128 ran about half as fast per image as passes of 32
   * (bench/predict.ts): the activations no longer stay in cache between layers.
   */
  chunk?: number;
}

/** Loads `modelDir/model.json` (+ weights.bin). A missing or unreadable model is a UserError naming it. */
export async function loadMember(modelDir: string, opts: LoadMemberOptions = {}): Promise<Member> {
  const path = join(modelDir, 'model.json');
  if (!existsSync(path)) throw new UserError(`${modelDir}: no model.json there (expected a trained model's directory, as a trial's model/)`);
  // Checked as export checks it (integrity.ts): the file list when there is one, else the manifest.
  const problems = modelProblems(modelDir);
  if (problems.length) throw new UserError(`${modelDir}: the model is damaged: ${describeProblems(problems)}`);
  registerFileRouter();
  let model: tfl.LayersModel;
  try {
    model = await tfl.loadLayersModel(fileUrl(path));
  } catch (e) {
    throw new UserError(`${path}: cannot be loaded as a TF.js layers model (${String((e as Error).message ?? e).split('\n')[0]})`);
  }
  if (opts.fold === false) return layersMember(model);
  try {
    const plan = planFromModel(model);
    return foldedMember(plan, opts.chunk);
  } catch (e) {
    if (e instanceof UnfoldableModel) throw new UserError(`${path}: not a recognizer this version can fold (${e.message}); load it with fold: false`);
    throw e;
  } finally {
    model.dispose();
  }
}

/** The unfolded reference: LayersModel.predict, the heads stacked. */
export function layersMember(model: tfl.LayersModel): Member {
  const [, height, width] = model.inputs[0].shape as number[];
  const heads = model.outputs;
  return {
    height,
    width,
    length: heads.length,
    classes: heads[0].shape[1] as number,
    folded: false,
    predict: (x) =>
      tf.tidy(() => {
        const out = model.predict(x);
        return tf.stack(Array.isArray(out) ? out : [out], 1) as tf.Tensor3D;
      }),
    dispose: () => model.dispose(),
  };
}

/** The folded inference function of a plan; its weights live as tensors until dispose(). */
export function foldedMember(plan: InferencePlan, chunk = 32): Member {
  if (!(Number.isInteger(chunk) && chunk > 0)) throw new RangeError(`chunk must be a positive integer, got ${chunk}`);
  const kept: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    kept.push(t);
    return t;
  };
  const trunk = plan.trunk.map((op) =>
    op.kind === 'conv'
      ? { ...op, filter: keep(tf.tensor4d(op.kernel, op.shape)), b: keep(tf.tensor1d(op.bias)) }
      : { ...op, filter: null, b: null },
  );
  const { length: L, classes: C } = plan;
  const inputs = plan.gru ? plan.gru.units : plan.features;
  // Pretrain heads all read the pooled features: one [F, L*C] matMul. GRU heads read step i:
  // one batched matMul [L, n, U] x [L, U, C].
  const headKernel = plan.gru
    ? keep(tf.tensor3d(plan.headKernels, [L, inputs, C]))
    : keep(tf.tidy(() => tf.reshape(tf.transpose(tf.tensor3d(plan.headKernels, [L, inputs, C]), [1, 0, 2]), [inputs, L * C])));
  const headBias = plan.gru ? keep(tf.tensor3d(plan.headBiases, [L, 1, C])) : keep(tf.tensor1d(plan.headBiases));
  const gru = plan.gru && {
    units: plan.gru.units,
    kernel: keep(tf.tensor2d(plan.gru.kernel, [plan.features, 3 * plan.gru.units])),
    recurrent: keep(tf.tensor2d(plan.gru.recurrentKernel, [plan.gru.units, 3 * plan.gru.units])),
    inputBias: keep(tf.tensor1d(plan.gru.inputBias)),
    recurrentBias: keep(tf.tensor1d(plan.gru.recurrentBias)),
  };

  const features = (x: tf.Tensor4D): tf.Tensor2D => {
    // Each activation is freed as soon as the next layer has read it: its memory is then reused,
    // still in cache, two layers on (inside one tidy they would all live to its end).
    let h = x;
    for (const op of trunk) {
      const next: tf.Tensor4D =
        op.kind === 'conv'
          ? tf.fused.conv2d({ x: h, filter: op.filter!, bias: op.b!, strides: 1, pad: op.padding, activation: op.relu ? 'relu' : 'linear' })
          : tf.maxPool(h, op.size, op.strides, op.padding);
      if (h !== x) h.dispose();
      h = next;
    }
    const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
    if (h !== x) h.dispose();
    return pooled;
  };

  /** ResetAfterGRU over L steps of the same input: its projection is computed once. */
  const recur = (f: tf.Tensor2D): tf.Tensor3D => {
    const g = gru!;
    const n = f.shape[0];
    const [xz, xr, xh] = tf.split(tf.add(tf.matMul(f, g.kernel), g.inputBias), 3, 1);
    let h: tf.Tensor2D = tf.zeros([n, g.units]);
    const steps: tf.Tensor2D[] = [];
    for (let t = 0; t < L; t++) {
      const [hz, hr, hh] = tf.split(tf.add(tf.matMul(h, g.recurrent), g.recurrentBias), 3, 1);
      const z = tf.sigmoid(tf.add(xz, hz));
      const r = tf.sigmoid(tf.add(xr, hr));
      const candidate = tf.tanh(tf.add(xh, tf.mul(r, hh)));
      h = tf.add(candidate, tf.mul(z, tf.sub(h, candidate))) as tf.Tensor2D; // z*h + (1-z)*candidate
      steps.push(h);
    }
    return tf.stack(steps, 0) as tf.Tensor3D; // [L, n, U]
  };

  return {
    height: plan.height,
    width: plan.width,
    length: L,
    classes: C,
    folded: true,
    predict: (x) =>
      tf.tidy(() => {
        const [n, H, W] = x.shape;
        if (H !== plan.height || W !== plan.width) throw new Error(`images are ${W}x${H}, the model takes ${plan.width}x${plan.height}`);
        if (n <= chunk) return forward(x);
        const parts: tf.Tensor3D[] = [];
        // Each piece in a tidy of its own, so its intermediates are freed before the next. Sliced
        // as rows of a 2-D view: wasm's 4-D Slice took as long as a width-0.125 forward pass.
        const rows = tf.reshape(x, [n, H * W * 3]);
        for (let s = 0; s < n; s += chunk) {
          const m = Math.min(chunk, n - s);
          parts.push(tf.tidy(() => forward(tf.reshape(tf.slice(rows, [s, 0], [m, H * W * 3]), [m, H, W, 3]))));
        }
        return tf.concat(parts, 0);
      }),
    dispose: () => tf.dispose(kept),
  };

  function forward(x: tf.Tensor4D): tf.Tensor3D {
    const n = x.shape[0];
    const f = features(x);
    if (!gru) {
      const logits = tf.reshape(tf.add(tf.matMul(f, headKernel as tf.Tensor2D), headBias), [n, L, C]);
      return tf.softmax(logits) as tf.Tensor3D;
    }
    const logits = tf.add(tf.matMul(recur(f), headKernel as tf.Tensor3D), headBias); // [L, n, C]
    return tf.softmax(tf.transpose(logits, [1, 0, 2])) as tf.Tensor3D;
  }
}
