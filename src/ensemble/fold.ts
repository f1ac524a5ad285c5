/**
 * A trained recognizer as plain arrays for inference: each BatchNorm folded into the conv before
 * it, dropout dropped, the GRU's input projection and the heads kept as matrices.
 *
 * At inference BatchNorm is an affine map per channel, y = (x - mean) * gamma / sqrt(var + eps)
 * + beta, so after a conv with kernel W and bias b it is the conv with kernel W * s and bias
 * (b - mean) * s + beta, s = gamma / sqrt(var + eps): one op instead of three, and the bias and
 * ReLU fuse into the conv kernel (the native conv and XNNPACK both take them).
 *
 * `planFromModel` reads the layers of src/train/model.ts's two models (the pretrain CNN with
 * its heads on the pooled features, and the CNN+GRU) and refuses anything else by name, so a
 * model the folded path would compute differently is never silently misread.
 */
import type { tfl } from '../train/tf.ts';

export interface FoldedConv {
  kind: 'conv';
  name: string;
  /** [KH, KW, C, O], HWIO as TF.js stores it, BatchNorm folded in. */
  kernel: Float32Array;
  shape: [number, number, number, number];
  /** O values. */
  bias: Float32Array;
  padding: 'valid' | 'same';
  relu: boolean;
}

export interface MaxPool {
  kind: 'maxPool';
  name: string;
  size: [number, number];
  strides: [number, number];
  padding: 'valid' | 'same';
}

export type TrunkOp = FoldedConv | MaxPool;

export interface GruWeights {
  units: number;
  /** [features, 3 * units], gates z, r, h. */
  kernel: Float32Array;
  /** [units, 3 * units]. */
  recurrentKernel: Float32Array;
  inputBias: Float32Array;
  recurrentBias: Float32Array;
}

export interface InferencePlan {
  height: number;
  width: number;
  /** Characters per image: one softmax head each. */
  length: number;
  classes: number;
  trunk: TrunkOp[];
  /** Channels after global average pooling. */
  features: number;
  /** Absent for a pretrain (CNN-only) model, whose heads read the pooled features. */
  gru: GruWeights | null;
  /** The heads' kernels, [length, in, classes], and biases, [length, classes]. */
  headKernels: Float32Array;
  headBiases: Float32Array;
}

/** The conv kernel and bias with a BatchNorm (inference statistics) folded in. Pure. */
export function foldBatchNorm(
  conv: { kernel: Float32Array; bias: Float32Array | null; outChannels: number },
  bn: { gamma: Float32Array | null; beta: Float32Array | null; mean: Float32Array; variance: Float32Array; epsilon: number },
): { kernel: Float32Array; bias: Float32Array } {
  const O = conv.outChannels;
  const scale = new Float64Array(O);
  for (let o = 0; o < O; o++) scale[o] = (bn.gamma ? bn.gamma[o] : 1) / Math.sqrt(bn.variance[o] + bn.epsilon);
  const kernel = new Float32Array(conv.kernel.length);
  for (let i = 0; i < kernel.length; i++) kernel[i] = conv.kernel[i] * scale[i % O];
  const bias = new Float32Array(O);
  for (let o = 0; o < O; o++) bias[o] = ((conv.bias ? conv.bias[o] : 0) - bn.mean[o]) * scale[o] + (bn.beta ? bn.beta[o] : 0);
  return { kernel, bias };
}

type Layer = tfl.layers.Layer;

/** Why a model cannot be folded; the caller names the model. */
export class UnfoldableModel extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnfoldableModel';
  }
}

function weights(layer: Layer): Float32Array[] {
  return layer.getWeights().map((w) => w.dataSync() as Float32Array);
}

function config(layer: Layer): Record<string, unknown> {
  return layer.getConfig() as Record<string, unknown>;
}

function pair(v: unknown, name: string): [number, number] {
  const p = typeof v === 'number' ? [v, v] : (v as number[]);
  if (!Array.isArray(p) || p.length !== 2) throw new UnfoldableModel(`${name}: unexpected size ${JSON.stringify(v)}`);
  return [p[0], p[1]];
}

