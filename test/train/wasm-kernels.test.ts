/**
 * The wasm training kernels against the cpu backend, which keeps the stock tfjs kernels and
 * gradients (our gradients only change behaviour on wasm). Both backends live in one process and
 * every case is computed on each from the same plain arrays.
 *
 * Tolerance: 1e-5 absolute on small tensors with values ~U(-1,1). The replacements add in a
 * different order than the cpu loops; at these sizes (sums of at most a few hundred terms of
 * magnitude < 1) float32 reordering error stays well below that.
 */
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.ts';
import { nativeKernels } from '../../src/train/native-kernels.ts';
import {
  REQUIRED_WASM_TRAINING_KERNELS,
  WASM_TRAINING_KERNELS,
  availableWasmTrainingKernels,
  registerWasmTrainingKernels,
  type WasmTrainingKernel,
} from '../../src/train/wasm-kernels.ts';

type TF = Awaited<ReturnType<typeof initBackend>>['tf'];
type Input = { shape: number[]; values: Float32Array };
type Outputs = { shape: number[]; values: Float32Array }[];

let tf: TF;
const TOL = 1e-5;

beforeAll(async () => {
  await initBackend('cpu');
  ({ tf } = await initBackend('wasm'));
});

/** Deterministic values ~U(-1,1) (xorshift32). */
function uniform(shape: number[], seed: number): Input {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    values[i] = ((s >>> 0) / 0xffffffff) * 2 - 1;
  }
  return { shape, values };
}

/** Runs f on a backend with fresh tensors made from `inputs`; returns every output's values. */
async function on(backend: string, inputs: Input[], f: (...t: Tensor[]) => Tensor | Tensor[]): Promise<Outputs> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const r = f(...inputs.map((i) => tf.tensor(i.values, i.shape)));
    return Array.isArray(r) ? r : [r];
  });
  const res = out.map((t) => ({ shape: t.shape, values: t.dataSync() as Float32Array }));
  tf.dispose(out);
  expect(tf.memory().numTensors, `tensors leaked on ${backend}`).toBe(before);
  await tf.setBackend('wasm');
  return res;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** f on cpu and on wasm agree within tol, output by output. Returns the worst difference. */
async function expectSameOnBoth(inputs: Input[], f: (...t: Tensor[]) => Tensor | Tensor[], tol = TOL): Promise<number> {
  const cpu = await on('cpu', inputs, f);
  const wasm = await on('wasm', inputs, f);
  expect(wasm.length).toBe(cpu.length);
  let worst = 0;
  cpu.forEach((c, i) => {
    expect(wasm[i].shape, `output ${i} shape`).toEqual(c.shape);
    const d = maxAbsDiff(c.values, wasm[i].values);
    expect(d, `output ${i}`).toBeLessThanOrEqual(tol);
    worst = Math.max(worst, d);
  });
  return worst;
}

const as4 = (t: Tensor) => t as Tensor4D;

describe('registration', () => {
  it('registers every replacement idempotently and can put the stock ones back', () => {
    const first = registerWasmTrainingKernels(tf);
    expect(registerWasmTrainingKernels(tf)).toEqual(first);
    expect(first).toEqual(expect.arrayContaining(['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'FusedBatchNorm gradient']));
    const ours = tf.getKernel('Conv2DBackpropInput', 'wasm');
    registerWasmTrainingKernels(tf, REQUIRED_WASM_TRAINING_KERNELS);
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')).not.toBe(ours);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    registerWasmTrainingKernels(tf, []);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    registerWasmTrainingKernels(tf, availableWasmTrainingKernels());
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')).not.toBeUndefined();
  });

  it('stock wasm cannot train a conv net (why this file exists)', async () => {
    registerWasmTrainingKernels(tf, []);
    try {
      expect(() => tf.tidy(() => tf.grad((f: Tensor) => tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]) as Tensor4D, as4(f), 1, 'valid')))(tf.ones([3, 3, 1, 1])))).toThrow(
        /Conv2DBackpropFilter/,
      );
    } finally {
      registerWasmTrainingKernels(tf);
    }
  });
});

/** Every replacement but the native ones: the compositions the native kernels fall back to. */
const WITHOUT_NATIVE = WASM_TRAINING_KERNELS.filter((id) => !id.startsWith('native'));

// The addon is optional; CI (and SWEEP_REQUIRE_NATIVE=1) requires it, elsewhere its cases need a build.
const nativeRequired = process.env.CI === 'true' || process.env.SWEEP_REQUIRE_NATIVE === '1';
const nativeBuilt = nativeKernels().addon != null;

