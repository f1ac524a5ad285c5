import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../src/train/tf.ts';
import '@tensorflow/tfjs-backend-cpu';
import { InputConv2D, buildGruModel, buildPretrainModel, copyTrunkWeights, filtersFor, forwardMacs, isTrunkLayer, tfSeed, type ModelSpec } from '../../src/train/model.ts';

const spec: ModelSpec = { kernel_size: 3, alpha: 1e-4, dropout: 0.2, width: 1, seed: 3, height: 60, imageWidth: 200, length: 6, classes: 36 };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('the report model', () => {
  it('has the Keras model parameter count at width 1.0', () => {
    // Keras count_params() of the report's build_model (kernel 3), by layer:
    //   conv (k*k*cin*f + f) + BN (4f) for [3->64, 64->64, 64->128, 128->128, ..., 256->512, 512->512]
    //   = 39,232 + 222,464 + 887,296 + 3,544,064 = 4,693,056
    //   GRU(128), reset_after=True: 3 * (512*128 + 128*128 + 2*128) = 246,528
    //   6 x Dense(36): 6 * (128*36 + 36) = 27,864
    const keras = 4_693_056 + 246_528 + 27_864;
    const model = buildGruModel(spec);
    expect(model.countParams()).toBe(keras);
    model.dispose();
  });

  it('scales filters with width and keeps the heads', () => {
    expect(filtersFor(0.25)).toEqual([16, 32, 64, 128]);
    expect(filtersFor(0.125)).toEqual([8, 16, 32, 64]);
    const m = buildGruModel({ ...spec, width: 0.125, kernel_size: 1 });
    expect(m.outputs).toHaveLength(6);
    const out = m.predict(tf.zeros([2, 60, 200, 3])) as tf.Tensor[];
    expect(out.map((o) => o.shape)).toEqual(Array(6).fill([2, 36]));
    // softmax heads
    expect(Math.abs(tf.sum(out[0], 1).dataSync()[0] - 1)).toBeLessThan(1e-5);
    tf.dispose(out);
    m.dispose();
  });

  it('matches the report layer by layer', () => {
    const m = buildGruModel({ ...spec, width: 0.125 });
    const kinds = m.layers.map((l) => l.getClassName());
    const isConv = (k: string) => k === 'Conv2D' || k === 'InputConv2D';
    expect(kinds.filter(isConv)).toHaveLength(8);
    expect(kinds.filter((k) => k === 'InputConv2D')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'BatchNormalization')).toHaveLength(8);
    expect(kinds.filter((k) => k === 'MaxPooling2D')).toHaveLength(3);
    expect(kinds.filter((k) => k === 'Dropout')).toHaveLength(5);
    expect(kinds).toContain('GlobalAveragePooling2D');
    expect(kinds).toContain('RepeatVector');
    expect(kinds).toContain('ResetAfterGRU');
    const paddings = m.layers.filter((l) => isConv(l.getClassName())).map((l) => (l.getConfig() as { padding: string }).padding);
    expect(paddings).toEqual(['valid', 'same', 'valid', 'same', 'valid', 'same', 'valid', 'same']);
    m.dispose();
  });

  it.each(['same', 'valid'] as const)('computes the first conv as tfjs Conv2D does (%s): same output, same weight gradients', (padding) => {
    const args = { filters: 4, kernelSize: 3, padding, kernelInitializer: 'heNormal', biasInitializer: 'randomNormal' };
    const ours = new InputConv2D(args);
    const stock = tf.tfl.layers.conv2d(args);
    const x = tf.randomNormal([2, 9, 11, 3], 0, 1, 'float32', 7);
    ours.apply(x);
    stock.apply(x);
    stock.setWeights(ours.getWeights());
    const probe = padding === 'same' ? tf.randomNormal([2, 9, 11, 4], 0, 1, 'float32', 8) : tf.randomNormal([2, 7, 9, 4], 0, 1, 'float32', 8);
    const grads = (layer: tf.tfl.layers.Layer) =>
      tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, probe)) as tf.Scalar, layer.trainableWeights.map((w) => w.read() as tf.Variable));
    const a = grads(ours);
    const b = grads(stock);
    expect(Math.abs(a.value.dataSync()[0] - b.value.dataSync()[0])).toBeLessThan(1e-4);
    const ga = Object.values(a.grads);
    const gb = Object.values(b.grads);
    expect(ga).toHaveLength(2);
    ga.forEach((g, i) => expect(tf.max(tf.abs(tf.sub(g, gb[i]))).dataSync()[0]).toBeLessThan(1e-5));
  });

  it('refuses a first conv with an activation it would not apply', () => {
    expect(() => new InputConv2D({ filters: 2, kernelSize: 3, activation: 'relu' })).toThrow(/linear, channels-last/);
  });

  it('starts from the same weights for the same seed, seed 0 included (TensorFlow.js takes 0 for no seed)', () => {
    for (const seed of [0, 1]) {
      const [a, b] = [buildGruModel({ ...spec, width: 0.0625, seed }), buildGruModel({ ...spec, width: 0.0625, seed })];
      const wa = a.getWeights();
      const wb = b.getWeights();
      wa.forEach((w, i) => expect(Buffer.from((w.dataSync() as Float32Array).buffer).equals(Buffer.from((wb[i]!.dataSync() as Float32Array).buffer)), a.weights[i]!.name).toBe(true));
      a.dispose();
      b.dispose();
    }
    expect(tfSeed(0)).not.toBe(0);
    expect(tfSeed(7000)).toBe(7000);
  });

  it('copies the pretrained trunk into the GRU model', () => {
    const pre = buildPretrainModel({ ...spec, width: 0.125, seed: 1 });
    const gru = buildGruModel({ ...spec, width: 0.125, seed: 2 });
    const copied = copyTrunkWeights(pre, gru);
    expect(copied).toBe(16);
    for (const layer of gru.layers.filter((l) => isTrunkLayer(l.name))) {
      const a = layer.getWeights();
      const b = pre.getLayer(layer.name).getWeights();
      a.forEach((w, i) => expect(tf.max(tf.abs(tf.sub(w, b[i]))).dataSync()[0]).toBe(0));
    }
    pre.dispose();
    gru.dispose();
  });

  it('counts about 1.7 GMAC per image at full width', () => {
    expect(forwardMacs(spec) / 1e9).toBeCloseTo(1.69, 1);
  });
});

