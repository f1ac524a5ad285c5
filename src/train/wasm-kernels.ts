/**
 * Training kernels for the tfjs wasm backend.
 *
 * The wasm backend (4.22.0) is built for inference. To train the recognizer on it we register, here
 * and nowhere else:
 *  - Conv2DBackpropFilter: missing on wasm, so no conv net can train as shipped. Composed as one
 *    XNNPACK conv2d of the transposed input with the transposed output gradient as its filter.
 *  - Conv2DBackpropInput: wasm ships a naive loop (~10x slower than its forward conv). Replaced by a
 *    conv2d of the output gradient with the flipped, channel-swapped filter.
 *  - The FusedBatchNorm gradient: the stock one tiles 1/sqrt(var) to the full tensor size and
 *    builds several full-size temporaries. Replaced, for wasm only, by broadcasting products and
 *    one shared reduction.
 *
 * Kernels are registered for the 'wasm' backend only. Gradients live in one global registry shared
 * by every backend, so the replaced gradient checks the active backend and defers to the stock one
 * elsewhere; the cpu backend therefore stays a faithful reference for the tests.
 *
 * A kernelFunc may call tf ops: the engine runs kernels with the tape off (kernelDepth > 0), and a
 * Tensor returned from a kernelFunc is used as the kernel's output as is. Temporaries are freed
 * with tidy.
 */
import type * as tfc from '@tensorflow/tfjs-core';

type TF = typeof tfc;
type Tensor = tfc.Tensor;
type Tensor4D = tfc.Tensor4D;
type Pad = 'valid' | 'same' | number | tfc.backend_util.ExplicitPadding;
type Pair = [number, number];

/** What each registered replacement is; used by the bench to switch them one by one. */
export type WasmTrainingKernel = 'conv2dBackpropFilter' | 'conv2dBackpropInput' | 'batchNormGrad';

export const WASM_TRAINING_KERNELS: readonly WasmTrainingKernel[] = [
  'conv2dBackpropFilter',
  'conv2dBackpropInput',
  'batchNormGrad',
];

// Shared across module copies, so a second copy of this file recognises the first one's kernels.
const REPLACES = Symbol.for('sweep.wasmTrainingKernels.replaces');
const WASM = 'wasm';

interface OwnKernelConfig extends tfc.KernelConfig {
  [REPLACES]: tfc.KernelConfig | null;
}
interface OwnGradConfig extends tfc.GradConfig {
  [REPLACES]: tfc.GradConfig | null;
}

/**
 * Registers the training kernels on the wasm backend. Idempotent. `only` limits which are
 * registered (the others are restored to stock); the default registers all of them.
 * Returns the names of the kernels and gradients now replaced.
 */
export function registerWasmTrainingKernels(
  tf: TF,
  only: readonly WasmTrainingKernel[] = WASM_TRAINING_KERNELS,
): string[] {
  const done: string[] = [];
  for (const which of WASM_TRAINING_KERNELS) {
    const on = only.includes(which);
    switch (which) {
      case 'conv2dBackpropFilter':
        if (on) done.push(putKernel(tf, 'Conv2DBackpropFilter', () => conv2dBackpropFilterKernel(tf)));
        else dropKernel(tf, 'Conv2DBackpropFilter');
        break;
      case 'conv2dBackpropInput':
        if (on) done.push(putKernel(tf, 'Conv2DBackpropInput', (stock) => conv2dBackpropInputKernel(tf, stock)));
        else dropKernel(tf, 'Conv2DBackpropInput');
        break;
      case 'batchNormGrad':
        if (on) done.push(putGradient(tf, 'FusedBatchNorm', (stock) => batchNormGrad(tf, stock)));
        else dropGradient(tf, 'FusedBatchNorm');
        break;
    }
  }
  return done;
}

/** Restores every kernel and gradient this file replaced (Conv2DBackpropFilter is removed again). */
export function unregisterWasmTrainingKernels(tf: TF): void {
  registerWasmTrainingKernels(tf, []);
}

// ---- registry plumbing -------------------------------------------------------------------------

function putKernel(tf: TF, name: string, make: (stock: tfc.KernelConfig | null) => tfc.KernelFunc): string {
  const current = tf.getKernel(name, WASM) as OwnKernelConfig | undefined;
  if (current && REPLACES in current) return name; // already ours
  const stock = current ?? null;
  const config: OwnKernelConfig = { kernelName: name, backendName: WASM, kernelFunc: make(stock), [REPLACES]: stock };
  if (stock) tf.unregisterKernel(name, WASM); // re-registering warns; replacing is intended here
  tf.registerKernel(config);
  return name;
}

function dropKernel(tf: TF, name: string): void {
  const current = tf.getKernel(name, WASM) as OwnKernelConfig | undefined;
  if (!current || !(REPLACES in current)) return;
  tf.unregisterKernel(name, WASM);
  if (current[REPLACES]) tf.registerKernel(current[REPLACES]);
}

function putGradient(tf: TF, name: string, make: (stock: tfc.GradConfig) => tfc.GradConfig): string {
  const current = tf.getGradient(name) as OwnGradConfig | undefined;
  if (current && REPLACES in current) return `${name} gradient`;
  if (!current) throw new Error(`No stock gradient for '${name}' is registered; import @tensorflow/tfjs-core first.`);
  const config: OwnGradConfig = { ...make(current), [REPLACES]: current };
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

/** Kernel inputs arrive as Tensors when called through ops; wrap bare TensorInfos just in case. */
function asTensor<T extends Tensor>(tf: TF, info: tfc.TensorInfo | undefined, what: string): T {
  if (info == null) throw new Error(`wasm training kernel: missing input '${what}'`);
  if (info instanceof tf.Tensor) return info as T;
  return tf.engine().makeTensorFromTensorInfo(info) as T;
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
    const x = asTensor<Tensor4D>(tf, inputs.x, 'x');
    const dy = asTensor<Tensor4D>(tf, inputs.dy, 'dy');
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
    const filter = asTensor<Tensor4D>(tf, inputs.filter, 'filter');
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, strides, 1, pad as Pad, dimRoundingMode);
    const [kh, kw] = filter.shape;
    const p = info.padInfo;
    const q = [kh - 1 - p.top, kh - 1 - p.bottom, kw - 1 - p.left, kw - 1 - p.right];
    const simple = dataFormat === 'NHWC' && info.strideHeight === 1 && info.strideWidth === 1 && q.every((v) => v >= 0);
    if (!simple) {
      if (stock) return stock.kernelFunc(args);
      throw unsupported('Conv2DBackpropInput', `strides ${strides} / pad ${JSON.stringify(pad)} / ${dataFormat}`);
    }
    const dy = asTensor<Tensor4D>(tf, inputs.dy, 'dy');
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
