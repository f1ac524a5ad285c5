/**
 * Training kernels for the tfjs wasm backend.
 *
 * The wasm backend (4.22.0) is built for inference. To train the recognizer on it we register, here
 * and nowhere else (each measured by bench/kernels.ts):
 *  - Conv2DBackpropFilter: missing on wasm, so no conv net can train as shipped. Composed as one
 *    XNNPACK conv2d of the transposed input with the transposed output gradient as its filter.
 *  - Conv2DBackpropInput: wasm ships a naive loop (~10x slower than its forward conv). Replaced by a
 *    conv2d of the output gradient with the flipped, channel-swapped filter.
 *  - The FusedBatchNorm gradient: the stock one tiles 1/sqrt(var) to the full tensor size (wasm's
 *    Tile is a slow per-element loop) and builds several full-size temporaries. Replaced by
 *    broadcasting products and shared reductions.
 *  - Sum and Mean over leading axes (BN statistics, bias gradients, global average pooling): wasm
 *    transposes the reduced axes innermost and then reduces. An XNNPACK average pool over the same
 *    elements is an order of magnitude faster (and, measured against float64, no less accurate).
 *  - The Mean and Sum gradients: the stock ones build ones(x.shape) and multiply by the broadcast
 *    gradient; an outer product matMul(ones[R,1], g[1,C]) writes the same values in one pass.
 *  - MaxPoolGrad: wasm's picks the wrong position when a window's maximum is not positive (it
 *    starts from 0 at the first position) and the last of tied maxima; cpu and TensorFlow pick
 *    the first maximum. Replaced by a JS loop over the wasm heap that matches cpu exactly and is
 *    faster than the stock kernel.
 *  - BatchMatMul and _FusedMatMul with transposeA/transposeB: wasm leaves XNNPACK for a slow loop
 *    (5-20x slower at the GRU and Dense sizes, which every backward pass of a matMul hits).
 *    Transposing the operand first and multiplying untransposed is much faster.
 *  - Identity and same-dtype Cast: wasm copies the buffer; here they share it (reference counted,
 *    as the cpu backend does). Tensors are immutable, so sharing is safe; BN's moments call
 *    cast(x, 'float32') on float32 input and its gradient clones, both full size.
 *  - nativeConv: Conv2D, FusedConv2D and both conv gradients computed by the native addon
 *    (src/train/native-kernels.ts, native/kernels.cc) on the wasm heap, several times faster than
 *    XNNPACK's wasm build at this model's shapes; nativePerChannel: the BatchNorm forward pass,
 *    Add/Sub/Mul/Div of a tensor and a vector of its channels, and the max-pool gradient, there too.
 *    Registered only where the addon was built and loads; where they decline a case (strides,
 *    dilations, other broadcasts, other dtypes), the kernels above (or stock) take it.
 *
 * Kernels are registered for the 'wasm' backend only. Gradients live in one global registry shared
 * by every backend, so the replaced gradients check the active backend and defer to the stock ones
 * elsewhere; the cpu backend therefore stays a faithful reference for the tests.
 *
 * A kernelFunc may call tf ops: the engine runs kernels with the tape off (kernelDepth > 0), and a
 * Tensor returned from a kernelFunc is used as the kernel's output as is. Temporaries are freed
 * with tidy.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import {
  nativeBatchNormKernel,
  nativeChannelBinaryKernel,
  nativeConv2dFilterGradKernel,
  nativeConv2dInputGradKernel,
  nativeConv2dKernel,
  nativeKernels,
  nativeMaxPoolGradKernel,
} from './native-kernels.ts';

type TF = typeof tfc;
type Tensor = tfc.Tensor;
type Tensor4D = tfc.Tensor4D;
type Pad = 'valid' | 'same' | number | tfc.backend_util.ExplicitPadding;
type Pair = [number, number];
type KernelArgs = Parameters<tfc.KernelFunc>[0];

/** The replacements, each switchable on its own (the bench measures them one by one). */
export type WasmTrainingKernel =
  | 'conv2dBackpropFilter'
  | 'conv2dBackpropInput'
  | 'batchNormGrad'
  | 'reduceLeadingAxes'
  | 'broadcastGrads'
  | 'sharedIdentity'
  | 'maxPoolGrad'
  | 'matMulTransposed'
  | 'nativeConv'
  | 'nativePerChannel';

