import { ImageData } from '@napi-rs/canvas';
import type { Rng } from '../../util/rng.ts';
import type { LabelSpec } from '../charset.ts';
import { addPixelNoise, atSize, begin, drawCurves, drawGlyphs, drawNoiseRects, makeNoiseRects, randomLabel, randomRgb, PLAIN_LOOK, shownText, type Look } from './draw.ts';
import { ensureFonts } from './fonts.ts';
import type { Captcha } from './types.ts';

/**
 * A harder cousin of the railway style, for testing how a model trained on one look holds up:
 * a third font (bold sans), a wider size range, shear, 2-4 curves through the text, pixel
 * noise, and JPEG artefacts at a random quality.
 */
export function renderHard(rng: Rng, spec: LabelSpec, look: Look = PLAIN_LOOK): Captcha {
  const fonts = ensureFonts();
  const label = randomLabel(rng, spec);
  const surface = begin(randomRgb(rng, 170, 250));
  const { ctx } = surface;
  const rects = makeNoiseRects(rng, rng.int(24, 40), [4, 24]);
  drawNoiseRects(ctx, rects, false);
  // One shear for the whole word, varied a little per glyph, like an italic that wobbles.
  const shear = rng.uniform(-0.45, 0.45);
  const glyphs = drawGlyphs(ctx, rng, shownText(label, look), {
    fonts: look.fonts ? look.fonts.map((f) => fonts[f]) : [fonts.serif, fonts.mono, fonts.sans],
    sizePt: [22, 32],
    verticalJitterPx: 12,
    maxAngleDeg: 45,
    shear: [shear - 0.1, shear + 0.1],
    colorRange: [10, 140],
    overlapPx: 4,
  });
  drawNoiseRects(ctx, rects, true);
  drawCurves(ctx, rng, rng.int(2, 4), glyphs);

  // Pixel noise and JPEG artefacts at the output size, as a camera or encoder would add them.
  const out = atSize(surface, look.size);
  const pixels = out.canvas.data();
  addPixelNoise(pixels, rng, rng.uniform(8, 28), rng.uniform(0, 0.02));
  out.ctx.putImageData(new ImageData(new Uint8ClampedArray(pixels.buffer, pixels.byteOffset, pixels.length), out.width, out.height), 0, 0);
  const quality = rng.int(30, 70);
  return { label, image: out.canvas.encodeSync('jpeg', quality), ext: 'jpg' };
}
