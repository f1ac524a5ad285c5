/**
 * The native convolution kernels (native/kernels.cc, built at install by native/build.mjs) as
 * wasm-backend kernels: Conv2D, FusedConv2D (bias, linear or ReLU), Conv2DBackpropInput and
 * Conv2DBackpropFilter, computed in place on the wasm heap. The wasm build of XNNPACK has 128-bit
 * SIMD without FMA and is tuned for inference; at this model's shapes the native loops are several
 * times faster (bench/kernels.ts). They take stride 1, dilation 1, NHWC float32; anything else goes to
 * the kernel they replace. Also per-channel work that wasm does slowly at few channels: the
 * BatchNorm forward pass, Add/Sub/Mul/Div of a full tensor and a vector of its channels, and the
 * max-pool gradient. wasm-kernels.ts registers them, with its other replacements.
 *
 * The addon is optional. It is not loaded, and training falls back to the wasm kernels, when it
 * was not built (no compiler), was built from another kernels.cc (stale: `npm run build:native`),
 * needs CPU features this machine lacks (an image built elsewhere), or SWEEP_NATIVE=0. Why is
 * said in the backend's reason, which is stored with every run.
 */
import { createHash } from 'node:crypto';
import { sha256File } from '../util/hash.ts';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as tfc from '@tensorflow/tfjs-core';

type TF = typeof tfc;
type KernelArgs = Parameters<tfc.KernelFunc>[0];
type Pad = 'valid' | 'same' | number | tfc.backend_util.ExplicitPadding;

/** native/kernels.cc: arrays first, then sizes (see there for the layouts). */
interface Addon {
  conv2d(
    x: Float32Array, filter: Float32Array, bias: Float32Array | null, out: Float32Array,
    b: number, h: number, w: number, c: number, kh: number, kw: number, o: number, ho: number, wo: number,
    top: number, left: number, relu: number,
  ): void;
  conv2dInputGrad(
    dy: Float32Array, filter: Float32Array, dx: Float32Array,
    b: number, ho: number, wo: number, o: number, kh: number, kw: number, c: number, h: number, w: number,
    top: number, left: number,
  ): void;
  conv2dFilterGrad(
    x: Float32Array, dy: Float32Array, dw: Float32Array,
    b: number, h: number, w: number, c: number, ho: number, wo: number, o: number, kh: number, kw: number,
    top: number, left: number,
  ): void;
  maxPoolGrad(
    x: Float32Array, dy: Float32Array, dx: Float32Array, b: number, h: number, w: number, c: number,
    ho: number, wo: number, fh: number, fw: number, sh: number, sw: number, top: number, left: number,
  ): void;
  batchNorm(
    x: Float32Array, mean: Float32Array, variance: Float32Array, offset: Float32Array | null, scale: Float32Array | null,
    y: Float32Array, c: number, eps: number,
  ): void;
  channelBinary(a: Float32Array, v: Float32Array, out: Float32Array, op: number, c: number, vFirst: number): void;
}

export interface NativeStatus {
  addon: Addon | null;
  /** 'loaded (x86-64-v3)' or why not. */
  reason: string;
}

/** native/build/sweep_kernels.json, written by native/build.mjs. */
interface Manifest {
  hash: string; // sha256 of kernels.cc, the flags and the compiler's --version line
  binary: string; // sha256 of sweep_kernels.node
  march: string;
  requires: string[]; // /proc/cpuinfo flags the binary needs
  flags: string[];
  compiler: string;
}

const NATIVE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'native');

let status: NativeStatus | undefined;

/** Loads the addon once per process; never throws. */
export function nativeKernels(dir = NATIVE_DIR): NativeStatus {
  if (status && dir === NATIVE_DIR) return status;
  const s = load(dir);
  if (dir === NATIVE_DIR) status = s;
  return s;
}

function load(dir: string): NativeStatus {
  try {
    return loadOrThrow(dir);
  } catch (err) {
    return { addon: null, reason: `unusable build: ${String((err as Error).message).split('\n')[0]}` };
  }
}