function activationOf(layer: Layer): string {
  const a = config(layer).activation;
  return typeof a === 'string' ? a : 'linear';
}

/** The one layer feeding `layer` (its first inbound node). */
function inboundLayer(layer: Layer): Layer | null {
  const node = (layer as unknown as { inboundNodes: Array<{ inboundLayers: Layer[] }> }).inboundNodes[0];
  return node?.inboundLayers[0] ?? null;
}

/** The trunk, in order: conv (+BN folded, +ReLU), max-pool; dropout skipped. Ends at the GAP. */
function readTrunk(layers: Layer[]): { ops: TrunkOp[]; features: number; rest: Layer[] } {
  const ops: TrunkOp[] = [];
  let i = 0;
  let channels = 0;
  for (; i < layers.length; i++) {
    const layer = layers[i];
    const kind = layer.getClassName();
    const cfg = config(layer);
    if (kind === 'InputLayer' || kind === 'Dropout') continue;
    if (kind === 'Conv2D' || kind === 'InputConv2D') {
      const [kernel, bias] = weights(layer);
      const shape = layer.getWeights()[0].shape as [number, number, number, number];
      if (pair(cfg.strides, layer.name).some((s) => s !== 1) || pair(cfg.dilationRate ?? cfg.dilation_rate ?? 1, layer.name).some((d) => d !== 1)) {
        throw new UnfoldableModel(`${layer.name}: strides and dilation other than 1 are not supported`);
      }
      if (cfg.dataFormat !== 'channelsLast') throw new UnfoldableModel(`${layer.name}: data format ${String(cfg.dataFormat)}`);
      const act = activationOf(layer);
      if (act !== 'linear' && act !== 'relu') throw new UnfoldableModel(`${layer.name}: activation ${act}`);
      ops.push({ kind: 'conv', name: layer.name, kernel: kernel.slice(), shape, bias: bias ? bias.slice() : new Float32Array(shape[3]), padding: cfg.padding as 'valid' | 'same', relu: act === 'relu' });
      channels = shape[3];
      continue;
    }
    const last = ops[ops.length - 1];
    if (kind === 'BatchNormalization') {
      if (!last || last.kind !== 'conv' || last.relu || inboundLayer(layer)?.name !== last.name) {
        throw new UnfoldableModel(`${layer.name}: a BatchNormalization that does not directly follow a conv`);
      }
      const axis = cfg.axis as number;
      if (axis !== -1 && axis !== 3) throw new UnfoldableModel(`${layer.name}: normalizes axis ${axis}, not the channels`);
      const w = weights(layer);
      const center = cfg.center !== false;
      const scale = cfg.scale !== false;
      let k = 0;
      const gamma = scale ? w[k++] : null;
      const beta = center ? w[k++] : null;
      const [mean, variance] = [w[k++], w[k++]];
      const folded = foldBatchNorm({ kernel: last.kernel, bias: last.bias, outChannels: last.shape[3] }, { gamma, beta, mean, variance, epsilon: cfg.epsilon as number });
      last.kernel = folded.kernel;
      last.bias = folded.bias;
      last.name = `${last.name}+${layer.name}`;
      continue;
    }
    if (kind === 'Activation') {
      if (!last || last.kind !== 'conv' || last.relu || cfg.activation !== 'relu') {
        throw new UnfoldableModel(`${layer.name}: an activation other than a ReLU after a conv (${String(cfg.activation)})`);
      }
      last.relu = true;
      continue;
    }
    if (kind === 'MaxPooling2D') {
      if (cfg.dataFormat !== 'channelsLast') throw new UnfoldableModel(`${layer.name}: data format ${String(cfg.dataFormat)}`);
      const size = pair(cfg.poolSize, layer.name);
      ops.push({ kind: 'maxPool', name: layer.name, size, strides: cfg.strides == null ? size : pair(cfg.strides, layer.name), padding: cfg.padding as 'valid' | 'same' });
      continue;
    }
    if (kind === 'GlobalAveragePooling2D') {
      if (cfg.dataFormat !== 'channelsLast') throw new UnfoldableModel(`${layer.name}: data format ${String(cfg.dataFormat)}`);
      return { ops, features: channels, rest: layers.slice(i + 1) };
    }
    throw new UnfoldableModel(`layer ${layer.name} (${kind}) is not part of the recognizer's trunk`);
  }
  throw new UnfoldableModel('no GlobalAveragePooling2D layer: not the recognizer of src/train/model.ts');
}

