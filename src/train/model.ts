/**
 * The report's CAPTCHA recognizer, block by block, in TF.js layers.
 *
 * Keras (the report)                          here
 *   Conv2D(64, k, 'valid') + BN + ReLU          convBnRelu(x, 64w, 'valid')
 *   Conv2D(64, k, 'same')  + BN + ReLU          convBnRelu(x, 64w, 'same')
 *   MaxPooling2D(2) + Dropout                   (blocks 1-3)
 *   ... 128, 256, 512 filters ...
 *   GlobalAveragePooling2D + Dropout
 *   RepeatVector(6) + GRU(128, return_sequences) + Dropout
 *   Lambda(x[:, i, :]) + Dense(36, softmax) x6  TimeStep(i) + Dense(36, softmax)
 *
 * `padding: same` makes each block's first conv 'same' too, so kernels larger than 4 fit.
 * `width` multiplies the filter counts (1.0 is the report's model). The pretrain model is
 * the same CNN with six Dense heads on the pooled features. Layer names are shared between
 * the two models so phase 2 copies phase 1's conv and BN weights by name.
 */
import * as tf from './tf.ts';
import * as tfl from '@tensorflow/tfjs-layers';
import { Rng } from '../util/rng.ts';
import { UserError } from '../util/errors.ts';
import { BASE_FILTERS, featureMapSize, kernelDims, maxKernelExtent, maxKernelSize, type Padding } from './geometry.ts';

export const GRU_UNITS = 128;

export interface ModelSpec {
  /** The conv kernels' height, and their width unless `kernel_width` is set. */
  kernel_size: number;
  /** The conv kernels' width (0 or absent: `kernel_size`, a square kernel as in the report). */
  kernel_width?: number;
  /** Each block's first conv: `valid` (`report`, or absent) or `same`. */
  padding?: Padding;
  alpha: number;
  dropout: number;
  width: number;
  seed: number;
  height: number;
  imageWidth: number;
  /** Characters per CAPTCHA: the number of heads and GRU time steps. */
  length: number;
  classes: number;
}

/**
 * A seed as TensorFlow.js takes it. Its random ops treat a seed of 0 as no seed at all (they
 * draw one from Math.random), so trial seed 0 would start its first conv differently in every
 * process; 0 maps to a value no other layer or step of this code derives.
 */
export function tfSeed(seed: number): number {
  return seed === 0 ? 0x7fffffff : seed;
}

export function filtersFor(width: number): number[] {
  return BASE_FILTERS.map((f) => Math.max(1, Math.round(f * width)));
}

/**
 * Keras' GRU with reset_after=True (its default since TF 2), which tfjs-layers' GRU does not
 * support: the reset gate multiplies the recurrent projection after the matmul, and there
 * are two bias vectors (input and recurrent). Weight shapes and gate order (z, r, h) match
 * Keras so weights move between the two unchanged and the parameter count is the same.
 */
export class ResetAfterGRU extends tfl.layers.Layer {
  static className = 'ResetAfterGRU';
  readonly units: number;
  readonly seed: number;
  private kernel!: tfl.LayerVariable;
  private recurrentKernel!: tfl.LayerVariable;
  private bias!: tfl.LayerVariable;

