/**
 * One training step (forward + backward + Adam) of the recognizer on the wasm backend, with the
 * training kernels of src/train/wasm-kernels.ts switched on one by one.
 *
 *   npx tsx bench/kernels.ts [--kernel 3] [--batch 32] [--width 0.25] [--rounds 3] [--layers]
 *
 * Stock wasm cannot train a conv net at all (no Conv2DBackpropFilter), so the first row has that
 * one kernel and nothing else; each further row adds one replacement. Configurations take turns
 * step by step, so load from other processes on a shared machine spreads over all of them; the
 * table shows the median and the best step. Times are this process's CPU time: wasm runs on one
 * thread, so on an idle machine that is the wall time (also shown), and on a shared one it is far
 * steadier. `--layers` adds a table of the conv backprop formulations per layer of the model.
 *
 * The last two rows are the native kernels (src/train/native-kernels.ts), where the addon loads.
 * The tables go to bench/results/kernels.md and .json.
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import type { Tensor, Tensor4D, Variable, Scalar } from '@tensorflow/tfjs-core';
import { initBackend } from '../src/train/backend.ts';
import {
  availableWasmTrainingKernels,
  registerWasmTrainingKernels,
  WASM_TRAINING_KERNELS,
  REQUIRED_WASM_TRAINING_KERNELS,
  type WasmTrainingKernel,
} from '../src/train/wasm-kernels.ts';
import { buildGruModel, filtersFor, l2Penalty, type ModelSpec } from '../src/train/model.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: opts } = parseArgs({
  options: {
    kernel: { type: 'string', default: '3' },
    batch: { type: 'string', default: '32' },
    width: { type: 'string', default: '0.25' },
    rounds: { type: 'string', default: '3' },
    layers: { type: 'boolean', default: false },
  },
});
const K = Number(opts.kernel);
const B = Number(opts.batch);
const WIDTH = Number(opts.width);
const ROUNDS = Number(opts.rounds);

const started = runStart();
const { tf, reason } = await initBackend('wasm');

const spec: ModelSpec = { kernel_size: K, alpha: 1e-4, dropout: 0.25, width: WIDTH, seed: 1, height: 60, imageWidth: 200, length: 6, classes: 36 };
const model = buildGruModel(spec);
const optimizer = tf.train.adam(1e-3, 0.9, 0.999, 1e-7);
const vars = model.trainableWeights.map((w) => (w as unknown as { val: Variable }).val);
const x = tf.randomUniform([B, spec.height, spec.imageWidth, 3], 0, 1);
const y = tf.oneHot(tf.randomUniform([B, spec.length], 0, spec.classes, 'int32'), spec.classes);
const heads = tf.unstack(y, 1);

function trainStep(): number {
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const outputs = model.apply(x, { training: true }) as Tensor[];
      const ce = outputs.map((p, i) => tf.mean(tf.neg(tf.sum(tf.mul(heads[i], tf.log(tf.clipByValue(p, 1e-7, 1))), -1))));
      const reg = l2Penalty(model, spec.alpha);
      return tf.addN(reg ? [...ce, reg] : ce) as Scalar;
    }, vars);
    optimizer.applyGradients(grads as unknown as Parameters<typeof optimizer.applyGradients>[0]);
    return value.dataSync()[0];
  });
}

function forwardStep(): void {
  tf.tidy(() => {
    const outputs = model.apply(x, { training: false }) as Tensor[];
    outputs.forEach((o) => o.dataSync());
  });
}

/** CPU time of this process (user + system), in ms: wasm runs on this one thread, and CPU time
 * is far less disturbed than wall time by other processes on a shared machine. */
