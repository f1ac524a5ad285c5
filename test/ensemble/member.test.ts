import { mkdtempSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldBatchNorm } from '../../src/ensemble/fold.ts';
import { loadMember } from '../../src/ensemble/member.ts';
import { initBackend } from '../../src/train/backend.ts';
import { writeFileList } from '../../src/train/integrity.ts';
import { fileUrl, registerFileRouter } from '../../src/train/io.ts';
import { buildGruModel, buildPretrainModel, type ModelSpec } from '../../src/train/model.ts';
import * as tf from '../../src/train/tf.ts';
import { tfl } from '../../src/train/tf.ts';
import { Rng } from '../../src/util/rng.ts';

let root: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sweep-member-'));
  await initBackend('wasm');
  registerFileRouter();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * A freshly built model has BatchNorm at identity (mean 0, variance 1, gamma 1, beta 0) and zero
 * biases, which would fold trivially: give every BN, conv bias and head bias trained-looking values.
 */
function perturb(model: tfl.LayersModel, seed: number): void {
  const rng = new Rng(`perturb:${seed}`);
  const vec = (n: number, lo: number, hi: number) => tf.tensor1d(Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next()));
  for (const layer of model.layers) {
    const kind = layer.getClassName();
    const w = layer.getWeights();
    if (kind === 'BatchNormalization') {
      const c = w[0].shape[0];
      layer.setWeights([vec(c, 0.5, 1.5), vec(c, -0.3, 0.3), vec(c, -0.2, 0.2), vec(c, 0.3, 2)]);
    } else if ((kind === 'Conv2D' || kind === 'InputConv2D' || kind === 'Dense') && w.length === 2) {
      layer.setWeights([w[0], vec(w[1].shape[0], -0.2, 0.2)]);
    } else if (kind === 'ResetAfterGRU') {
      layer.setWeights([w[0], w[1], tf.reshape(vec(w[2].size, -0.2, 0.2), w[2].shape)]);
    }
  }
}

const base: ModelSpec = { kernel_size: 3, alpha: 1e-4, dropout: 0.2, width: 0.125, seed: 1, height: 60, imageWidth: 200, length: 6, classes: 36 };

const CASES = [
  { width: 0.125, kernel: [3, 3], gru: true },
  { width: 0.125, kernel: [3, 5], gru: false },
  { width: 0.25, kernel: [3, 5], gru: true },
  { width: 0.25, kernel: [3, 3], gru: false },
] as const;