interface Replacement {
  kernels?: { name: string; make: (tf: TF, stock: tfc.KernelConfig | null) => tfc.KernelFunc }[];
  gradients?: { name: string; make: (tf: TF, stock: tfc.GradConfig) => tfc.GradConfig }[];
}

const REPLACEMENTS: Record<WasmTrainingKernel, Replacement> = {
  conv2dBackpropFilter: { kernels: [{ name: 'Conv2DBackpropFilter', make: conv2dBackpropFilterKernel }] },
  conv2dBackpropInput: { kernels: [{ name: 'Conv2DBackpropInput', make: conv2dBackpropInputKernel }] },
  batchNormGrad: { gradients: [{ name: 'FusedBatchNorm', make: batchNormGrad }] },
  reduceLeadingAxes: {
    kernels: [
      { name: 'Sum', make: (tf, stock) => reduceLeadingKernel(tf, stock, 'sum') },
      { name: 'Mean', make: (tf, stock) => reduceLeadingKernel(tf, stock, 'mean') },
    ],
  },
  broadcastGrads: {
    gradients: [
      { name: 'Mean', make: (tf, stock) => broadcastGrad(tf, stock, 'mean') },
      { name: 'Sum', make: (tf, stock) => broadcastGrad(tf, stock, 'sum') },
    ],
  },
  sharedIdentity: {
    kernels: [
      { name: 'Identity', make: sharedIdentityKernel },
      { name: 'Cast', make: sharedCastKernel },
    ],
  },
  maxPoolGrad: { kernels: [{ name: 'MaxPoolGrad', make: maxPoolGradKernel }] },
  matMulTransposed: {
    kernels: [
      { name: 'BatchMatMul', make: untransposedMatMulKernel },
      { name: '_FusedMatMul', make: untransposedMatMulKernel },
    ],
  },
  // Last, so it wins the names it shares with the compositions above, which it falls back to.
  nativeConv: {
    kernels: [
      { name: 'Conv2D', make: (tf, stock) => nativeConv2dKernel(tf, addon(), stock, false) },
      { name: 'FusedConv2D', make: (tf, stock) => nativeConv2dKernel(tf, addon(), stock, true) },
      { name: 'Conv2DBackpropInput', make: (tf, stock) => nativeConv2dInputGradKernel(tf, addon(), conv2dBackpropInputKernel(tf, stock)) },
      { name: 'Conv2DBackpropFilter', make: (tf) => nativeConv2dFilterGradKernel(tf, addon(), conv2dBackpropFilterKernel(tf)) },
    ],
  },
  nativePerChannel: {
    kernels: [
      { name: 'FusedBatchNorm', make: (tf, stock) => nativeBatchNormKernel(tf, addon(), stock) },
      { name: 'MaxPoolGrad', make: (tf, stock) => nativeMaxPoolGradKernel(tf, addon(), maxPoolGradKernel(tf, stock)) },
      ...(['Add', 'Sub', 'Multiply', 'RealDiv'] as const).map((op) => ({
        name: op,
        make: (_tf: TF, stock: tfc.KernelConfig | null) => nativeChannelBinaryKernel(addon(), stock, op),
      })),
    ],
  },
};

const NATIVE: readonly WasmTrainingKernel[] = ['nativeConv', 'nativePerChannel'];

function addon() {
  const { addon, reason } = nativeKernels();
  if (!addon) throw new Error(`The native kernels are not available: ${reason}.`);
  return addon;
}

export const WASM_TRAINING_KERNELS = Object.keys(REPLACEMENTS) as readonly WasmTrainingKernel[];

/** Needed to train at all; the rest only make training faster. */
export const REQUIRED_WASM_TRAINING_KERNELS: readonly WasmTrainingKernel[] = ['conv2dBackpropFilter'];

/** Every replacement this machine can use: all of them, the native ones only where the addon loads. */
export function availableWasmTrainingKernels(): WasmTrainingKernel[] {
  const native = nativeKernels().addon != null;
  return WASM_TRAINING_KERNELS.filter((id) => native || !NATIVE.includes(id));
}

