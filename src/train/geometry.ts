/**
 * The model's geometry, without tfjs: the image size the report used and how far a kernel size
 * shrinks the feature maps. The sweep file checks read it; src/train/model.ts builds from it.
 */

/** The report's image size (the railway CAPTCHA's): 60 high, 200 wide. */
export const DEFAULT_IMAGE_SIZE = { height: 60, width: 200 } as const;

/** Filters of the trunk's conv blocks at width 1; MaxPool 2x2 follows every block but the last. */
export const BASE_FILTERS = [64, 128, 256, 512] as const;

/** Height and width of the last block's output: each block's first conv is 'valid'. */
export function featureMapSize(spec: { kernel_size: number; height: number; imageWidth: number }): [number, number] {
  let h = spec.height;
  let w = spec.imageWidth;
  for (let i = 0; i < BASE_FILTERS.length; i++) {
    h -= spec.kernel_size - 1;
    w -= spec.kernel_size - 1;
    if (i < BASE_FILTERS.length - 1) {
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
    }
  }
  return [h, w];
}

/** The largest kernel size whose last feature map is not empty (4 for 60x200 images). */
export function maxKernelSize(height: number, imageWidth: number): number {
  let k = 1;
  while (featureMapSize({ kernel_size: k + 1, height, imageWidth }).every((d) => d >= 1)) k += 1;
  return k;
}