function loadOrThrow(dir: string): NativeStatus {
  const none = (reason: string): NativeStatus => ({ addon: null, reason });
  if (process.env.SWEEP_NATIVE === '0') return none('disabled by SWEEP_NATIVE=0');
  const binary = path.join(dir, 'build', 'sweep_kernels.node');
  const manifestPath = path.join(dir, 'build', 'sweep_kernels.json');
  if (!existsSync(binary) || !existsSync(manifestPath)) return none('not built (npm run build:native; needs a C++ compiler)');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Partial<Manifest>;
  if (typeof manifest.hash !== 'string' || !Array.isArray(manifest.flags) || !Array.isArray(manifest.requires) || typeof manifest.binary !== 'string') {
    return none(`${manifestPath} is not a manifest of native/build.mjs (run npm run build:native)`);
  }
  const hash = createHash('sha256')
    .update(readFileSync(path.join(dir, 'kernels.cc')))
    .update(JSON.stringify(manifest.flags))
    .update(manifest.compiler ?? '')
    .digest('hex');
  if (hash !== manifest.hash) return none('built from another native/kernels.cc (stale; run npm run build:native)');
  if (sha256File(binary) !== manifest.binary) {
    return none('the binary is not the one its manifest names (run npm run build:native)');
  }
  const missing = missingCpuFeatures(manifest.requires);
  if (missing.length) return none(`built for ${manifest.march}; this CPU lacks ${missing.join(', ')} (run npm run build:native here)`);
  try {
    const addon = createRequire(import.meta.url)(binary) as Addon;
    return { addon, reason: `loaded (${manifest.march})` };
  } catch (err) {
    return none(`failed to load: ${String((err as Error).message).split('\n')[0]}`);
  }
}

function missingCpuFeatures(requires: string[]): string[] {
  if (requires.length === 0) return [];
  let flags: Set<string>;
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    if (!line) return [];
    flags = new Set(line.split(':')[1].trim().split(/\s+/));
  } catch {
    return []; // not Linux: the build ran here (-march=native) or the user chose the flags
  }
  return requires.filter((f) => !flags.has(f));
}

// ---- kernels ------------------------------------------------------------------------------------

interface WasmHeap {
  makeOutput(shape: number[], dtype: tfc.DataType): tfc.TensorInfo;
  typedArrayFromHeap(t: tfc.TensorInfo): tfc.backend_util.TypedArray;
  disposeData(dataId: tfc.DataId): boolean;
}

/** Calls the addon to fill `out`; frees `out` if it throws (the engine never sees it). */
function run(heap: WasmHeap, out: tfc.TensorInfo, call: () => void): void {
  try {
    call();
  } catch (err) {
    heap.disposeData(out.dataId);
    throw err;
  }
}

function one(v: number | [number, number] | undefined): boolean {
  if (v === undefined) return true;
  return typeof v === 'number' ? v === 1 : v[0] === 1 && v[1] === 1;
}

function float32(...t: (tfc.TensorInfo | undefined)[]): boolean {
  return t.every((i) => i != null && i.dtype === 'float32');
}

/**
 * Conv2D and FusedConv2D. FusedConv2D is taken with a bias of O values (or none) and a linear or
 * ReLU activation, which is what tfjs-layers' Conv2D asks for; others go to `fallback`.
 */