// Shared across module copies, so a second copy of this file recognises the first one's kernels.
const REPLACES = Symbol.for('sweep.wasmTrainingKernels.replaces');
const OWNER = Symbol.for('sweep.wasmTrainingKernels.owner');
const WASM = 'wasm';

interface OwnKernelConfig extends tfc.KernelConfig {
  [REPLACES]: tfc.KernelConfig | null;
  [OWNER]: WasmTrainingKernel;
}
interface OwnGradConfig extends tfc.GradConfig {
  [REPLACES]: tfc.GradConfig | null;
  [OWNER]: WasmTrainingKernel;
}

/**
 * Registers the training kernels on the wasm backend. Idempotent. `only` limits which are
 * registered (the others are put back to stock); the default registers every available one.
 * Where two replacements claim one kernel, the later in WASM_TRAINING_KERNELS wins.
 * Returns the names of the kernels and gradients now replaced.
 */
export function registerWasmTrainingKernels(
  tf: TF,
  only: readonly WasmTrainingKernel[] = availableWasmTrainingKernels(),
): string[] {
  if (only.some((id) => NATIVE.includes(id))) addon(); // says why, before anything is changed
  type Claim<M> = { id: WasmTrainingKernel; make: M } | null;
  const kernels = new Map<string, Claim<(tf: TF, stock: tfc.KernelConfig | null) => tfc.KernelFunc>>();
  const gradients = new Map<string, Claim<(tf: TF, stock: tfc.GradConfig) => tfc.GradConfig>>();
  for (const id of WASM_TRAINING_KERNELS) {
    const on = only.includes(id);
    for (const k of REPLACEMENTS[id].kernels ?? []) {
      if (!kernels.has(k.name)) kernels.set(k.name, null);
      if (on) kernels.set(k.name, { id, make: k.make });
    }
    for (const g of REPLACEMENTS[id].gradients ?? []) {
      if (!gradients.has(g.name)) gradients.set(g.name, null);
      if (on) gradients.set(g.name, { id, make: g.make });
    }
  }
  const done: string[] = [];
  for (const [name, claim] of kernels) {
    if (claim) done.push(putKernel(tf, name, claim.id, (stock) => claim.make(tf, stock)));
    else dropKernel(tf, name);
  }
  for (const [name, claim] of gradients) {
    if (claim) done.push(putGradient(tf, name, claim.id, (stock) => claim.make(tf, stock)));
    else dropGradient(tf, name);
  }
  return done;
}

// ---- registry plumbing -------------------------------------------------------------------------

function putKernel(tf: TF, name: string, id: WasmTrainingKernel, make: (stock: tfc.KernelConfig | null) => tfc.KernelFunc): string {
  const current = tf.getKernel(name, WASM) as OwnKernelConfig | undefined;
  if (current && REPLACES in current && current[OWNER] === id) return name; // already this one
  const stock = current ? (REPLACES in current ? current[REPLACES] : current) : null;
  const config: OwnKernelConfig = { kernelName: name, backendName: WASM, kernelFunc: make(stock), [REPLACES]: stock, [OWNER]: id };
  if (current) tf.unregisterKernel(name, WASM); // registering over a kernel warns; replacing is intended
  tf.registerKernel(config);
  return name;
}

function dropKernel(tf: TF, name: string): void {
  const current = tf.getKernel(name, WASM) as OwnKernelConfig | undefined;
  if (!current || !(REPLACES in current)) return;
  tf.unregisterKernel(name, WASM);
  if (current[REPLACES]) tf.registerKernel(current[REPLACES]);
}

function putGradient(tf: TF, name: string, id: WasmTrainingKernel, make: (stock: tfc.GradConfig) => tfc.GradConfig): string {
  const current = tf.getGradient(name) as OwnGradConfig | undefined;
  if (current && REPLACES in current && current[OWNER] === id) return `${name} gradient`;
  const stock = current ? (REPLACES in current ? current[REPLACES] : current) : null;
  if (!stock) throw new Error(`No stock gradient for '${name}' is registered; import @tensorflow/tfjs-core first.`);
  const config: OwnGradConfig = { ...make(stock), [REPLACES]: stock, [OWNER]: id };
  tf.registerGradient(config);
  return `${name} gradient`;
}

