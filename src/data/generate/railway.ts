import type { Rng } from '../../util/rng.ts';
import type { LabelSpec } from '../charset.ts';
import { atSize, begin, drawGlyphs, drawNoiseRects, makeNoiseRects, randomLabel, randomRgb, PLAIN_LOOK, shownText, type Look } from './draw.ts';
import { ensureFonts } from './fonts.ts';
import { encodePngRgb } from './png.ts';
import type { Captcha } from './types.ts';

/**
 * The Taiwan railway CAPTCHA, as the report's data looks: a pale flat background, six dark
 * glyphs in bold serif or bold monospace, each rotated up to 55 degrees and jittered within
 * its slot so neighbours touch, and about 32 bevelled 1-pixel rectangle outlines, some of
 * whose edges cross the glyphs.
 */
export function renderRailway(rng: Rng, spec: LabelSpec, look: Look = PLAIN_LOOK): Captcha {
  const fonts = ensureFonts();
  const label = randomLabel(rng, spec);
  const surface = begin(randomRgb(rng, 180, 250));
  const { ctx } = surface;
  const rects = makeNoiseRects(rng, 32, [5, 21]);
  drawNoiseRects(ctx, rects, false);
  drawGlyphs(ctx, rng, shownText(label, look), {
    fonts: look.fonts ? look.fonts.map((f) => fonts[f]) : [fonts.serif, fonts.mono],
    sizePt: [25, 27],
    verticalJitterPx: 10,
    maxAngleDeg: 55,
    shear: [0, 0],
    colorRange: [10, 140],
    overlapPx: 2,
  });
  drawNoiseRects(ctx, rects, true);
  const out = atSize(surface, look.size);
  return { label, image: encodePngRgb(out.canvas.data(), out.width, out.height), ext: 'png' };
}