  constructor(args: { units: number; seed: number; name?: string }) {
    super({ name: args.name });
    this.units = args.units;
    this.seed = args.seed;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const inputDim = shape[shape.length - 1] as number;
    const u = this.units;
    this.kernel = this.addWeight('kernel', [inputDim, 3 * u], 'float32',
      tfl.initializers.glorotUniform({ seed: this.seed }));
    // Keras' orthogonal initializer; tfjs-layers' runs a QR in tensor ops, seconds per build.
    this.recurrentKernel = this.addWeight('recurrent_kernel', [u, 3 * u], 'float32', tfl.initializers.zeros());
    const orthogonal = tf.tensor2d(orthogonalRows(u, 3 * u, this.seed + 1), [u, 3 * u]);
    this.recurrentKernel.write(orthogonal); // the variable takes a reference to its data
    orthogonal.dispose();
    this.bias = this.addWeight('bias', [2, 3 * u], 'float32', tfl.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [shape[0], shape[1], this.units];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D;
      const [batch, steps, dim] = x.shape;
      const u = this.units;
      const [inputBias, recurrentBias] = tf.unstack(this.bias.read(), 0);
      const projected = tf.reshape(
        tf.add(tf.matMul(tf.reshape(x, [batch * steps, dim]), this.kernel.read() as tf.Tensor2D), inputBias),
        [batch, steps, 3 * u],
      );
      const recurrent = this.recurrentKernel.read() as tf.Tensor2D;
      let h: tf.Tensor2D = tf.zeros([batch, u]);
      const outputs: tf.Tensor2D[] = [];
      for (let t = 0; t < steps; t++) {
        const xt = tf.reshape(tf.slice(projected, [0, t, 0], [batch, 1, 3 * u]), [batch, 3 * u]);
        const inner = tf.add(tf.matMul(h, recurrent), recurrentBias);
        const [xz, xr, xh] = tf.split(xt, 3, 1);
        const [hz, hr, hh] = tf.split(inner, 3, 1);
        const z = tf.sigmoid(tf.add(xz, hz));
        const r = tf.sigmoid(tf.add(xr, hr));
        const candidate = tf.tanh(tf.add(xh, tf.mul(r, hh)));
        h = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), candidate)) as tf.Tensor2D;
        outputs.push(h);
      }
      return tf.stack(outputs, 1);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units, seed: this.seed };
  }
}
tf.serialization.registerClass(ResetAfterGRU);

/**
 * A rows x cols matrix with orthonormal rows (rows <= cols), as Keras' Orthogonal draws it:
 * a Gaussian matrix orthonormalised (Gram-Schmidt here, QR there), signs fixed by R's diagonal.
 */
export function orthogonalRows(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(`orthogonal:${seed}`);
  const q: Float64Array[] = [];
  for (let i = 0; i < rows; i++) {
    const v = Float64Array.from({ length: cols }, () => rng.normal());
    for (const b of q) {
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += v[j] * b[j];
      for (let j = 0; j < cols; j++) v[j] -= dot * b[j];
    }
    let norm = 0;
    for (let j = 0; j < cols; j++) norm += v[j] * v[j];
    norm = Math.sqrt(norm);
    for (let j = 0; j < cols; j++) v[j] /= norm;
    q.push(v);
  }
  const out = new Float32Array(rows * cols);
  q.forEach((v, i) => out.set(v, i * cols));
  return out;
}

type ConvArgs = Parameters<typeof tfl.layers.conv2d>[0];
// tfjs-layers exports Conv2D only through its factory; the class comes from an instance.
const Conv2DLayer = Object.getPrototypeOf(tfl.layers.conv2d({ filters: 1, kernelSize: 1 })).constructor as new (
  args: ConvArgs,
) => tfl.layers.Layer;

/**
 * The first conv layer: Keras' Conv2D computed as conv2d + bias rather than tfjs' fused conv2d.
 * The fused op's gradient computes the derivative for its input eagerly, and for the first
 * layer that is the image, which nothing needs; unfused, the tape skips it (+5% training
 * images/s at width 0.25, bench/train-throughput.ts). Same weights, same config, same output.
 * Only the trunk's form is supported: no activation, channels last.
 */
export class InputConv2D extends Conv2DLayer {
  static className = 'InputConv2D';

  constructor(args: ConvArgs) {
    super(args);
    const self = this as unknown as { activation: { getClassName(): string }; dataFormat: string };
    if (self.activation.getClassName() !== 'linear' || self.dataFormat !== 'channelsLast') {
      throw new Error(`InputConv2D computes a linear, channels-last conv only (got ${self.activation.getClassName()}, ${self.dataFormat})`);
    }
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const self = this as unknown as {
        kernel: tfl.LayerVariable;
        bias: tfl.LayerVariable | null;
        strides: [number, number];
        padding: 'valid' | 'same';
        dilationRate: [number, number];
      };
      const y = tf.conv2d(x, self.kernel.read() as tf.Tensor4D, self.strides, self.padding, 'NHWC', self.dilationRate);
      return self.bias ? tf.add(y, self.bias.read()) : y;
    });
  }
}
tf.serialization.registerClass(InputConv2D as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);