describe('native kernels', () => {
  it.skipIf(!nativeBuilt && !nativeRequired)('are built and load on this machine (npm ci builds them; the speed figures assume them)', () => {
    const { addon, reason } = nativeKernels();
    expect(addon, reason).not.toBeNull();
    expect(availableWasmTrainingKernels()).toEqual(WASM_TRAINING_KERNELS);
  });

  it.skipIf(nativeBuilt)('without the addon only the wasm replacements are available, and asking for a native one says why', () => {
    expect(availableWasmTrainingKernels()).toEqual(WITHOUT_NATIVE);
    expect(() => registerWasmTrainingKernels(tf, WASM_TRAINING_KERNELS)).toThrow(/native kernels are not available: /);
  });
});

describe.each(
  (nativeBuilt || nativeRequired
    ? [['native', WASM_TRAINING_KERNELS], ['composed', WITHOUT_NATIVE]]
    : [['composed', WITHOUT_NATIVE]]) as [string, readonly WasmTrainingKernel[]][],
)('conv2d and its gradients vs cpu (%s kernels)', (_, kernels) => {
  beforeAll(() => {
    registerWasmTrainingKernels(tf, kernels);
    return () => registerWasmTrainingKernels(tf);
  });

  const cases: { k: number; kw?: number; pad: 'valid' | 'same'; cin: number; cout: number; h: number; w: number }[] = [];
  for (const k of [1, 2, 3, 4, 5, 7]) for (const pad of ['valid', 'same'] as const) cases.push({ k, pad, cin: 3, cout: 4, h: 9, w: 11 });
  cases.push({ k: 3, pad: 'same', cin: 8, cout: 6, h: 6, w: 7 });
  cases.push({ k: 4, pad: 'same', cin: 2, cout: 3, h: 6, w: 7 }); // even kernel: asymmetric 'same' padding
  // Wide kernels (kernel_width): odd and even widths, both paddings.
  for (const [k, kw] of [[3, 7], [4, 6], [2, 5]]) for (const pad of ['valid', 'same'] as const) cases.push({ k, kw, pad, cin: 3, cout: 4, h: 7, w: 12 });

  it.each(cases)('k=$k kw=$kw $pad $cin->$cout, batch 2, $h x $w', async ({ k, kw = k, pad, cin, cout, h, w }) => {
    const x = uniform([2, h, w, cin], 11 + k + kw);
    const filter = uniform([k, kw, cin, cout], 23 + k + kw);
    const hOut = pad === 'same' ? h : h - k + 1;
    const wOut = pad === 'same' ? w : w - kw + 1;
    const dy = uniform([2, hOut, wOut, cout], 37 + k);
    // conv2DBackpropInput is public as conv2dTranspose; conv2DBackpropFilter only via the gradient.
    await expectSameOnBoth([x, filter, dy], (xt, ft, dyt) => [
      tf.conv2d(as4(xt), as4(ft), 1, pad),
      tf.conv2dTranspose(as4(dyt), as4(ft), [2, h, w, cin], 1, pad),
      ...tf.grads((a: Tensor, f: Tensor) => tf.sum(tf.mul(tf.conv2d(as4(a), as4(f), 1, pad), dyt)))([xt, ft]),
    ]);
  });

  it('fused conv2d with bias (the path tfjs-layers takes) gives the same gradients', async () => {
    const x = uniform([2, 8, 10, 3], 5);
    const filter = uniform([5, 5, 3, 4], 6);
    const bias = uniform([4], 7);
    const dy = uniform([2, 4, 6, 4], 8);
    await expectSameOnBoth([x, filter, bias, dy], (xt, ft, bt, dyt) =>
      tf.grads((a: Tensor, f: Tensor, b: Tensor) =>
        tf.sum(tf.mul(tf.fused.conv2d({ x: as4(a), filter: as4(f), strides: 1, pad: 'valid', bias: b }), dyt)),
      )([xt, ft, bt]),
    );
  });

  it('fused conv2d with ReLU, explicit padding, and more than 32 output channels (several vector groups and a tail)', async () => {
    const x = uniform([2, 6, 9, 5], 12);
    const filter = uniform([3, 2, 5, 44], 13);
    const bias = uniform([44], 14);
    const dy = uniform([2, 6, 9, 44], 17);
    await expectSameOnBoth([x, filter, bias, dy], (xt, ft, bt, dyt) => [
      tf.fused.conv2d({ x: as4(xt), filter: as4(ft), strides: 1, pad: 'same', bias: bt, activation: 'relu' }),
      tf.fused.conv2d({ x: as4(xt), filter: as4(ft), strides: 1, pad: [[0, 0], [2, 1], [0, 3], [0, 0]], bias: bt }),
      tf.conv2d(as4(xt), as4(ft), 1, [[0, 0], [1, 0], [2, 2], [0, 0]]),
      ...tf.grads((a: Tensor, f: Tensor) => tf.sum(tf.mul(tf.conv2d(as4(a), as4(f), 1, 'same'), dyt)))([xt, ft]),
    ]);
  });

  it('dilated and leaky-ReLU convs go to the kernels the native ones replace', async () => {
    const x = uniform([1, 9, 9, 3], 15);
    const filter = uniform([3, 3, 3, 4], 16);
    await expectSameOnBoth([x, filter], (xt, ft) => [
      tf.conv2d(as4(xt), as4(ft), 1, 'same', 'NHWC', 2),
      tf.fused.conv2d({ x: as4(xt), filter: as4(ft), strides: 1, pad: 'valid', activation: 'leakyrelu', leakyreluAlpha: 0.1 }),
    ]);
  });

  it('strided conv: filter gradient by dilation, input gradient by the stock kernel', async () => {
    const x = uniform([2, 9, 10, 3], 9);
    const filter = uniform([3, 3, 3, 2], 10);
    const dy = uniform([2, 5, 5, 2], 11);
    await expectSameOnBoth([x, filter, dy], (xt, ft, dyt) =>
      tf.grads((a: Tensor, f: Tensor) => tf.sum(tf.mul(tf.conv2d(as4(a), as4(f), 2, 'same'), dyt)))([xt, ft]),
    );
  });
});