export function nativeConv2dKernel(tf: TF, addon: Addon, fallback: tfc.KernelConfig | null, fused: boolean): tfc.KernelFunc {
  return (args: KernelArgs) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, tfc.TensorInfo | undefined>;
    const attrs = args.attrs as unknown as tfc.FusedConv2DAttrs;
    const activation = fused ? attrs.activation : 'linear';
    const ok =
      x && filter && float32(x, filter) && attrs.dataFormat === 'NHWC' && one(attrs.strides) && one(attrs.dilations) &&
      (activation === 'linear' || activation === 'relu') && preluActivationWeights == null &&
      (bias == null || (bias.dtype === 'float32' && isChannelVector(bias, filter.shape[3])));
    if (!ok) return fallbackOr(fallback, args, fused ? 'FusedConv2D' : 'Conv2D');
    const [B, H, W, C] = x.shape;
    const [KH, KW, , O] = filter.shape;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], filter.shape as [number, number, number, number], 1, 1, attrs.pad as Pad, attrs.dimRoundingMode,
    );
    const heap = args.backend as WasmHeap;
    const out = heap.makeOutput([B, info.outHeight, info.outWidth, O], 'float32');
    // Views after makeOutput: allocating may grow the wasm memory and detach older views.
    run(heap, out, () => addon.conv2d(
      view(heap, x), view(heap, filter), bias ? view(heap, bias) : null, view(heap, out),
      B, H, W, C, KH, KW, O, info.outHeight, info.outWidth, info.padInfo.top, info.padInfo.left, activation === 'relu' ? 1 : 0,
    ));
    return out;
  };
}

export function nativeConv2dInputGradKernel(tf: TF, addon: Addon, fallback: tfc.KernelFunc | null): tfc.KernelFunc {
  return (args: KernelArgs) => {
    const { dy, filter } = args.inputs as Record<string, tfc.TensorInfo | undefined>;
    const attrs = args.attrs as unknown as tfc.Conv2DBackpropInputAttrs;
    if (!dy || !filter || !float32(dy, filter) || attrs.dataFormat !== 'NHWC' || !one(attrs.strides)) {
      if (fallback) return fallback(args);
      throw new Error('Conv2DBackpropInput on wasm: no kernel for these attributes');
    }
    const [B, H, W, C] = attrs.inputShape;
    const [KH, KW, , O] = filter.shape;
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape, filter.shape as [number, number, number, number], 1, 1, attrs.pad as Pad, attrs.dimRoundingMode,
    );
    const heap = args.backend as WasmHeap;
    const out = heap.makeOutput([B, H, W, C], 'float32');
    run(heap, out, () => addon.conv2dInputGrad(
      view(heap, dy), view(heap, filter), view(heap, out),
      B, dy.shape[1], dy.shape[2], O, KH, KW, C, H, W, info.padInfo.top, info.padInfo.left,
    ));
    return out;
  };
}

export function nativeConv2dFilterGradKernel(tf: TF, addon: Addon, fallback: tfc.KernelFunc | null): tfc.KernelFunc {
  return (args: KernelArgs) => {
    const { x, dy } = args.inputs as Record<string, tfc.TensorInfo | undefined>;
    const attrs = args.attrs as unknown as tfc.Conv2DBackpropFilterAttrs;
    if (!x || !dy || !float32(x, dy) || attrs.dataFormat !== 'NHWC' || !one(attrs.strides)) {
      if (fallback) return fallback(args);
      throw new Error('Conv2DBackpropFilter on wasm: no kernel for these attributes');
    }
    const [B, H, W, C] = x.shape;
    const [KH, KW, , O] = attrs.filterShape;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], attrs.filterShape, 1, 1, attrs.pad as Pad, attrs.dimRoundingMode,
    );
    const heap = args.backend as WasmHeap;
    const out = heap.makeOutput([...attrs.filterShape], 'float32');
    run(heap, out, () => addon.conv2dFilterGrad(
      view(heap, x), view(heap, dy), view(heap, out),
      B, H, W, C, dy.shape[1], dy.shape[2], O, KH, KW, info.padInfo.top, info.padInfo.left,
    ));
    return out;
  };
}

