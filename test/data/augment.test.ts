import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { affineRgba, augmentRng, drawAugment, inverseNormalCdf, normalQuantiles, photometricRgba, type AugmentDraw } from '../../src/data/augment.ts';
import { BatchStream, type Batch } from '../../src/data/batches.ts';
import { DEFAULT_LABEL_SPEC } from '../../src/data/charset.ts';
import { loadDataset, type Dataset } from '../../src/data/dataset.ts';
import { closeDecodePools } from '../../src/data/decode-pool.ts';
import { generateDataset } from '../../src/data/generate/index.ts';
import { AUGMENT_PARAMS, augmentSpec, epochAugment, paramProblem, resolveParams, TRAINER_PARAMS, type AugmentSpec } from '../../src/train/params.ts';
import { Rng } from '../../src/util/rng.ts';

const OFF: AugmentSpec = { aug_rotate: 0, aug_shear: 0, aug_scale: 0, aug_shift: 0, aug_contrast: 0, aug_color: 0, aug_noise: 0, aug_jpeg: 0 };
const ALL: AugmentSpec = { aug_rotate: 8, aug_shear: 0.2, aug_scale: 0.1, aug_shift: 5, aug_contrast: 0.3, aug_color: 0.2, aug_noise: 0.04, aug_jpeg: 0.5 };

let root: string;
let ds: Dataset;
beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'sweep-augment-'));
  await generateDataset({ style: 'railway', count: 12, seed: 4, out: root });
  ds = await loadDataset(root, { spec: DEFAULT_LABEL_SPEC });
});
afterAll(async () => {
  await closeDecodePools();
  rmSync(root, { recursive: true, force: true });
});

/** Item -> its floats, over one epoch (the buffers are reused, so each image is copied). */
async function epochImages(o: { augment?: AugmentSpec | null; seed?: number; epoch?: number; threads?: number; batchSize?: number; startBatch?: number }): Promise<Map<number, Float32Array>> {
  const size = ds.height * ds.width * 3;
  const out = new Map<number, Float32Array>();
  const stream = new BatchStream(ds, { batchSize: o.batchSize ?? 4, shuffle: true, seed: o.seed ?? 1, epoch: o.epoch ?? 0, threads: o.threads ?? 2, augment: o.augment, startBatch: o.startBatch });
  for await (const b of stream as AsyncIterable<Batch>) {
    b.indices.forEach((item, j) => out.set(item, b.x.slice(j * size, (j + 1) * size)));
  }
  return out;
}

const same = (a: Map<number, Float32Array>, b: Map<number, Float32Array>) =>
  [...b.keys()].every((k) => a.has(k) && Buffer.from(a.get(k)!.buffer).equals(Buffer.from(b.get(k)!.buffer)));
const differing = (a: Map<number, Float32Array>, b: Map<number, Float32Array>) =>
  [...a.keys()].filter((k) => !Buffer.from(a.get(k)!.buffer).equals(Buffer.from(b.get(k)!.buffer))).length;

describe('augmentation of training batches', () => {
  it('is a pure function of (seed, epoch, image): repeats, and differs in another epoch or seed', async () => {
    const a = await epochImages({ augment: ALL });
    expect(same(a, await epochImages({ augment: ALL }))).toBe(true);
    expect(differing(a, await epochImages({ augment: ALL, epoch: 1 }))).toBe(12);
    expect(differing(a, await epochImages({ augment: ALL, seed: 2 }))).toBe(12);
    expect(differing(a, await epochImages({}))).toBe(12);
  });

  it('gives the same pixels whatever the decode threads, batch size or resume point', async () => {
    const a = await epochImages({ augment: ALL, threads: 2, epoch: 3 });
    expect(same(a, await epochImages({ augment: ALL, threads: 0, epoch: 3 }))).toBe(true);
    expect(same(a, await epochImages({ augment: ALL, threads: 3, epoch: 3, batchSize: 5 }))).toBe(true);
    const resumed = await epochImages({ augment: ALL, threads: 1, epoch: 3, startBatch: 2 });
    expect(resumed.size).toBe(4);
    expect(same(a, resumed)).toBe(true);
  });

  it('off (null or every parameter 0) leaves the decoded pixels as they are', async () => {
    const plain = await epochImages({});
    expect(same(plain, await epochImages({ augment: null }))).toBe(true);
    expect(same(plain, await epochImages({ augment: augmentSpec(OFF) }))).toBe(true);
  });

  it.each(AUGMENT_PARAMS.map((k) => [k]))('%s alone changes the images', async (k) => {
    const plain = await epochImages({});
    const one = await epochImages({ augment: { ...OFF, [k]: k === 'aug_jpeg' ? 1 : ALL[k] } });
    // a rotation or shear drawn near 0 may round to the same bytes; most images change
    expect(differing(plain, one)).toBeGreaterThanOrEqual(10);
  });
});