describe('batch norm gradient vs cpu', () => {
  it('training mode: moments of the batch, gamma and beta, all five inputs', async () => {
    const x = uniform([2, 5, 6, 4], 41);
    const gamma = uniform([4], 42);
    const beta = uniform([4], 43);
    const dy = uniform([2, 5, 6, 4], 44);
    // As tfjs-layers does in training: moments over [0,1,2] feed batchNorm, all differentiable.
    await expectSameOnBoth([x, gamma, beta, dy], (xt, g, b, dyt) =>
      tf.grads((a: Tensor, gg: Tensor, bb: Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.sum(tf.mul(tf.batchNorm4d(as4(a), mean as Tensor4D, variance as Tensor4D, bb as Tensor4D, gg as Tensor4D, 1e-3), dyt));
      })([xt, g, b]),
    );
  });

  // tfjs cannot differentiate batchNorm without a scale on any backend (it saves `undefined` for
  // the tape), so every case has gamma, as BatchNormalization layers with scale=true do.
  it('inference mode: fixed statistics, all inputs differentiated', async () => {
    const x = uniform([2, 3, 4, 5], 51);
    const mean = uniform([5], 52);
    const variance = { shape: [5], values: uniform([5], 53).values.map((v) => v + 1.5) };
    const gamma = uniform([5], 54);
    const beta = uniform([5], 55);
    const dy = uniform([2, 3, 4, 5], 56);
    await expectSameOnBoth([x, mean, variance, gamma, beta, dy], (xt, m, v, g, b, dyt) =>
      tf.grads((a: Tensor, mm: Tensor, vv: Tensor, gg: Tensor, bb: Tensor) =>
        tf.sum(tf.mul(tf.batchNorm4d(as4(a), mm as Tensor4D, vv as Tensor4D, bb as Tensor4D, gg as Tensor4D, 1e-3), dyt)),
      )([xt, m, v, g, b]),
    );
  });

  it('statistics and parameters of shape [1,1,1,C] (the layers broadcast path)', async () => {
    // The stock gradient cannot do this case at all (it reshapes a full-size tensor to the
    // statistics' shape), so the cpu reference runs the same math with [C]-shaped parameters.
    const x = uniform([2, 3, 4, 5], 61);
    const gamma = uniform([5], 62);
    const beta = uniform([5], 63);
    const dy = uniform([2, 3, 4, 5], 64);
    const run = (keep: boolean) => (xt: Tensor, g: Tensor, b: Tensor, dyt: Tensor) => {
      const shape = keep ? [1, 1, 1, 5] : [5];
      const [gx, gg, gb] = tf.grads((a: Tensor, gg: Tensor, bb: Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2], keep);
        return tf.sum(tf.mul(tf.batchNorm4d(as4(a), mean as Tensor4D, variance as Tensor4D, bb as Tensor4D, gg as Tensor4D, 1e-3), dyt));
      })([xt, tf.reshape(g, shape), tf.reshape(b, shape)]);
      return [gx, tf.reshape(gg, [5]), tf.reshape(gb, [5])];
    };
    const cpu = await on('cpu', [x, gamma, beta, dy], run(false));
    const wasm = await on('wasm', [x, gamma, beta, dy], run(true));
    cpu.forEach((c, i) => expect(maxAbsDiff(c.values, wasm[i].values), `output ${i}`).toBeLessThanOrEqual(TOL));
  });
});