/** Keras' `Lambda(lambda x: x[:, i, :])`: one time step of a sequence. */
export class TimeStep extends tfl.layers.Layer {
  static className = 'TimeStep';
  readonly index: number;

  constructor(args: { index: number; name?: string }) {
    super({ name: args.name });
    this.index = args.index;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [shape[0], shape[2]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D;
      const [batch, , dim] = x.shape;
      return tf.reshape(tf.slice(x, [0, this.index, 0], [batch, 1, dim]), [batch, dim]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), index: this.index };
  }
}
tf.serialization.registerClass(TimeStep);

/**
 * The convolutional trunk. Keras' he_normal(seed=3) object reused by every layer draws the
 * same numbers for layers of the same shape; we give each layer its own seed (seed + i)
 * instead, so no two layers start identical.
 */
function cnnTrunk(spec: ModelSpec): { input: tfl.SymbolicTensor; pooled: tfl.SymbolicTensor } {
  const [h, w] = featureMapSize(spec);
  const [kh, kw] = kernelDims(spec);
  if (h < 1 || w < 1) {
    const what = spec.kernel_width ? `a ${kh}x${kw} kernel (kernel_size x kernel_width)` : `kernel_size ${kh}`;
    throw new UserError(
      `${what} leaves no feature map for ${spec.height}x${spec.imageWidth} images (each block's first conv is 'valid'); ` +
        (spec.kernel_width
          ? `kernel_size (the height) fits up to ${maxKernelExtent(spec.height)}, kernel_width up to ${maxKernelExtent(spec.imageWidth)}`
          : `the largest kernel that fits is ${maxKernelSize(spec.height, spec.imageWidth)}`) +
        '; with padding: same (both convs of a block keep the size) larger kernels fit',
    );
  }
  const input = tfl.input({ shape: [spec.height, spec.imageWidth, 3], name: 'image' });
  const regularizer = spec.alpha > 0 ? tfl.regularizers.l2({ l2: spec.alpha }) : undefined;
  let layerSeed = spec.seed * 1000;
  const conv = (x: tfl.SymbolicTensor, filters: number, padding: 'valid' | 'same', name: string) => {
    const args: ConvArgs = {
      filters,
      kernelSize: [kh, kw],
      padding,
      kernelInitializer: tfl.initializers.heNormal({ seed: tfSeed(layerSeed++) }),
      kernelRegularizer: regularizer,
      name,
    };
    const layer = x === input ? new InputConv2D(args) : tfl.layers.conv2d(args);
    return layer.apply(x) as tfl.SymbolicTensor;
  };
  const bnRelu = (x: tfl.SymbolicTensor, name: string) =>
    tfl.layers.activation({ activation: 'relu', name: `${name}_relu` }).apply(
      tfl.layers.batchNormalization({ name }).apply(x),
    ) as tfl.SymbolicTensor;

  let out = input;
  filtersFor(spec.width).forEach((filters, i) => {
    const b = `block${i + 1}`;
    out = bnRelu(conv(out, filters, spec.padding === 'same' ? 'same' : 'valid', `${b}_conv1`), `${b}_bn1`);
    out = bnRelu(conv(out, filters, 'same', `${b}_conv2`), `${b}_bn2`);
    if (i < BASE_FILTERS.length - 1) {
      out = tfl.layers.maxPooling2d({ poolSize: 2, name: `${b}_pool` }).apply(out) as tfl.SymbolicTensor;
      out = tfl.layers.dropout({ rate: spec.dropout, name: `${b}_dropout` }).apply(out) as tfl.SymbolicTensor;
    }
  });
  const pooled = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(out) as tfl.SymbolicTensor;
  return { input, pooled };
}

function head(x: tfl.SymbolicTensor, spec: ModelSpec, i: number, name: string): tfl.SymbolicTensor {
  return tfl.layers
    .dense({
      units: spec.classes,
      activation: 'softmax',
      kernelInitializer: tfl.initializers.heNormal({ seed: spec.seed * 1000 + 100 + i }),
      name,
    })
    .apply(x) as tfl.SymbolicTensor;
}

