/**
 * Where one training step's time goes on the wasm backend: tf.profile over one optimizer step
 * of the GRU model, kernel times summed by kernel and by kernel + input shapes.
 *
 *   npx tsx bench/profile-step.ts [--width 0.25] [--kernel 3] [--kernel-width 0] [--batch 32] [--top 40]
 *
 * Kernels the training replacements compose from other kernels (src/train/wasm-kernels.ts) are
 * listed together with the kernels they call, so the rows overlap: read them as a ranking, not a
 * sum. Wall times, one step after two warm-up steps. The tables go to
 * bench/results/profile-step.md and .json.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/train/backend.ts';
import { buildGruModel, l2Penalty, type ModelSpec } from '../src/train/model.ts';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import { runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    width: { type: 'string', default: '0.25' },
    kernel: { type: 'string', default: '3' },
    'kernel-width': { type: 'string', default: '0' },
    batch: { type: 'string', default: '32' },
    top: { type: 'string', default: '40' },
  },
});
const started = runStart();
const B = Number(a.batch);
const { tf, reason } = await initBackend('wasm');
const spec: ModelSpec = { kernel_size: Number(a.kernel), kernel_width: Number(a['kernel-width']), alpha: 1e-4, dropout: 0.25, width: Number(a.width), seed: 1, height: 60, imageWidth: 200, length: 6, classes: 36 };
const model = buildGruModel(spec);
const optimizer = tf.train.adam(1e-3, 0.9, 0.999, 1e-7);
const vars = model.trainableWeights.map((w) => w.read() as Variable);
const x = tf.randomUniform([B, spec.height, spec.imageWidth, 3], 0, 1);
const heads = tf.unstack(tf.oneHot(tf.randomUniform([B, spec.length], 0, spec.classes, 'int32'), spec.classes), 1);

function step(): void {
  tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const outputs = model.apply(x, { training: true }) as Tensor[];
      const ce = outputs.map((p, i) => tf.mean(tf.neg(tf.sum(tf.mul(heads[i], tf.log(tf.clipByValue(p, 1e-7, 1))), -1))));
      const reg = l2Penalty(model, spec.alpha);
      return tf.addN(reg ? [...ce, reg] : ce) as Scalar;
    }, vars);
    optimizer.applyGradients(grads as Parameters<typeof optimizer.applyGradients>[0]);
    value.dataSync();
  });
}

step();
step();
const t0 = performance.now();
const info = await tf.profile(() => step());
const wall = performance.now() - t0;
const byName = new Map<string, { ms: number; n: number }>();
const byShape = new Map<string, { ms: number; n: number }>();
for (const k of info.kernels) {
  const ms = Number(await k.kernelTimeMs);
  for (const [map, key] of [[byName, k.name], [byShape, `${k.name} ${JSON.stringify(k.inputShapes)}`]] as const) {
    const e = map.get(key) ?? { ms: 0, n: 0 };
    e.ms += ms;
    e.n++;
    map.set(key, e);
  }
}
const ranked = (map: Map<string, { ms: number; n: number }>, top: number) =>
  [...map].sort((p, q) => q[1].ms - p[1].ms).slice(0, top).map(([key, e]) => ({ key, calls: e.n, ms: e.ms }));
const byKernel = ranked(byName, 25);
const byKernelShape = ranked(byShape, Number(a.top));
const lines = [
  '| kernel | calls | ms |',
  '|---|---|---|',
  ...byKernel.map((r) => `| ${r.key} | ${r.calls} | ${r.ms.toFixed(1)} |`),
  '',
  '| kernel and input shapes | calls | ms |',
  '|---|---|---|',
  ...byKernelShape.map((r) => `| ${r.key} | ${r.calls} | ${r.ms.toFixed(1)} |`),
];
console.log(`# one training step, width ${spec.width}, batch ${B}: ${wall.toFixed(0)} ms wall (profiled); ${cpus()[0].model}, ${cpus().length} cores; ${reason}`);
for (const line of lines) console.log(line);
writeResults({
  name: 'profile-step',
  title: "Where one training step's time goes on wasm",
  ...started,
  markdown: [
    `tf.profile over one optimizer step of the GRU model, width ${spec.width}, kernel ${spec.kernel_size}${spec.kernel_width ? `x${spec.kernel_width}` : ''}, batch ${B}, after two warm-up steps: ${wall.toFixed(0)} ms wall (profiled). Backend: ${reason}.`,
    'Kernels that the training replacements compose from other kernels are listed together with the kernels they call, so rows overlap: read them as a ranking, not a sum.',
    '',
    ...lines,
  ].join('\n'),
  data: { width: spec.width, kernel: spec.kernel_size, kernelWidth: spec.kernel_width, batch: B, wallMs: wall, byKernel, byKernelShape },
});