describe('per-channel ops vs cpu', () => {
  it('batchNorm forward with [C] and [1,1,1,C] statistics, with and without scale and offset', async () => {
    const x = uniform([2, 3, 5, 6], 121);
    const mean = uniform([6], 122);
    const variance = { shape: [6], values: uniform([6], 123).values.map((v) => v + 1.5) };
    const gamma = uniform([6], 124);
    const beta = uniform([6], 125);
    await expectSameOnBoth([x, mean, variance, gamma, beta], (xt, m, v, g, b) => {
      const r = (t: Tensor) => tf.reshape(t, [1, 1, 1, 6]) as Tensor4D;
      return [
        tf.batchNorm4d(as4(xt), m as Tensor4D, v as Tensor4D, b as Tensor4D, g as Tensor4D, 1e-3),
        tf.batchNorm4d(as4(xt), r(m), r(v), r(b), r(g), 1e-3),
        tf.batchNorm(xt, m, v, undefined, undefined, 1e-5),
        tf.batchNorm(tf.reshape(xt, [30, 6]), m, v, b, g, 0.1),
      ];
    });
  });

  it('add, sub, mul, div of a tensor and a vector of its channels, either order; other broadcasts and int32 untouched', async () => {
    const x = uniform([2, 3, 4, 5], 131);
    const v = uniform([5], 132);
    const row = uniform([4, 1], 133);
    await expectSameOnBoth([x, v, row], (xt, vt, rt) => {
      const v3 = tf.reshape(vt, [1, 1, 5]);
      const out: Tensor[] = [];
      for (const f of [tf.add, tf.sub, tf.mul, tf.div]) {
        out.push(f(xt, vt), f(vt, xt), f(xt, v3), f(v3, xt), f(xt, rt), f(xt, xt));
      }
      const xi = tf.cast(tf.mul(xt, 10), 'int32');
      out.push(tf.cast(tf.sub(xi, tf.cast(tf.mul(vt, 10), 'int32')), 'float32'));
      return out;
    });
  });
});

describe('reductions and their gradients vs cpu', () => {
  const x = uniform([3, 4, 5, 6], 71);
  it.each([
    { axes: [0, 1, 2], keep: false },
    { axes: [0, 1, 2], keep: true },
    { axes: [1, 2], keep: false }, // global average pooling
    { axes: [0], keep: false },
    { axes: [3], keep: false }, // innermost: stock kernel
    { axes: [0, 2], keep: true }, // not contiguous: stock kernel
    { axes: [0, 1, 2, 3], keep: false },
  ])('sum and mean over $axes (keepDims $keep), values and gradients', async ({ axes, keep }) => {
    const dyShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d)).filter((_, i) => keep || !axes.includes(i));
    const dy = uniform(dyShape, 72);
    await expectSameOnBoth([x, dy], (xt, dyt) => [
      tf.sum(xt, axes, keep),
      tf.mean(xt, axes, keep),
      tf.grad((a: Tensor) => tf.sum(tf.mul(tf.mean(a, axes, keep), dyt)))(xt),
      tf.grad((a: Tensor) => tf.sum(tf.mul(tf.sum(a, axes, keep), dyt)))(xt),
    ]);
  });

  it('int32 sums and casts stay on the stock kernels', async () => {
    await expectSameOnBoth([x], (xt) => {
      const i = tf.cast(tf.mul(xt, 10), 'int32');
      return [tf.cast(tf.sum(i, [0, 1, 2]), 'float32'), tf.cast(i, 'float32'), tf.clone(xt), tf.cast(xt, 'float32')];
    });
  });

});

