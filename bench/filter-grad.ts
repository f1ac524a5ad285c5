/**
 * Conv2DBackpropFilter formulations on the wasm backend, at the shapes of the model's layers
 * (width 0.25, batch 32, kernel 3): the kernel registered in src/train/wasm-kernels.ts, its formula
 * written out here (one conv2d of the transposed input with the transposed output gradient as its
 * filter), the same conv over the batch in chunks of g images, summed, and im2col (nine shifted slices concatenated) with one matMul.
 *
 *   npx tsx bench/filter-grad.ts [--rounds 3] [--chunks 8,4,1]
 *
 * Best wall ms of `rounds` runs each, after one warm-up; every result is checked against the
 * registered formulation (max abs difference printed; the sums run in other orders). The table
 * goes to bench/results/filter-grad.md and .json.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-core';
import { initBackend } from '../src/train/backend.ts';
import { runStart, writeResults } from './lib/results.ts';

const started = runStart();

const { values: a } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, chunks: { type: 'string', default: '8,4,1' } },
});
const { tf } = await initBackend('wasm');
type Pad = 'valid' | 'same';
// [input, output gradient, padding] of layers of the width-0.25 model at batch 32.
type Shape4 = [number, number, number, number];
const LAYERS: [Shape4, Shape4, Pad][] = [
  [[32, 60, 200, 3], [32, 58, 198, 16], 'valid'],
  [[32, 58, 198, 16], [32, 58, 198, 16], 'same'],
  [[32, 29, 99, 16], [32, 27, 97, 32], 'valid'],
  [[32, 27, 97, 32], [32, 27, 97, 32], 'same'],
  [[32, 11, 46, 64], [32, 11, 46, 64], 'same'],
];

function conv(x: Tensor4D, dy: Tensor4D, pad: Pad): Tensor {
  return tf.tidy(() => {
    const p = pad === 'same' ? 1 : 0;
    const dw = tf.conv2d(tf.transpose(x, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]) as Tensor4D, 1, [[0, 0], [p, p], [p, p], [0, 0]]);
    return tf.transpose(dw, [1, 2, 0, 3]);
  });
}

function chunked(g: number) {
  return (x: Tensor4D, dy: Tensor4D, pad: Pad): Tensor =>
    tf.tidy(() => {
      const parts: Tensor[] = [];
      for (let n = 0; n < x.shape[0]; n += g) {
        parts.push(conv(tf.slice(x, [n, 0, 0, 0], [g, -1, -1, -1]), tf.slice(dy, [n, 0, 0, 0], [g, -1, -1, -1]), pad));
      }
      return tf.addN(parts);
    });
}

function im2col(x: Tensor4D, dy: Tensor4D, pad: Pad): Tensor {
  return tf.tidy(() => {
    const xp = pad === 'same' ? tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]) : x;
    const [n, h, w, co] = dy.shape;
    const ci = x.shape[3];
    const cols: Tensor[] = [];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) cols.push(tf.slice(xp, [0, i, j, 0], [n, h, w, ci]));
    const patches = tf.reshape(tf.concat(cols, 3), [n * h * w, 9 * ci]);
    const r = tf.matMul(tf.reshape(dy, [n * h * w, co]), patches, true, false); // [co, 9 ci]
    return tf.reshape(tf.transpose(r), [3, 3, ci, co]);
  });
}

const rounds = Number(a.rounds);
// The kernel registered for wasm, run as conv2d's gradient runs it.
const registered = (x: Tensor4D, dy: Tensor4D, pad: Pad): Tensor =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad, dataFormat: 'NHWC', filterShape: [3, 3, x.shape[3], dy.shape[3]] }) as Tensor;
const variants: [string, typeof conv][] = [
  ['registered kernel', registered],
  ['one conv (its formula)', conv],
  ...a.chunks!.split(',').map((g) => [`conv over chunks of ${g} images`, chunked(Number(g))] as [string, typeof conv]),
  ['im2col + matMul', im2col],
];
const lines = [`| input | output gradient | ${variants.map(([n]) => n).join(' | ')} |`, `|---|---|${variants.map(() => '---').join('|')}|`];
const measured: Array<{ input: Shape4; outputGradient: Shape4; pad: Pad; variants: Array<{ name: string; bestMs: number; maxAbsDiff: number }> }> = [];
console.log(`# Conv2DBackpropFilter formulations, wasm, best of ${rounds}; ${cpus()[0].model}, ${cpus().length} cores`);
for (const line of lines) console.log(line);
for (const [xs, ds, pad] of LAYERS) {
  const x = tf.randomNormal(xs) as Tensor4D;
  const dy = tf.randomNormal(ds) as Tensor4D;
  const ref = registered(x, dy, pad);
  const layer = { input: xs, outputGradient: ds, pad, variants: [] as Array<{ name: string; bestMs: number; maxAbsDiff: number }> };
  measured.push(layer);
  const cells = variants.map(([name, f]) => {
    const warm = f(x, dy, pad);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(warm, ref))).dataSync()[0]);
    warm.dispose();
    let best = Infinity;
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      const out = f(x, dy, pad);
      out.dataSync();
      best = Math.min(best, performance.now() - t0);
      out.dispose();
    }
    layer.variants.push({ name, bestMs: best, maxAbsDiff: diff });
    return `${best.toFixed(0)} ms (diff ${diff.toExponential(0)})`;
  });
  lines.push(`| ${JSON.stringify(xs)} | ${JSON.stringify(ds)} | ${cells.join(' | ')} |`);
  console.log(lines.at(-1));
  tf.dispose([x, dy, ref]);
}

writeResults({
  name: 'filter-grad',
  title: 'Conv2DBackpropFilter formulations on wasm',
  ...started,
  markdown: [
    `The model's conv layers at width 0.25, batch 32, kernel 3. Best wall ms of ${rounds} runs each after one warm-up; each result's max abs difference from the registered kernel's in brackets (the sums run in other orders).`,
    '',
    ...lines,
  ].join('\n'),
  data: { rounds, layers: measured },
});
