/**
 * The model's geometry, without tfjs: the image size the report used and how far a kernel size
 * shrinks the feature maps. The sweep file checks read it; src/train/model.ts builds from it.
 */

/** The report's image size (the railway CAPTCHA's): 60 high, 200 wide. */
export const DEFAULT_IMAGE_SIZE = { height: 60, width: 200 } as const;

/** Filters of the trunk's conv blocks at width 1; MaxPool 2x2 follows every block but the last. */
export const BASE_FILTERS = [64, 128, 256, 512] as const;

/**
 * How each block's convs pad. `report`: the first conv `valid`, the second `same`, as the
 * report's model (a kernel larger than 4 leaves no feature map of a 60-pixel-high image).
 * `same`: both `same`, so any kernel up to the image's size fits.
 */
export type Padding = 'report' | 'same';
export const PADDINGS: readonly Padding[] = ['report', 'same'];

/** A conv kernel's size: `kernel_size` high and `kernel_width` wide (0 or absent: square). */
export interface KernelShape {
  kernel_size: number;
  kernel_width?: number;
  /** Absent: `report`. */
  padding?: Padding;
}

/** [height, width] of the conv kernels. */
export function kernelDims(spec: KernelShape): [number, number] {
  return [spec.kernel_size, spec.kernel_width || spec.kernel_size];
}

/**
 * What the last block's output covers along one axis of `length` pixels, for kernel extent `k`:
 * its size, the receptive field of one of its cells, and the centres (in input pixels, pixel i
 * centred at i) of its first and last cells. Under `report` padding each block's first conv is
 * 'valid', under `same` 'same'; its second is 'same' (padding one less before than after for
 * even k, as Keras), then MaxPool 2x2.
 */
export function axisView(
  length: number,
  k: number,
  padding: Padding = 'report',
): { size: number; field: number; firstCentre: number; lastCentre: number } {
  let size = length;
  let field = 1;
  let jump = 1; // input pixels between neighbouring cells
  let first = 0; // centre of the first cell
  const conv = (padBefore: number) => {
    first += ((k - 1) / 2 - padBefore) * jump;
    field += (k - 1) * jump;
  };
  const samePad = Math.floor((k - 1) / 2);
  for (let i = 0; i < BASE_FILTERS.length; i++) {
    if (padding === 'report') {
      size -= k - 1;
      conv(0);
    } else {
      conv(samePad);
    }
    conv(samePad);
    if (i < BASE_FILTERS.length - 1) {
      size = Math.floor(size / 2);
      first += jump / 2;
      field += jump;
      jump *= 2;
    }
  }
  return { size, field, firstCentre: first, lastCentre: first + (size - 1) * jump };
}

/** The length of the last block's output along one axis of `length` pixels, for kernel extent `k`. */
export function mapLength(length: number, k: number, padding: Padding = 'report'): number {
  return axisView(length, k, padding).size;
}

/** Height and width of the last block's output. */
export function featureMapSize(spec: KernelShape & { height: number; imageWidth: number }): [number, number] {
  const [kh, kw] = kernelDims(spec);
  return [mapLength(spec.height, kh, spec.padding), mapLength(spec.imageWidth, kw, spec.padding)];
}

/**
 * The largest kernel extent that leaves a feature map along an axis of `length` pixels; under
 * `same` padding, the axis' length (a kernel larger than the image would see only padding).
 */
export function maxKernelExtent(length: number, padding: Padding = 'report'): number {
  if (padding === 'same') return length;
  let k = 1;
  while (mapLength(length, k + 1) >= 1) k += 1;
  return k;
}

/** The largest square kernel whose last feature map is not empty (4 for 60x200 images under `report`). */
export function maxKernelSize(height: number, imageWidth: number, padding: Padding = 'report'): number {
  return Math.min(maxKernelExtent(height, padding), maxKernelExtent(imageWidth, padding));
}