describe('max pool gradient vs cpu', () => {
  it('2x2 valid, odd sizes (the last row and column are dropped)', async () => {
    const xi = uniform([2, 7, 9, 3], 81);
    const dy = uniform([2, 3, 4, 3], 82);
    await expectSameOnBoth([xi, dy], (xt, dyt) => tf.grad((a: Tensor) => tf.sum(tf.mul(tf.maxPool(as4(a), 2, 2, 'valid'), dyt)))(xt));
  });

  it('windows whose maximum is negative or zero, and ties: the first maximum gets the gradient', async () => {
    // Stock wasm gives these to the first position (all-negative, zero max) and the last (ties).
    const windows = [-1, -2, -3, -0.5, 0, 0, 0, 0, -1, 0, -2, -3, 2, 1, 2, 2, 1, 3, 2, 0, Number.NaN, 1, 2, 0];
    const xi = { shape: [1, 2, 12, 1], values: new Float32Array(24) };
    // Lay the six 2x2 windows side by side: window k is columns 2k, 2k+1.
    for (let k = 0; k < 6; k++) for (let i = 0; i < 4; i++) xi.values[(i >> 1) * 12 + 2 * k + (i & 1)] = windows[4 * k + i];
    await expectSameOnBoth([xi], (xt) => tf.grad((a: Tensor) => tf.sum(tf.maxPool(as4(a), 2, 2, 'valid')))(xt));
  });

  it.each([
    { f: 3, s: 2, pad: 'same' as const },
    { f: 3, s: 1, pad: 'valid' as const },
    { f: 2, s: 1, pad: 'same' as const },
  ])('overlapping or padded windows: $f x $f stride $s $pad', async ({ f, s, pad }) => {
    const xi = uniform([2, 7, 8, 3], 83);
    await expectSameOnBoth([xi], (xt) => tf.grad((a: Tensor) => tf.sum(tf.square(tf.maxPool(as4(a), f, s, pad))))(xt));
  });
});

describe('matMul with transposed operands vs cpu', () => {
  it.each([
    { ta: false, tb: false },
    { ta: true, tb: false },
    { ta: false, tb: true },
    { ta: true, tb: true },
  ])('transposeA $ta transposeB $tb, 2-D and batched, plain and fused', async ({ ta, tb }) => {
    const a = uniform(ta ? [7, 5] : [5, 7], 101);
    const b = uniform(tb ? [6, 7] : [7, 6], 102);
    const a3 = uniform(ta ? [3, 7, 5] : [3, 5, 7], 103);
    const b3 = uniform(tb ? [3, 6, 7] : [3, 7, 6], 104);
    const bias = uniform([6], 105);
    await expectSameOnBoth([a, b, a3, b3, bias], (at, bt, a3t, b3t, biast) => [
      tf.matMul(at, bt, ta, tb),
      tf.matMul(a3t, b3t, ta, tb),
      tf.fused.matMul({ a: at, b: bt, transposeA: ta, transposeB: tb, bias: biast, activation: 'relu' }),
      ...tf.grads((x: Tensor, y: Tensor) => tf.sum(tf.square(tf.matMul(x, y, ta, tb))))([at, bt]),
    ]);
  });
});

describe('identity and cast share buffers', () => {
  it('a clone outlives its source and reads the same values', () => {
    const a = tf.tensor([1, 2, 3]);
    const b = tf.clone(a);
    const c = tf.cast(a, 'float32');
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3]);
    b.dispose();
    expect(Array.from(c.dataSync())).toEqual([1, 2, 3]);
    c.dispose();
  });
});

/**
 * A tiny model with every layer kind of the recognizer: Conv2D(valid)+BN+ReLU,
 * Conv2D(same)+BN+ReLU, MaxPool 2x2, Dropout, GlobalAveragePooling2D, RepeatVector,
 * GRU(return_sequences), Dense softmax, categorical crossentropy, Adam, L2 regularizer.
 */
