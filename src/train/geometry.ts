/**
 * The model's geometry, without tfjs: the image size the report used and how far a kernel size
 * shrinks the feature maps. The sweep file checks read it; src/train/model.ts builds from it.
 */

/** The report's image size (the railway CAPTCHA's): 60 high, 200 wide. */
export const DEFAULT_IMAGE_SIZE = { height: 60, width: 200 } as const;

/** Filters of the trunk's conv blocks at width 1; MaxPool 2x2 follows every block but the last. */
export const BASE_FILTERS = [64, 128, 256, 512] as const;

/** A conv kernel's size: `kernel_size` high and `kernel_width` wide (0 or absent: square). */
export interface KernelShape {
  kernel_size: number;
  kernel_width?: number;
}

/** [height, width] of the conv kernels. */
export function kernelDims(spec: KernelShape): [number, number] {
  return [spec.kernel_size, spec.kernel_width || spec.kernel_size];
}

/** The length of the last block's output along one axis of `length` pixels, for kernel extent `k`. */
export function mapLength(length: number, k: number): number {
  let n = length;
  for (let i = 0; i < BASE_FILTERS.length; i++) {
    n -= k - 1; // each block's first conv is 'valid'
    if (i < BASE_FILTERS.length - 1) n = Math.floor(n / 2);
  }
  return n;
}

/** Height and width of the last block's output. */
export function featureMapSize(spec: KernelShape & { height: number; imageWidth: number }): [number, number] {
  const [kh, kw] = kernelDims(spec);
  return [mapLength(spec.height, kh), mapLength(spec.imageWidth, kw)];
}

/** The largest kernel extent that leaves a feature map along an axis of `length` pixels. */
export function maxKernelExtent(length: number): number {
  let k = 1;
  while (mapLength(length, k + 1) >= 1) k += 1;
  return k;
}

/** The largest square kernel whose last feature map is not empty (4 for 60x200 images). */
export function maxKernelSize(height: number, imageWidth: number): number {
  return Math.min(maxKernelExtent(height), maxKernelExtent(imageWidth));
}

/** Receptive field of the last conv along one axis, in input pixels, for kernel extent `k`. */
export function receptiveField(k: number): number {
  let rf = 1;
  let jump = 1;
  for (let i = 0; i < BASE_FILTERS.length; i++) {
    rf += 2 * (k - 1) * jump; // the block's two convs
    if (i < BASE_FILTERS.length - 1) {
      rf += jump; // MaxPool 2x2, stride 2
      jump *= 2;
    }
  }
  return rf;
}