describe('orthogonalRows', () => {
  it('has orthonormal rows', async () => {
    const { orthogonalRows } = await import('../../src/train/model.ts');
    const m = orthogonalRows(8, 24, 1);
    for (let a = 0; a < 8; a++) {
      for (let b = 0; b < 8; b++) {
        let dot = 0;
        for (let j = 0; j < 24; j++) dot += m[a * 24 + j] * m[b * 24 + j];
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 5);
      }
    }
  });
});

describe('kernel sizes', () => {
  it('refuses a kernel that leaves no feature map, naming the largest that fits', async () => {
    const { maxKernelSize, featureMapSize } = await import('../../src/train/geometry.ts');
    expect(featureMapSize({ kernel_size: 3, height: 60, imageWidth: 200 })).toEqual([3, 21]);
    expect(maxKernelSize(60, 200)).toBe(4);
    // An even kernel fits too; its last feature map is one row high.
    expect(featureMapSize({ kernel_size: 4, height: 60, imageWidth: 200 })).toEqual([1, 19]);
    const k4 = buildGruModel({ ...spec, width: 0.125, kernel_size: 4 });
    expect(k4.outputs.map((o) => o.shape)).toEqual(Array.from({ length: 6 }, () => [null, 36]));
    k4.dispose();
    expect(() => buildGruModel({ ...spec, width: 0.125, kernel_size: 5 })).toThrow(/kernel_size 5 leaves no feature map for 60x200 images.*largest kernel that fits is 4/);
  });

  it('takes a wide kernel (kernel_width): its conv kernels, feature map, MACs and limits', async () => {
    const { featureMapSize, maxKernelExtent, axisView } = await import('../../src/train/geometry.ts');
    // Receptive field and the centres of the first and last columns of the last map (x in pixels).
    expect(axisView(200, 3)).toEqual({ size: 21, field: 68, firstCentre: 18.5, lastCentre: 178.5 });
    expect(axisView(200, 4)).toEqual({ size: 19, field: 98, firstCentre: 33.5, lastCentre: 177.5 });
    expect(axisView(200, 5)).toEqual({ size: 17, field: 128, firstCentre: 33.5, lastCentre: 161.5 });
    expect(axisView(200, 7)).toEqual({ size: 13, field: 188, firstCentre: 48.5, lastCentre: 144.5 });
    expect(maxKernelExtent(200)).toBe(13);
    expect(featureMapSize({ kernel_size: 3, kernel_width: 7, height: 60, imageWidth: 200 })).toEqual([3, 13]);
    expect(featureMapSize({ kernel_size: 3, kernel_width: 0, height: 60, imageWidth: 200 })).toEqual([3, 21]);
    const wide = buildGruModel({ ...spec, width: 0.125, kernel_size: 3, kernel_width: 7 });
    const convs = wide.layers.filter((l) => /_conv\d$/.test(l.name));
    expect(convs).toHaveLength(8);
    for (const c of convs) expect(c.getWeights()[0].shape.slice(0, 2)).toEqual([3, 7]);
    expect(wide.outputs.map((o) => o.shape)).toEqual(Array.from({ length: 6 }, () => [null, 36]));
    wide.dispose();
    // MACs scale with the kernel's area: a 3x7 kernel against 3x3 on the same feature map sizes.
    const square = forwardMacs({ ...spec, kernel_size: 3 });
    const same = forwardMacs({ ...spec, kernel_size: 3, kernel_width: 3 });
    expect(same).toBe(square);
    expect(forwardMacs({ ...spec, kernel_size: 3, kernel_width: 7 })).toBeGreaterThan(square * 1.5);
    expect(() => buildGruModel({ ...spec, width: 0.125, kernel_size: 3, kernel_width: 14 })).toThrow(
      /3x14 kernel \(kernel_size x kernel_width\) leaves no feature map for 60x200 images.*kernel_size \(the height\) fits up to 4, kernel_width up to 13/,
    );
  });

  it('padding: same keeps each block\'s size, so 5x5 and 7x7 kernels fit: shapes and parameter counts', async () => {
    const { featureMapSize, maxKernelSize, axisView } = await import('../../src/train/geometry.ts');
    // Keras count_params() of the same architecture: each conv k*k*cin*f + f, each BN 4f, the
    // GRU 3*(cin*128 + 128*128 + 2*128), six Dense(36) heads. Padding changes no weight.
    const keras = (k: number, width: number) => {
      const f = filtersFor(width);
      const pairs = f.flatMap((n, i) => [[i === 0 ? 3 : f[i - 1]!, n], [n, n]]);
      const convs = pairs.reduce((a, [cin, n]) => a + k * k * cin! * n! + n! + 4 * n!, 0);
      const last = f[f.length - 1]!;
      return convs + 3 * (last * 128 + 128 * 128 + 2 * 128) + 6 * (128 * 36 + 36);
    };
    expect(keras(3, 1)).toBe(4_693_056 + 246_528 + 27_864);
    expect(maxKernelSize(60, 200, 'same')).toBe(60);
    for (const k of [3, 5, 7]) {
      // 60x200 -> pool 30x100 -> 15x50 -> 7x25, whatever the kernel.
      expect(featureMapSize({ kernel_size: k, padding: 'same', height: 60, imageWidth: 200 })).toEqual([7, 25]);
      const m = buildGruModel({ ...spec, width: 0.125, kernel_size: k, padding: 'same' });
      expect(m.countParams()).toBe(keras(k, 0.125));
      const convs = m.layers.filter((l) => /_conv\d$/.test(l.name));
      expect(convs.map((c) => (c.getConfig() as { padding: string }).padding)).toEqual(Array(8).fill('same'));
      for (const c of convs) expect(c.getWeights()[0]!.shape.slice(0, 2)).toEqual([k, k]);
      const out = m.predict(tf.zeros([2, 60, 200, 3])) as tf.Tensor[];
      expect(out.map((o) => o.shape)).toEqual(Array(6).fill([2, 36]));
      tf.dispose(out);
      m.dispose();
    }
    // The report's padding keeps its first convs 'valid', and refuses 5 naming padding: same.
    const report = buildGruModel({ ...spec, width: 0.125, kernel_size: 3 });
    expect(report.layers.filter((l) => /_conv1$/.test(l.name)).map((c) => (c.getConfig() as { padding: string }).padding)).toEqual(Array(4).fill('valid'));
    report.dispose();
    expect(() => buildGruModel({ ...spec, width: 0.125, kernel_size: 5 })).toThrow(/with padding: same .*larger kernels fit/);
    // The receptive field grows as under 'valid'; the map keeps the image's extent.
    expect(axisView(200, 5, 'same')).toMatchObject({ size: 25, field: 128 });
    expect(forwardMacs({ ...spec, kernel_size: 5, padding: 'same' })).toBeGreaterThan(forwardMacs({ ...spec, kernel_size: 5 }));
  });
});