function dropGradient(tf: TF, name: string): void {
  const current = tf.getGradient(name) as OwnGradConfig | undefined;
  if (current && REPLACES in current && current[REPLACES]) tf.registerGradient(current[REPLACES]);
}

// ---- helpers -----------------------------------------------------------------------------------

function pair(v: number | Pair): Pair {
  return typeof v === 'number' ? [v, v] : v;
}

/**
 * Kernels called through tf ops receive Tensors, which the compositions here can hand to other ops.
 * A bare TensorInfo (a kernel calling another kernel's function directly) is not wrapped: a wrapper
 * Tensor would free the caller's buffer when disposed. Such calls go to the stock kernel instead.
 */
function allTensors(tf: TF, ...infos: (tfc.TensorInfo | undefined)[]): boolean {
  return infos.every((t) => t instanceof tf.Tensor);
}

function asTensor<T extends Tensor>(tf: TF, info: tfc.TensorInfo | undefined, kernel: string): T {
  if (info instanceof tf.Tensor) return info as T;
  throw unsupported(kernel, 'an input that is not a Tensor (a direct kernel call)');
}

function unsupported(kernel: string, why: string): Error {
  return new Error(`${kernel} on wasm: ${why} is not supported by the training kernels in src/train/wasm-kernels.ts`);
}

// ---- Conv2DBackpropFilter ----------------------------------------------------------------------

/**
 * dW[i,j,c,o] = sum_{b,y,x} xPad[b, y*s+i, x*s+j, c] * dy[b,y,x,o]
 * which is a 'valid' conv2d of xT = x as [C, H, W, B] (batch<->channels swapped, padding applied by
 * the conv itself) with dy as [Ho, Wo, B, O] for its filter, dilated by the forward stride. Its
 * output is [C, kh, kw, O]. One XNNPACK conv is several times faster than per-tap matMuls here:
 * wasm's matMul with transposeA falls back to a slow path, and im2col needs kh*kw copies of x.
 */
function conv2dBackpropFilterKernel(tf: TF): tfc.KernelFunc {
  return ({ inputs, attrs }) => {
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tfc.Conv2DBackpropFilterAttrs;
    if (dataFormat !== 'NHWC') throw unsupported('Conv2DBackpropFilter', `dataFormat ${dataFormat}`);
    const x = asTensor<Tensor4D>(tf, inputs.x, 'Conv2DBackpropFilter');
    const dy = asTensor<Tensor4D>(tf, inputs.dy, 'Conv2DBackpropFilter');
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad as Pad, dimRoundingMode);
    const [sh, sw] = pair(strides);
    const [kh, kw] = filterShape;
    const p = info.padInfo;
    return tf.tidy(() => {
      const xT = tf.transpose(x, [3, 1, 2, 0]);
      const dyT = tf.transpose(dy, [1, 2, 0, 3]);
      const explicit: tfc.backend_util.ExplicitPadding = [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]];
      let dw = tf.conv2d(xT, dyT, 1, explicit, 'NHWC', [sh, sw]); // [C, >=kh, >=kw, O]
      if (dw.shape[1] !== kh || dw.shape[2] !== kw) dw = tf.slice(dw, [0, 0, 0, 0], [-1, kh, kw, -1]);
      return tf.transpose(dw, [1, 2, 0, 3]);
    });
  };
}

// ---- Conv2DBackpropInput -----------------------------------------------------------------------

/**
 * Stride 1: dx = conv2d(dy padded by (k-1-pad) on each side, W flipped in space with in/out
 * channels swapped). Other strides, and paddings wider than the kernel, go to the stock kernel.
 */