describe('augmentation pieces', () => {
  const draw = (d: Partial<AugmentDraw>): AugmentDraw => ({ angle: 0, shear: 0, scale: 1, dx: 0, dy: 0, contrast: 1, brightness: 0, gains: [1, 1, 1], noiseStd: 0, jpegQuality: 0, ...d });
  /** A 6x4 RGBA image whose red channel is 10 * x + y. */
  const ramp = () => {
    const a = new Uint8Array(6 * 4 * 4);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 6; x++) a.set([10 * x + y, 0, 0, 255], (y * 6 + x) * 4);
    return a;
  };
  const red = (a: Uint8Array | Uint8ClampedArray, x: number, y: number) => a[(y * 6 + x) * 4];

  it('draws an identity when every parameter is 0, and within the bounds otherwise', () => {
    expect(drawAugment(OFF, new Rng(1))).toEqual(draw({}));
    for (let i = 0; i < 200; i++) {
      const d = drawAugment(ALL, augmentRng(1, 0, i));
      expect(Math.abs(d.angle)).toBeLessThanOrEqual((8 * Math.PI) / 180);
      expect(Math.abs(d.shear)).toBeLessThanOrEqual(0.2);
      expect(Math.abs(d.scale - 1)).toBeLessThanOrEqual(0.1);
      expect(Math.max(Math.abs(d.dx), Math.abs(d.dy))).toBeLessThanOrEqual(5);
      expect(d.noiseStd).toBeLessThanOrEqual(0.04 * 255);
      expect(d.jpegQuality === 0 || (d.jpegQuality >= 30 && d.jpegQuality <= 90)).toBe(true);
    }
  });

  it.each([
    ['identity', draw({}), [[2, 1, 21]]],
    ['shift right by 1: output x reads source x - 1', draw({ dx: 1 }), [[2, 1, 11], [0, 1, 1]]],
    ['shift down by 1', draw({ dy: 1 }), [[2, 2, 21], [2, 0, 20]]],
    ['half turn about the centre', draw({ angle: Math.PI }), [[0, 0, 53], [5, 3, 0]]],
    ['scale 2 about the centre (3, 2): (3, 2) reads (2.75, 1.75)', draw({ scale: 2 }), [[3, 2, 29]]],
  ] as const)('affine: %s', (_name, d, probes) => {
    const out = new Uint8Array(6 * 4 * 4);
    affineRgba(ramp(), out, 6, 4, d);
    for (const [x, y, want] of probes) expect(red(out, x, y), `(${x}, ${y})`).toBe(want);
  });

  it.each([
    [0.5, 0], [0.975, 1.959964], [0.025, -1.959964], [0.8413447, 1], [0.001, -3.090232], [0.9999, 3.719016],
  ])('inverse normal CDF at %f is %f', (p, z) => {
    expect(inverseNormalCdf(p)).toBeCloseTo(z, 5);
  });

  it('the quantile table has mean 0 and standard deviation 1', () => {
    const t = normalQuantiles();
    const mean = t.reduce((a, v) => a + v, 0) / t.length;
    const std = Math.sqrt(t.reduce((a, v) => a + (v - mean) ** 2, 0) / t.length);
    expect(Math.abs(mean)).toBeLessThan(1e-6);
    expect(std).toBeGreaterThan(0.999);
    expect(std).toBeLessThan(1.0001);
  });

  it('contrast about the mean, brightness and gains; noise keeps bytes in range', () => {
    const px = new Uint8Array([100, 100, 100, 255, 200, 200, 200, 255]);
    photometricRgba(px, 2, draw({ contrast: 2 }), new Rng(1));
    expect([...px]).toEqual([50, 50, 50, 255, 250, 250, 250, 255]);
    photometricRgba(px, 2, draw({ brightness: 10, gains: [1, 0.5, 2] }), new Rng(1));
    expect([...px]).toEqual([60, 30, 120, 255, 255, 130, 255, 255]);
    const noisy = new Uint8Array(4000).fill(128);
    photometricRgba(noisy, 1000, draw({ noiseStd: 20 }), new Rng(2));
    const values = [...noisy].filter((_, i) => i % 4 !== 3);
    const mean = values.reduce((a, v) => a + v, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
    expect(Math.abs(mean - 128)).toBeLessThan(2);
    expect(std).toBeGreaterThan(18);
    expect(std).toBeLessThan(22);
  });
});

describe('augmentation parameters', () => {
  it('are off by default and stay out of a trial\'s params at 0', () => {
    for (const k of AUGMENT_PARAMS) {
      expect(TRAINER_PARAMS[k].default).toBe(0);
      expect(TRAINER_PARAMS[k].omitAtDefault).toBe(true);
    }
    expect(augmentSpec(resolveParams({}))).toBeNull();
    expect(augmentSpec(resolveParams({ aug_noise: 0.05 }))).toEqual({ ...OFF, aug_noise: 0.05 });
  });

  it('aug_after counts the trial\'s epochs, pretrain (as configured) first', () => {
    const p = resolveParams({ aug_noise: 0.05, aug_after: 3, pretrain_epochs: 2 });
    expect(TRAINER_PARAMS.aug_after).toMatchObject({ default: 0, omitAtDefault: true });
    expect([0, 1].map((e) => epochAugment(p, 'pretrain', e))).toEqual([null, null]);
    expect(epochAugment(p, 'gru', 0)).toBeNull();
    expect(epochAugment(p, 'gru', 1)).toEqual({ ...OFF, aug_noise: 0.05 });
    expect(epochAugment(resolveParams({ aug_noise: 0.05 }), 'pretrain', 0)).toEqual({ ...OFF, aug_noise: 0.05 });
    expect(epochAugment(resolveParams({ aug_after: 0 }), 'gru', 4)).toBeNull();
    expect(paramProblem('aug_after', 1.5)).toMatch(/^aug_after must be an integer >= 0/);
  });

  it.each([
    ['aug_rotate', 46], ['aug_rotate', -1], ['aug_shear', 1.5], ['aug_scale', 0.6], ['aug_shift', 51],
    ['aug_contrast', 1], ['aug_color', -0.1], ['aug_noise', 0.6], ['aug_jpeg', 1.01], ['aug_jpeg', 'often'],
  ] as const)('refuses %s = %j', (k, v) => {
    expect(paramProblem(k, v)).toMatch(new RegExp(`^${k} must be .*got ${JSON.stringify(v)}$`));
    expect(() => resolveParams({ [k]: v }, 'sweep.yaml')).toThrow(/^sweep.yaml: aug_/);
  });
});
