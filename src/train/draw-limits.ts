/**
 * What the generator can draw, as pure checks: `sweep plan` refuses a `generate:` block the
 * generator would refuse later, without loading the canvas. data/generate/index.ts uses the
 * same checks; they sit in this lower layer so that the sweep layer may read them too.
 */
import { MAX_LABEL_LENGTH, MIN_IMAGE_SIDE, type LabelSpec } from './shape.ts';

/** The largest side of a generated image, in pixels. */
const MAX_GENERATED_SIDE = 4096;

/**
 * Characters the bundled fonts draw: the `latin` subsets cover printable ASCII and Latin-1.
 * Anything else would be drawn by a system fallback font, which differs between machines.
 */
function fontCovers(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  return (c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xff && c !== 0xad);
}

/** Why labels of this spec cannot be drawn, or null. */
export function specProblem(spec: Pick<LabelSpec, 'length' | 'charset'>): string | null {
  if (!Number.isInteger(spec.length) || spec.length < 1 || spec.length > MAX_LABEL_LENGTH) {
    return `label length must be an integer from 1 to ${MAX_LABEL_LENGTH} (200 pixels hold no more), got ${spec.length}`;
  }
  if ([...spec.charset].length < 1) return 'charset is empty';
  for (const ch of spec.charset) {
    if (!fontCovers(ch)) {
      return `charset character ${JSON.stringify(ch)} is not drawable: use printable ASCII or Latin-1 letters, no spaces`;
    }
  }
  return null;
}

export interface ImageSize {
  height: number;
  width: number;
}

/** Why a generated image cannot have this size, or null. */
export function sizeProblem(size: ImageSize): string | null {
  for (const k of ['height', 'width'] as const) {
    if (!Number.isSafeInteger(size[k]) || size[k] < MIN_IMAGE_SIDE || size[k] > MAX_GENERATED_SIDE) return `${k} must be an integer from ${MIN_IMAGE_SIDE} to ${MAX_GENERATED_SIDE} pixels, got ${size[k]}`;
  }
  return null;
}