function conv2dBackpropInputKernel(tf: TF, stock: tfc.KernelConfig | null): tfc.KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as tfc.Conv2DBackpropInputAttrs;
    const filterShape = inputs.filter!.shape as [number, number, number, number];
    const info = tf.backend_util.computeConv2DInfo(inputShape, filterShape, strides, 1, pad as Pad, dimRoundingMode);
    const [kh, kw] = filterShape;
    const p = info.padInfo;
    const q = [kh - 1 - p.top, kh - 1 - p.bottom, kw - 1 - p.left, kw - 1 - p.right];
    const simple =
      dataFormat === 'NHWC' && info.strideHeight === 1 && info.strideWidth === 1 && q.every((v) => v >= 0) && allTensors(tf, inputs.dy, inputs.filter);
    if (!simple) {
      if (stock) return stock.kernelFunc(args);
      throw unsupported('Conv2DBackpropInput', `strides ${strides} / pad ${JSON.stringify(pad)} / ${dataFormat}`);
    }
    const dy = inputs.dy as Tensor4D;
    const filter = inputs.filter as Tensor4D;
    return tf.tidy(() => {
      const wFlip = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
      const explicit: tfc.backend_util.ExplicitPadding = [[0, 0], [q[0], q[1]], [q[2], q[3]], [0, 0]];
      return tf.conv2d(dy, wFlip, 1, explicit);
    });
  };
}

// ---- FusedBatchNorm gradient -------------------------------------------------------------------

/**
 * y = (x - mean) * rsqrt(var + eps) * scale + offset, with mean/var/scale/offset broadcast over x.
 * Per-channel factors are formed on the small tensors and broadcast once; sum(dy) and
 * sum(dy * (x - mean)) are computed once and shared. They are computed up front, not inside the
 * thunks, because the engine runs each thunk in its own tidy (a memoised tensor would be freed);
 * in training every one of the five gradients is needed anyway.
 */
function batchNormGrad(tf: TF, stock: tfc.GradConfig): tfc.GradConfig {
  return {
    kernelName: 'FusedBatchNorm',
    inputsToSave: stock.inputsToSave ?? ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dyIn, saved, attrs) => {
      if (tf.getBackend() !== WASM) return stock.gradFunc(dyIn, saved, attrs);
      const dy = dyIn as Tensor;
      const { varianceEpsilon } = attrs as unknown as tfc.FusedBatchNormAttrs;
      const [x, mean, variance, scale] = saved as [Tensor, Tensor, Tensor, Tensor | undefined];
      const axes = tf.broadcast_util.getReductionAxes(mean.shape, x.shape);
      const reduce = (t: Tensor): Tensor => tf.reshape(axes.length > 0 ? tf.sum(t, axes) : t, mean.shape);
      const invStd = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
      const invStdScaled = scale == null ? invStd : tf.mul(invStd, scale);
      const sumDy = tf.tidy(() => reduce(dy));
      const sumDyXc = tf.tidy(() => reduce(tf.mul(dy, tf.sub(x, mean))));
      return {
        x: () => tf.mul(dy, invStdScaled),
        mean: () => tf.neg(tf.mul(sumDy, invStdScaled)),
        variance: () => tf.mul(tf.mul(sumDyXc, invStdScaled), tf.mul(tf.square(invStd), tf.scalar(-0.5))),
        scale: () => tf.mul(sumDyXc, invStd),
        offset: () => tf.clone(sumDy),
      };
    },
  };
}

// ---- Sum / Mean over leading axes --------------------------------------------------------------

/**
 * Splits a shape around a contiguous, sorted block of axes: [pre, reduced, post] element counts.
 * Null when the axes are not one contiguous block.
 */
function splitAround(shape: readonly number[], axes: readonly number[]): [number, number, number] | null {
  if (axes.length === 0) return null;
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1] + 1) return null;
  const size = (a: number, b: number) => shape.slice(a, b).reduce((p, d) => p * d, 1);
  const first = axes[0];
  const last = axes[axes.length - 1];
  return [size(0, first), size(first, last + 1), size(last + 1, shape.length)];
}

function sortedAxes(tf: TF, axis: number | number[], shape: readonly number[]): number[] {
  return [...new Set(tf.util.parseAxisParam(axis, shape as number[]))].sort((a, b) => a - b);
}