/** Phase 1: the CNN alone, six softmax heads on the pooled features. */
export function buildPretrainModel(spec: ModelSpec): tfl.LayersModel {
  const { input, pooled } = cnnTrunk(spec);
  const features = tfl.layers.dropout({ rate: spec.dropout, name: 'gap_dropout' }).apply(pooled) as tfl.SymbolicTensor;
  const outputs = Array.from({ length: spec.length }, (_, i) => head(features, spec, i, `pretrain_digit${i + 1}`));
  return tfl.model({ inputs: input, outputs, name: 'cnn_pretrain' });
}

/** Phase 2: the report's CNN+GRU. */
export function buildGruModel(spec: ModelSpec): tfl.LayersModel {
  const { input, pooled } = cnnTrunk(spec);
  let out = tfl.layers.dropout({ rate: spec.dropout, name: 'gap_dropout' }).apply(pooled) as tfl.SymbolicTensor;
  out = tfl.layers.repeatVector({ n: spec.length, name: 'repeat' }).apply(out) as tfl.SymbolicTensor;
  out = new ResetAfterGRU({ units: GRU_UNITS, seed: spec.seed * 1000 + 200, name: 'gru' }).apply(out) as tfl.SymbolicTensor;
  const sep = tfl.layers.dropout({ rate: spec.dropout, name: 'gru_dropout' }).apply(out) as tfl.SymbolicTensor;
  const outputs = Array.from({ length: spec.length }, (_, i) =>
    head(new TimeStep({ index: i, name: `step${i + 1}` }).apply(sep) as tfl.SymbolicTensor, spec, i, `digit${i + 1}`),
  );
  return tfl.model({ inputs: input, outputs, name: 'cnn_gru' });
}

/** Names of the layers that make up the CNN trunk (conv and BN), shared by both models. */
export function isTrunkLayer(name: string): boolean {
  return /^block\d+_(conv|bn)\d+$/.test(name);
}

/** Copies the conv and BN weights (incl. BN moving statistics) from one model to another. */
export function copyTrunkWeights(from: tfl.LayersModel, to: tfl.LayersModel): number {
  let copied = 0;
  for (const layer of to.layers) {
    if (!isTrunkLayer(layer.name)) continue;
    const source = from.getLayer(layer.name);
    layer.setWeights(source.getWeights());
    copied++;
  }
  return copied;
}

/** The L2 penalty Keras adds for `kernel_regularizer=l2(alpha)`: alpha * sum(w^2) per conv kernel. */
export function l2Penalty(model: tfl.LayersModel, alpha: number): tf.Scalar | null {
  if (alpha <= 0) return null;
  const kernels = model.layers
    .filter((l) => /_conv\d+$/.test(l.name))
    .map((l) => l.trainableWeights[0].read());
  if (kernels.length === 0) return null;
  return tf.tidy(() => tf.mul(alpha, tf.addN(kernels.map((k) => tf.sum(tf.square(k))))) as tf.Scalar);
}

/**
 * Multiply-accumulates of one forward pass per image: the conv layers dominate.
 * Used by the throughput benchmark to show the fraction of the CPU's peak reached.
 */
export function forwardMacs(spec: ModelSpec): number {
  const [kh, kw] = kernelDims(spec);
  let h = spec.height;
  let w = spec.imageWidth;
  let cin = 3;
  let macs = 0;
  filtersFor(spec.width).forEach((f, i) => {
    if (spec.padding !== 'same') {
      h = h - kh + 1;
      w = w - kw + 1;
    }
    macs += h * w * kh * kw * cin * f; // first conv (valid, or same)
    macs += h * w * kh * kw * f * f; // second conv (same)
    cin = f;
    if (i < BASE_FILTERS.length - 1) {
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
    }
  });
  macs += spec.length * (cin * 3 * GRU_UNITS + GRU_UNITS * 3 * GRU_UNITS) + spec.length * GRU_UNITS * spec.classes;
  return macs;
}