function tinyModel(kernel: number, dropout: number): tfl.LayersModel {
  const reg = tfl.regularizers.l2({ l2: 1e-3 });
  const init = (seed: number) => tfl.initializers.heNormal({ seed });
  const m = tfl.sequential();
  m.add(tfl.layers.conv2d({ inputShape: [14, 18, 3], filters: 4, kernelSize: kernel, padding: 'valid', kernelInitializer: init(1), kernelRegularizer: reg }));
  m.add(tfl.layers.batchNormalization());
  m.add(tfl.layers.activation({ activation: 'relu' }));
  m.add(tfl.layers.conv2d({ filters: 4, kernelSize: kernel, padding: 'same', kernelInitializer: init(2), kernelRegularizer: reg }));
  m.add(tfl.layers.batchNormalization());
  m.add(tfl.layers.activation({ activation: 'relu' }));
  m.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tfl.layers.dropout({ rate: dropout, seed: 3 }));
  m.add(tfl.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'valid', kernelInitializer: init(4), kernelRegularizer: reg }));
  m.add(tfl.layers.batchNormalization());
  m.add(tfl.layers.activation({ activation: 'relu' }));
  m.add(tfl.layers.globalAveragePooling2d({}));
  m.add(tfl.layers.repeatVector({ n: 3 }));
  m.add(tfl.layers.gru({ units: 6, returnSequences: true, kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }), recurrentInitializer: tfl.initializers.glorotUniform({ seed: 6 }) }));
  m.add(tfl.layers.dense({ units: 5, activation: 'softmax', kernelInitializer: init(7) }));
  m.compile({ optimizer: tf.train.adam(1e-2), loss: 'categoricalCrossentropy' });
  return m;
}

describe('one training step of a tiny recognizer', () => {
  const xs = uniform([4, 14, 18, 3], 91);
  const labels = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1];
  const ys = { shape: [4, 3, 5], values: new Float32Array(60).map((_, i) => (labels[Math.floor(i / 5)] === i % 5 ? 1 : 0)) };

  /** Loss and gradients of every trainable weight, as trainOnBatch computes them (L2 included). */
  async function gradients(backend: string, kernel: number): Promise<{ loss: number; grads: Float32Array[]; kernels: string[] }> {
    await tf.setBackend(backend);
    const model = tinyModel(kernel, 0); // dropout 0: its random mask is not what is compared here
    const x = tf.tensor(xs.values, xs.shape);
    const y = tf.tensor(ys.values, ys.shape);
    const vars = model.trainableWeights.map((w) => (w as unknown as { val: import('@tensorflow/tfjs-core').Variable }).val);
    let loss = 0;
    let grads: Float32Array[] = [];
    const profile = await tf.profile(() => {
      const { value, grads: g } = tf.variableGrads(() => {
        const out = model.apply(x, { training: true }) as Tensor;
        const ce = tf.mean(tfl.metrics.categoricalCrossentropy(y, out));
        return tf.addN([ce, ...model.losses.map((l) => (typeof l === 'function' ? l() : l) as Tensor)]) as import('@tensorflow/tfjs-core').Scalar;
      }, vars);
      loss = value.dataSync()[0];
      grads = vars.map((v) => g[v.name].dataSync() as Float32Array);
      tf.dispose([value, ...Object.values(g)]);
    });
    tf.dispose([x, y]);
    model.dispose();
    await tf.setBackend('wasm');
    return { loss, grads, kernels: [...new Set(profile.kernels.map((k) => k.name))].sort() };
  }

  it.each([3, 5, 7])('kernel %i: the loss and every gradient match cpu', async (kernel) => {
    const cpu = await gradients('cpu', kernel);
    const wasm = await gradients('wasm', kernel);
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThanOrEqual(TOL);
    cpu.grads.forEach((g, i) => expect(maxAbsDiff(g, wasm.grads[i]), `gradient ${i}`).toBeLessThanOrEqual(TOL));
    for (const name of ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'FusedBatchNorm', 'MaxPoolGrad']) {
      expect(wasm.kernels).toContain(name);
    }
  });

  it.each([
    ['all replacements', availableWasmTrainingKernels()],
    ['only the missing kernel', REQUIRED_WASM_TRAINING_KERNELS],
  ] as const)('model.fit with Adam and dropout runs on wasm with %s', async (_, kernels) => {
    registerWasmTrainingKernels(tf, kernels);
    try {
      const model = tinyModel(3, 0.3);
      const x = tf.tensor(xs.values, xs.shape);
      const y = tf.tensor(ys.values, ys.shape);
      const before = model.getWeights().map((w) => w.dataSync().slice());
      const history = await model.fit(x, y, { epochs: 2, batchSize: 2, verbose: 0 });
      const losses = history.history.loss as number[];
      expect(losses.every(Number.isFinite)).toBe(true);
      const after = model.getWeights().map((w) => w.dataSync());
      expect(before.some((w, i) => maxAbsDiff(w as Float32Array, after[i] as Float32Array) > 0)).toBe(true);
      tf.dispose([x, y]);
      model.dispose();
    } finally {
      registerWasmTrainingKernels(tf);
    }
  });
});