/**
 * Sum or Mean over a contiguous block of axes that leaves channels after it (e.g. [0,1,2] of
 * NHWC, or [1,2] for global average pooling): x viewed as [pre, R, 1, post] and average-pooled
 * with an [R, 1] window, which XNNPACK does in one vectorised pass over the channels. Anything
 * else (innermost axes, which wasm already reduces without a transpose; int32) goes to stock.
 */
function reduceLeadingKernel(tf: TF, stock: tfc.KernelConfig | null, op: 'sum' | 'mean'): tfc.KernelFunc {
  if (!stock) throw new Error(`wasm backend has no ${op === 'sum' ? 'Sum' : 'Mean'} kernel to fall back to`);
  return (args: KernelArgs) => {
    const { axis, keepDims } = args.attrs as unknown as tfc.SumAttrs;
    const xInfo = args.inputs.x!;
    const axes = sortedAxes(tf, axis, xInfo.shape);
    const split = splitAround(xInfo.shape, axes);
    if (xInfo.dtype !== 'float32' || split == null || split[2] === 1 || split[1] === 1 || !allTensors(tf, xInfo)) {
      return stock.kernelFunc(args);
    }
    const [pre, r, post] = split;
    const x = xInfo as Tensor;
    const outShape = xInfo.shape.flatMap((d, i) => (axes.includes(i) ? (keepDims ? [1] : []) : [d]));
    return tf.tidy(() => {
      const mean = tf.avgPool(tf.reshape(x, [pre, r, 1, post]) as Tensor4D, [r, 1], 1, 'valid');
      return tf.reshape(op === 'mean' ? mean : tf.mul(mean, tf.scalar(r)), outShape);
    });
  };
}

// ---- Mean / Sum gradients ----------------------------------------------------------------------

/**
 * d/dx of a reduction is the (scaled) output gradient broadcast back to x's shape. Stock builds
 * ones(x.shape) (a JS fill) and multiplies by the broadcast gradient (XNNPACK's broadcasting
 * path is slow for a short innermost vector). For a contiguous block of reduced axes the same
 * values come from one outer product, matMul(ones[pre*R, 1], g[1, post]) when pre is 1, else a
 * broadcasting add onto zeros.
 */
function broadcastGrad(tf: TF, stock: tfc.GradConfig, op: 'sum' | 'mean'): tfc.GradConfig {
  return {
    kernelName: stock.kernelName,
    inputsToSave: ['x'],
    gradFunc: (dyIn, saved, attrs) => {
      if (tf.getBackend() !== WASM) return stock.gradFunc(dyIn, saved, attrs);
      const dy = dyIn as Tensor;
      const [x] = saved as [Tensor];
      const { axis } = attrs as unknown as tfc.SumAttrs;
      const axes = sortedAxes(tf, axis, x.shape);
      const split = splitAround(x.shape, axes);
      if (split == null) return stock.gradFunc(dyIn, saved, attrs);
      const [pre, r, post] = split;
      const g = op === 'mean' ? tf.div(dy, tf.scalar(r)) : dy;
      const full = (): Tensor => {
        if (pre === 1) return tf.reshape(tf.matMul(tf.ones([r, 1]), tf.reshape(g, [1, post])), x.shape);
        return tf.reshape(tf.add(tf.zeros([pre, r, post]), tf.reshape(g, [pre, 1, post])), x.shape);
      };
      return { x: full };
    },
  };
}

// ---- Identity / Cast ---------------------------------------------------------------------------