describe('loadMember', () => {
  it.each(CASES)('folds BatchNorm and gives LayersModel.predict\'s probabilities (width $width, kernel $kernel, gru $gru)', async (c) => {
    const spec: ModelSpec = { ...base, width: c.width, kernel_size: c.kernel[0], kernel_width: c.kernel[1], seed: c.width * 8 + c.kernel[1] };
    const built = c.gru ? buildGruModel(spec) : buildPretrainModel(spec);
    perturb(built, spec.seed);
    const dir = join(root, `w${c.width}-k${c.kernel.join('x')}-${c.gru ? 'gru' : 'pretrain'}`);
    await built.save(fileUrl(dir));
    built.dispose();

    const reference = await tfl.loadLayersModel(fileUrl(join(dir, 'model.json')));
    const member = await loadMember(dir);
    expect(member.folded).toBe(true);
    expect([member.height, member.width, member.length, member.classes]).toEqual([60, 200, 6, 36]);
    const x = tf.randomUniform([5, 60, 200, 3], 0, 1, 'float32', 42) as tf.Tensor4D;
    const want = tf.stack(reference.predict(x) as tf.Tensor[], 1);
    const got = member.predict(x);
    expect(got.shape).toEqual([5, 6, 36]);
    const diff = tf.max(tf.abs(tf.sub(got, want))).dataSync()[0];
    expect(diff).toBeLessThan(1e-4);
    // Not a vacuous match: the probabilities differ between images and from uniform.
    expect(tf.max(tf.abs(tf.sub(want, 1 / 36))).dataSync()[0]).toBeGreaterThan(0.01);

    // A batch larger than the chunk runs in pieces, with the same result.
    const chunked = await loadMember(dir, { chunk: 2 });
    const pieces = chunked.predict(x);
    expect(tf.max(tf.abs(tf.sub(pieces, got))).dataSync()[0]).toBeLessThan(1e-6);
    tf.dispose(pieces);
    chunked.dispose();

    const unfolded = await loadMember(dir, { fold: false });
    expect(unfolded.folded).toBe(false);
    const same = unfolded.predict(x);
    expect(tf.max(tf.abs(tf.sub(same, want))).dataSync()[0]).toBe(0);
    tf.dispose([x, want, got, same]);
    reference.dispose();
    member.dispose();
    unfolded.dispose();
  });

  it('runs on the cpu backend too (plain tf ops), with the same probabilities', async () => {
    const spec: ModelSpec = { ...base, kernel_width: 5, seed: 5 };
    const built = buildGruModel(spec);
    perturb(built, spec.seed);
    const dir = join(root, 'cpu');
    await built.save(fileUrl(dir));
    built.dispose();
    try {
      await initBackend('cpu');
      const reference = await tfl.loadLayersModel(fileUrl(join(dir, 'model.json')));
      const member = await loadMember(dir);
      const x = tf.randomUniform([2, 60, 200, 3], 0, 1, 'float32', 8) as tf.Tensor4D;
      const want = tf.stack(reference.predict(x) as tf.Tensor[], 1);
      const got = member.predict(x);
      expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(1e-4);
      tf.dispose([x, want, got]);
      reference.dispose();
      member.dispose();
    } finally {
      await initBackend('wasm');
    }
  });

  it('frees its weights and leaves no tensors behind per prediction', async () => {
    const spec: ModelSpec = { ...base, seed: 9 };
    const dir = join(root, 'leak');
    const built = buildGruModel(spec);
    await built.save(fileUrl(dir));
    built.dispose();
    const before = tf.memory().numTensors;
    const member = await loadMember(dir);
    const x = tf.zeros([2, 60, 200, 3]) as tf.Tensor4D;
    const during = tf.memory().numTensors;
    member.predict(x).dispose();
    member.predict(x).dispose();
    expect(tf.memory().numTensors).toBe(during);
    x.dispose();
    member.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('names a directory without a model, and a model.json that is not one', async () => {
    await expect(loadMember(join(root, 'nothing-here'))).rejects.toThrow(/nothing-here: no model\.json there/);
    const bad = join(root, 'bad');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'model.json'), '{"not": "a model"');
    await expect(loadMember(bad)).rejects.toThrow(/bad\/model\.json: not valid JSON \(truncated\?\)/);
    writeFileSync(join(bad, 'model.json'), '{"not": "a model"}');
    await expect(loadMember(bad)).rejects.toThrow(/bad\/model\.json: cannot be loaded/);
  });

  it.each([true, false])('refuses truncated weights, naming the file, with a file list: %s (as export does)', async (listed) => {
    const dir = join(root, `truncated-${listed}`);
    const model = buildPretrainModel(base);
    await model.save(fileUrl(dir));
    model.dispose();
    if (listed) writeFileList(dir);
    truncateSync(join(dir, 'weights.bin'), 100);
    await expect(loadMember(dir)).rejects.toThrow(`${dir}: the model is damaged: ${join(dir, 'weights.bin')}: 100 bytes where`);
  });

  it('refuses to fold a model that is not the recognizer', async () => {
    const input = tfl.input({ shape: [60, 200, 3] });
    const out = tfl.layers.dense({ units: 36, activation: 'softmax' }).apply(tfl.layers.flatten().apply(input)) as tfl.SymbolicTensor;
    const other = tfl.model({ inputs: input, outputs: out });
    const dir = join(root, 'other');
    await other.save(fileUrl(dir));
    other.dispose();
    await expect(loadMember(dir)).rejects.toThrow(/not a recognizer this version can fold \(layer .* \(Flatten\) is not part of the recognizer's trunk\)/);
    const plain = await loadMember(dir, { fold: false });
    expect(plain.length).toBe(1);
    plain.dispose();
  });
});

describe('foldBatchNorm', () => {
  // One 1x1 conv, 2 inputs -> 2 outputs; y = ((x.W + b) - mean) * gamma / sqrt(var + eps) + beta.
  it.each([
    { gamma: [1, 1], beta: [0, 0], mean: [0, 0], variance: [1, 1], eps: 0, kernel: [1, 2, 3, 4], bias: [0.5, -1], wantK: [1, 2, 3, 4], wantB: [0.5, -1] },
    { gamma: [2, 0.5], beta: [1, -1], mean: [0.5, 1], variance: [3, 0], eps: 1, kernel: [1, 2, 3, 4], bias: [0.5, -1], wantK: [1, 1, 3, 2], wantB: [1, -2] },
    { gamma: null, beta: null, mean: [1, 1], variance: [4, 4], eps: 0, kernel: [2, 2, 2, 2], bias: null, wantK: [1, 1, 1, 1], wantB: [-0.5, -0.5] },
  ])('scales the kernel per output channel and shifts the bias (%#)', (t) => {
    const f = (a: number[] | null) => (a ? Float32Array.from(a) : null);
    const r = foldBatchNorm(
      { kernel: Float32Array.from(t.kernel), bias: f(t.bias), outChannels: 2 },
      { gamma: f(t.gamma), beta: f(t.beta), mean: Float32Array.from(t.mean), variance: Float32Array.from(t.variance), epsilon: t.eps },
    );
    expect([...r.kernel].map((v) => +v.toFixed(6))).toEqual(t.wantK);
    expect([...r.bias].map((v) => +v.toFixed(6))).toEqual(t.wantB);
  });
});