/** MaxPoolGrad; `fallback` takes what the addon does not (other dtypes). */
export function nativeMaxPoolGradKernel(tf: TF, addon: Addon, fallback: tfc.KernelFunc): tfc.KernelFunc {
  return (args: KernelArgs) => {
    const { dy, input } = args.inputs as { dy: tfc.TensorInfo; input: tfc.TensorInfo };
    if (!float32(dy, input)) return fallback(args);
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tfc.MaxPoolGradAttrs;
    const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    const heap = args.backend as WasmHeap;
    const out = heap.makeOutput([...input.shape], 'float32');
    run(heap, out, () => addon.maxPoolGrad(
      view(heap, input), view(heap, dy), view(heap, out), info.batchSize, info.inHeight, info.inWidth, info.inChannels,
      info.outHeight, info.outWidth, info.effectiveFilterHeight, info.effectiveFilterWidth,
      info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left,
    ));
    return out;
  };
}

/** v is a vector of c channels: shape [c], [1,1,c], ... */
function isChannelVector(v: tfc.TensorInfo, c: number): boolean {
  return v.shape.length > 0 && v.shape[v.shape.length - 1] === c && v.shape.slice(0, -1).every((d) => d === 1);
}

/** The size of x's last axis when `v` broadcasts along it alone ([C], [1,1,C], ...), else 0. */
function channelsOf(x: tfc.TensorInfo, v: tfc.TensorInfo): number {
  const c = x.shape[x.shape.length - 1];
  return c != null && v.shape.length <= x.shape.length && isChannelVector(v, c) ? c : 0;
}

/** FusedBatchNorm with every statistic and parameter a vector of x's channels. */
export function nativeBatchNormKernel(tf: TF, addon: Addon, stock: tfc.KernelConfig | null): tfc.KernelFunc {
  return (args: KernelArgs) => {
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, tfc.TensorInfo | undefined>;
    const { varianceEpsilon } = args.attrs as unknown as tfc.FusedBatchNormAttrs;
    const params = [mean, variance, offset, scale].filter((p): p is tfc.TensorInfo => p != null);
    const c = x && mean && variance ? channelsOf(x, mean) : 0;
    if (!x || c === 0 || !float32(x, ...params) || !params.every((p) => channelsOf(x, p) === c)) {
      return fallbackOr(stock, args, 'FusedBatchNorm');
    }
    const heap = args.backend as WasmHeap;
    const out = heap.makeOutput([...x.shape], 'float32');
    run(heap, out, () => addon.batchNorm(
      view(heap, x), view(heap, mean!), view(heap, variance!), offset ? view(heap, offset) : null,
      scale ? view(heap, scale) : null, view(heap, out), c, varianceEpsilon,
    ));
    return out;
  };
}

const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3 } as const;
export type ChannelBinaryOp = keyof typeof BINARY_OPS;

/** Add, Sub, Multiply, RealDiv of a full float32 tensor and a vector of its channels (either side). */
export function nativeChannelBinaryKernel(addon: Addon, stock: tfc.KernelConfig | null, op: ChannelBinaryOp): tfc.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tfc.TensorInfo; b: tfc.TensorInfo };
    if (float32(a, b)) {
      const size = (t: tfc.TensorInfo) => t.shape.reduce((p, d) => p * d, 1);
      const vFirst = size(a) < size(b);
      const [full, vec] = vFirst ? [b, a] : [a, b];
      const c = channelsOf(full, vec);
      if (c > 0 && size(full) > c) {
        const heap = args.backend as WasmHeap;
        const out = heap.makeOutput([...full.shape], 'float32');
        run(heap, out, () => addon.channelBinary(view(heap, full), view(heap, vec), view(heap, out), BINARY_OPS[op], c, vFirst ? 1 : 0));
        return out;
      }
    }
    return fallbackOr(stock, args, op);
  };
}

function view(heap: WasmHeap, t: tfc.TensorInfo): Float32Array {
  return heap.typedArrayFromHeap(t) as Float32Array;
}

function fallbackOr(fallback: tfc.KernelConfig | null, args: KernelArgs, name: string): tfc.TensorInfo | tfc.TensorInfo[] {
  if (fallback) return fallback.kernelFunc(args);
  throw new Error(`${name} on wasm: no kernel for these attributes`);
}