/** Shares the input's buffer (reference counted) instead of copying it, as Reshape already does. */
function shareBuffer(args: KernelArgs): tfc.TensorInfo {
  const x = args.inputs.x!;
  (args.backend as { incRef(dataId: tfc.DataId): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

function sharedIdentityKernel(_tf: TF, stock: tfc.KernelConfig | null): tfc.KernelFunc {
  return (args: KernelArgs) => (args.inputs.x!.dtype === 'string' && stock ? stock.kernelFunc(args) : shareBuffer(args));
}

function sharedCastKernel(_tf: TF, stock: tfc.KernelConfig | null): tfc.KernelFunc {
  if (!stock) throw new Error('wasm backend has no Cast kernel to fall back to');
  return (args: KernelArgs) => {
    const { dtype } = args.attrs as unknown as tfc.CastAttrs;
    const x = args.inputs.x!;
    return dtype === x.dtype && dtype !== 'string' ? shareBuffer(args) : stock.kernelFunc(args);
  };
}

// ---- MaxPoolGrad -------------------------------------------------------------------------------

interface WasmHeap {
  makeOutput(shape: number[], dtype: tfc.DataType): tfc.TensorInfo;
  typedArrayFromHeap(t: tfc.TensorInfo): tfc.backend_util.TypedArray;
}

/**
 * dx[argmax of each window] += dy[window], the argmax being the first strict maximum in row-major
 * window order (NaN never wins; a window of NaNs passes nothing), exactly as the cpu backend.
 * Works on the wasm heap directly: one pass over x, channels innermost.
 */
function maxPoolGradKernel(tf: TF, stock: tfc.KernelConfig | null): tfc.KernelFunc {
  return (args: KernelArgs) => {
    const { dy, input } = args.inputs as { dy: tfc.TensorInfo; input: tfc.TensorInfo };
    if (input.dtype !== 'float32' || dy.dtype !== 'float32') {
      if (stock) return stock.kernelFunc(args);
      throw unsupported('MaxPoolGrad', `dtype ${input.dtype}`);
    }
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tfc.MaxPoolGradAttrs;
    const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth } = info;
    // MaxPoolGrad has no dilation attribute: the window is the filter.
    const { effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
    const heap = args.backend as WasmHeap;
    const out = heap.makeOutput([...input.shape], 'float32');
    // Views after makeOutput: allocating may grow the wasm memory and detach older views.
    const x = heap.typedArrayFromHeap(input) as Float32Array;
    const g = heap.typedArrayFromHeap(dy) as Float32Array;
    const dx = heap.typedArrayFromHeap(out) as Float32Array;
    dx.fill(0);
    const { top, left } = info.padInfo;
    const rowStride = inWidth * c;
    let o = 0;
    for (let b = 0; b < batchSize; b++) {
      for (let yr = 0; yr < outHeight; yr++) {
        const r0 = yr * strideHeight - top;
        const rFrom = Math.max(0, -r0);
        const rTo = Math.min(fh, inHeight - r0);
        for (let yc = 0; yc < outWidth; yc++) {
          const c0 = yc * strideWidth - left;
          const cFrom = Math.max(0, -c0);
          const cTo = Math.min(fw, inWidth - c0);
          const corner = ((b * inHeight + r0) * inWidth + c0) * c;
          for (let d = 0; d < c; d++, o++) {
            let best = -Infinity;
            let where = -1;
            for (let wr = rFrom; wr < rTo; wr++) {
              let i = corner + wr * rowStride + cFrom * c + d;
              for (let wc = cFrom; wc < cTo; wc++, i += c) {
                const v = x[i];
                if (v > best) {
                  best = v;
                  where = i;
                }
              }
            }
            if (where >= 0) dx[where] += g[o];
          }
        }
      }
    }
    return out;
  };
}

// ---- BatchMatMul / _FusedMatMul with transposed operands ---------------------------------------

function untransposedMatMulKernel(tf: TF, stock: tfc.KernelConfig | null): tfc.KernelFunc {
  if (!stock) throw new Error('wasm backend has no matMul kernel to fall back to');
  return (args: KernelArgs) => {
    const { transposeA, transposeB } = args.attrs as unknown as tfc.BatchMatMulAttrs;
    const { a, b } = args.inputs as { a: tfc.TensorInfo; b: tfc.TensorInfo };
    if ((!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32' || !allTensors(tf, a, b)) {
      return stock.kernelFunc(args);
    }
    const swapLast = (t: tfc.TensorInfo): Tensor => {
      const r = t.shape.length;
      return tf.transpose(t as Tensor, [...Array(r - 2).keys(), r - 1, r - 2]);
    };
    const aa = transposeA ? swapLast(a) : a;
    const bb = transposeB ? swapLast(b) : b;
    try {
      return stock.kernelFunc({
        ...args,
        inputs: { ...args.inputs, a: aa, b: bb },
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
    } finally {
      if (transposeA) (aa as Tensor).dispose();
      if (transposeB) (bb as Tensor).dispose();
    }
  };
}