function cpuMs(f: () => unknown): number {
  const t0 = process.cpuUsage();
  f();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

// Cumulative configurations: the missing kernel, then each replacement added in order.
const extra = availableWasmTrainingKernels().filter((k) => !REQUIRED_WASM_TRAINING_KERNELS.includes(k));
const NATIVE_ON = availableWasmTrainingKernels().includes('nativeConv');
const configs: { name: string; kernels: WasmTrainingKernel[] }[] = [
  { name: 'stock + Conv2DBackpropFilter', kernels: [...REQUIRED_WASM_TRAINING_KERNELS] },
];
extra.forEach((k, i) => configs.push({ name: `+ ${k}`, kernels: [...REQUIRED_WASM_TRAINING_KERNELS, ...extra.slice(0, i + 1)] }));

console.log(`wasm training step, width ${WIDTH} (filters ${filtersFor(WIDTH).join('/')}), kernel ${K}, batch ${B}, input ${spec.height}x${spec.imageWidth}x3`);
console.log(`${os.cpus()[0]?.model ?? 'cpu'}; ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; node ${process.version}`);
console.log(`backend: ${reason}\n`);

const times = configs.map(() => ({ train: [] as number[], wall: [] as number[], fwd: [] as number[], loss: 0 }));
for (let c = 0; c < configs.length; c++) {
  registerWasmTrainingKernels(tf, configs[c].kernels);
  times[c].loss = trainStep(); // warm-up: XNNPACK operators, heap growth
  forwardStep();
}
for (let r = 0; r < ROUNDS; r++) {
  for (let c = 0; c < configs.length; c++) {
    registerWasmTrainingKernels(tf, configs[c].kernels);
    const t0 = performance.now();
    times[c].train.push(cpuMs(trainStep));
    times[c].wall.push(performance.now() - t0);
    times[c].fwd.push(cpuMs(forwardStep));
  }
}

const base = median(times[0].train);
const rows = configs.map((cfg, c) => {
  const med = median(times[c].train);
  return [
    cfg.name,
    med.toFixed(0),
    Math.min(...times[c].train).toFixed(0),
    (B / (med / 1000)).toFixed(1),
    (base / med).toFixed(2) + 'x',
    median(times[c].wall).toFixed(0),
    median(times[c].fwd).toFixed(0),
  ];
});
const stepHeader = ['configuration', 'step cpu ms (median)', 'best', 'img/s', 'vs first', 'wall ms', 'forward cpu ms'];
printTable(stepHeader, rows);
console.log(`\n${ROUNDS} rounds after one warm-up step each; tensors alive: ${tf.memory().numTensors}`);

let layers: { header: string[]; rows: string[][] } | null = null;
if (opts.layers) {
  registerWasmTrainingKernels(tf);
  console.log('\nconv backprop per layer (cpu ms, best of 3): stock wasm kernel vs the formulations tried');
  layers = layerTable();
}

writeResults({
  name: 'kernels',
  title: 'One training step on wasm, training kernels added one by one',
  ...started,
  markdown: [
    `One training step (forward + backward + Adam) of the recognizer, width ${WIDTH} (filters ${filtersFor(WIDTH).join('/')}), kernel ${K}, batch ${B}, input ${spec.height}x${spec.imageWidth}x3; backend: ${reason}.`,
    `Each row adds one replacement kernel to the one before; configurations take turns step by step, ${ROUNDS} rounds after one warm-up step each. Times are this process's CPU time (wasm runs on one thread), steadier than wall time on a shared machine.`,
    '',
    markdownTable(stepHeader, rows),
    ...(layers
      ? ['', 'Conv backprop per layer (CPU ms, best of 3): composed = the wasm-kernel compositions (XNNPACK convs); native = the addon; dW taps = one matMul per filter tap.', '', markdownTable(layers.header, layers.rows)]
      : []),
  ].join('\n'),
  data: {
    width: WIDTH,
    kernel: K,
    batch: B,
    rounds: ROUNDS,
    backend: reason,
    configurations: configs.map((cfg, c) => ({ name: cfg.name, kernels: cfg.kernels, trainCpuMs: times[c].train, wallMs: times[c].wall, forwardCpuMs: times[c].fwd, medianTrainCpuMs: median(times[c].train) })),
    layers,
  },
});

function layerTable(): { header: string[]; rows: string[][] } {
  const filters = filtersFor(WIDTH);
  let h = spec.height;
  let w = spec.imageWidth;
  let cin = 3;
  const layers: { h: number; w: number; cin: number; cout: number; pad: 'valid' | 'same' }[] = [];
  filters.forEach((f, i) => {
    layers.push({ h, w, cin, cout: f, pad: 'valid' });
    h -= K - 1;
    w -= K - 1;
    layers.push({ h, w, cin: f, cout: f, pad: 'same' });
    cin = f;
    if (i < filters.length - 1) {
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
    }
  });
  const best = (f: () => Tensor): number => {
    const t: number[] = [];
    for (let i = 0; i < 3; i++) t.push(cpuMs(() => tf.tidy(() => { f().dataSync(); })));
    return Math.min(...t);
  };
  const rows: string[][] = [];
  for (const l of layers) {
    tf.tidy(() => {
      const xs = tf.randomUniform([B, l.h, l.w, l.cin], -1, 1) as Tensor4D;
      const ws = tf.randomUniform([K, K, l.cin, l.cout], -1, 1) as Tensor4D;
      const dy = tf.randomUniform(tf.conv2d(xs, ws, 1, l.pad).shape, -1, 1) as Tensor4D;
      const p = l.pad === 'same' ? (K - 1) / 2 : 0;
      const [, ho, wo] = dy.shape;
      const n = B * ho * wo;
      const dx = () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: ws }, { strides: 1, pad: l.pad, dataFormat: 'NHWC', inputShape: xs.shape }) as Tensor;
      const dw = () => tf.engine().runKernel('Conv2DBackpropFilter', { x: xs, dy }, { strides: 1, pad: l.pad, dataFormat: 'NHWC', filterShape: ws.shape }) as Tensor;
      const inputNative = NATIVE_ON ? best(dx) : NaN;
      const filterNative = NATIVE_ON ? best(dw) : NaN;
      const fwdNative = NATIVE_ON ? best(() => tf.conv2d(xs, ws, 1, l.pad)) : NaN;
      const wasmOnly = WASM_TRAINING_KERNELS.filter((k) => !k.startsWith('native'));
      registerWasmTrainingKernels(tf, wasmOnly);
      const fwd = best(() => tf.conv2d(xs, ws, 1, l.pad));
      const inputOurs = best(dx);
      const filterOurs = best(dw);
      registerWasmTrainingKernels(tf, wasmOnly.filter((k) => k !== 'conv2dBackpropInput'));
      const inputStock = best(dx);
      // Per-tap matMuls: dW[i,j] = x(i,j)^T . dy, transposing the small operand up front.
      const filterTaps = best(() => {
        const xp = p ? tf.pad(xs, [[0, 0], [p, p], [p, p], [0, 0]]) : xs;
        const dy2 = tf.reshape(dy, [n, l.cout]);
        const taps: Tensor[] = [];
        for (let i = 0; i < K; i++) {
          for (let j = 0; j < K; j++) {
            const xt = tf.transpose(tf.reshape(tf.slice(xp, [0, i, j, 0], [B, ho, wo, l.cin]), [n, l.cin]));
            taps.push(tf.matMul(xt, dy2));
          }
        }
        return tf.reshape(tf.stack(taps), [K, K, l.cin, l.cout]);
      });
      registerWasmTrainingKernels(tf);
      rows.push([
        `${l.h}x${l.w} ${l.cin}->${l.cout} ${l.pad}`,
        fwd.toFixed(1),
        fwdNative.toFixed(1),
        inputStock.toFixed(1),
        inputOurs.toFixed(1),
        inputNative.toFixed(1),
        filterOurs.toFixed(1),
        filterNative.toFixed(1),
        filterTaps.toFixed(1),
      ]);
    });
  }
  const header = ['layer (input)', 'forward', 'fwd native', 'dx stock', 'dx composed', 'dx native', 'dW composed', 'dW native', 'dW taps'];
  printTable(header, rows);
  console.log('composed: the wasm-kernel compositions (XNNPACK convs); native: the addon (nativeConv);');
  console.log('dW taps: one matMul per filter tap, x slice transposed up front (the im2col alternative).');
  return { header, rows };
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  rows.forEach((r) => console.log(line(r)));
}