function readGru(layers: Layer[], length: number): GruWeights | null {
  const gru = layers.filter((l) => l.getClassName() === 'ResetAfterGRU');
  const repeat = layers.filter((l) => l.getClassName() === 'RepeatVector');
  if (gru.length === 0 && repeat.length === 0) return null;
  if (gru.length !== 1 || repeat.length !== 1) throw new UnfoldableModel('expected one RepeatVector and one ResetAfterGRU');
  const n = config(repeat[0]).n as number;
  if (n !== length) throw new UnfoldableModel(`RepeatVector(${n}) but ${length} heads`);
  const [kernel, recurrentKernel, bias] = weights(gru[0]);
  const units = config(gru[0]).units as number;
  return {
    units,
    kernel: kernel.slice(),
    recurrentKernel: recurrentKernel.slice(),
    inputBias: bias.slice(0, 3 * units),
    recurrentBias: bias.slice(3 * units, 6 * units),
  };
}

/**
 * The model's heads, in output order, each checked to read what the plan feeds it: the pooled
 * features (pretrain) or time step i of the GRU (head i).
 */
function readHeads(model: tfl.LayersModel, hasGru: boolean): { kernels: Float32Array; biases: Float32Array; classes: number; inputs: number } {
  const heads = model.outputLayers;
  const first = heads[0].getWeights()[0].shape as [number, number];
  const [inputs, classes] = first;
  const kernels = new Float32Array(heads.length * inputs * classes);
  const biases = new Float32Array(heads.length * classes);
  heads.forEach((head, i) => {
    if (head.getClassName() !== 'Dense' || activationOf(head) !== 'softmax') {
      throw new UnfoldableModel(`output ${head.name} is not a Dense softmax head`);
    }
    const source = inboundLayer(head);
    const kind = source?.getClassName();
    if (hasGru ? kind !== 'TimeStep' || (config(source!).index as number) !== i : kind !== 'Dropout' && kind !== 'GlobalAveragePooling2D') {
      throw new UnfoldableModel(`head ${head.name} reads ${source?.name ?? 'nothing'} (${kind}), not ${hasGru ? `GRU step ${i}` : 'the pooled features'}`);
    }
    const [k, b] = weights(head);
    const shape = head.getWeights()[0].shape;
    if (shape[0] !== inputs || shape[1] !== classes) throw new UnfoldableModel(`head ${head.name} has shape ${shape}, head 0 ${first}`);
    kernels.set(k, i * inputs * classes);
    if (b) biases.set(b, i * classes);
  });
  return { kernels, biases, classes, inputs };
}

/** Reads a loaded recognizer into a plan; throws UnfoldableModel for any other model. */
export function planFromModel(model: tfl.LayersModel): InferencePlan {
  if (model.inputs.length !== 1) throw new UnfoldableModel(`${model.inputs.length} inputs, expected one image input`);
  const [, height, width, channels] = model.inputs[0].shape as number[];
  if (channels !== 3) throw new UnfoldableModel(`input has ${channels} channels, expected 3`);
  const { ops, features, rest } = readTrunk(model.layers);
  const length = model.outputs.length;
  const gru = readGru(rest, length);
  const heads = readHeads(model, gru !== null);
  const expected = gru ? gru.units : features;
  if (heads.inputs !== expected) throw new UnfoldableModel(`heads take ${heads.inputs} inputs, the layer before gives ${expected}`);
  if (gru && gru.kernel.length !== features * 3 * gru.units) throw new UnfoldableModel(`GRU kernel does not take ${features} features`);
  return { height, width, length, classes: heads.classes, trunk: ops, features, gru, headKernels: heads.kernels, headBiases: heads.biases };
}
