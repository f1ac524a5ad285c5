import { createCanvas, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import type { Rng } from '../../util/rng.ts';
import type { LabelSpec } from '../charset.ts';
import type { FontName } from './fonts.ts';

/** The report's input size: 200 wide, 60 high, RGB. */
export const WIDTH = 200;
export const HEIGHT = 60;

export type Rgb = [number, number, number];

export interface Surface {
  canvas: Canvas;
  ctx: SKRSContext2D;
}

let shared: Surface | null = null;

/**
 * One canvas per process, reused for every image (creating one costs more than drawing a
 * CAPTCHA). Rendering is synchronous, so no two images ever share it at once.
 * `begin` resets all state the previous image could have left.
 */
export function begin(background: Rgb): Surface {
  if (!shared) {
    const canvas = createCanvas(WIDTH, HEIGHT);
    shared = { canvas, ctx: canvas.getContext('2d') };
  }
  const { ctx } = shared;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.globalAlpha = 1;
  ctx.globalCompositeOperation = 'source-over';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.fillStyle = css(background);
  ctx.fillRect(0, 0, WIDTH, HEIGHT);
  return shared;
}

export function css([r, g, b]: Rgb, alpha = 1): string {
  return alpha === 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha})`;
}

/** Each channel an integer uniform in [lo, hi]. */
export function randomRgb(rng: Rng, lo: number, hi: number): Rgb {
  return [rng.int(lo, hi), rng.int(lo, hi), rng.int(lo, hi)];
}

/** How letters are drawn: as the label has them, as capitals, or each in either case. */
export const LETTER_CASES = ['lower', 'upper', 'mixed'] as const;
export type LetterCase = (typeof LETTER_CASES)[number];

/**
 * The look of one image beyond its style. `caseRng` chooses each letter's case under `mixed`;
 * it is an Rng of its own, so the image's Rng (label, positions, noise) advances exactly as
 * under `lower` and the label stays the same.
 */
export interface Look {
  letterCase: LetterCase;
  caseRng?: Rng;
  /** Fonts to draw glyphs in instead of the style's own (each glyph picks one). */
  fonts?: readonly FontName[];
  /** The image's size; absent: WIDTH x HEIGHT. Drawn at that size, then scaled to this one. */
  size?: { height: number; width: number };
}

let scaled: Surface | null = null;

/**
 * The drawn image at `size`: the drawing canvas itself at WIDTH x HEIGHT (so the report's
 * size keeps its bytes), else the drawing scaled onto a canvas of that size.
 */
export function atSize(drawn: Surface, size?: { height: number; width: number }): Surface & { width: number; height: number } {
  if (!size || (size.width === WIDTH && size.height === HEIGHT)) return { ...drawn, width: WIDTH, height: HEIGHT };
  if (!scaled || scaled.canvas.width !== size.width || scaled.canvas.height !== size.height) {
    const canvas = createCanvas(size.width, size.height);
    scaled = { canvas, ctx: canvas.getContext('2d') };
  }
  const { ctx } = scaled;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.globalAlpha = 1;
  ctx.globalCompositeOperation = 'copy';
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(drawn.canvas, 0, 0, size.width, size.height);
  ctx.globalCompositeOperation = 'source-over';
  return { ...scaled, width: size.width, height: size.height };
}

export const PLAIN_LOOK: Look = { letterCase: 'lower' };

/** The text drawn for `label` under `look` (the label itself is never changed). */
export function shownText(label: string, look: Look = PLAIN_LOOK): string {
  if (look.letterCase === 'lower') return label;
  if (look.letterCase === 'upper') return label.toUpperCase();
  const rng = look.caseRng;
  if (!rng) throw new Error('mixed case needs a caseRng');
  return [...label].map((ch) => (ch.toUpperCase() !== ch.toLowerCase() && rng.next() < 0.5 ? (ch === ch.toUpperCase() ? ch.toLowerCase() : ch.toUpperCase()) : ch)).join('');
}

/** Drawn first from each image's Rng, so the label depends on nothing else. */
export function randomLabel(rng: Rng, spec: LabelSpec): string {
  let s = '';
  for (let i = 0; i < spec.length; i++) s += spec.charset[rng.int(0, spec.charset.length - 1)];
  return s;
}

/**
 * A noise rectangle as the railway CAPTCHA draws it: a 1-pixel outline whose top and left
 * edges are one of black or white and bottom and right edges the other (a bevel), each
 * half-transparent. Some edges are drawn after the text, so they cross the glyphs.
 */
export interface NoiseRect {
  x: number;
  y: number;
  w: number;
  h: number;
  /** Top-left edges black (and bottom-right white), or the reverse. */
  topLeftDark: boolean;
  topLeftOverText: boolean;
  bottomRightOverText: boolean;
}

export function makeNoiseRects(rng: Rng, count: number, size: [number, number]): NoiseRect[] {
  const rects: NoiseRect[] = [];
  for (let i = 0; i < count; i++) {
    const w = rng.int(size[0], size[1]);
    const h = rng.int(size[0], size[1]);
    const x = rng.int(1, WIDTH - 1);
    const y = rng.int(1, HEIGHT - 1);
    const topLeftOverText = rng.next() < 0.4;
    const bottomRightOverText = !topLeftOverText && rng.next() < 0.2;
    rects.push({ x, y, w, h, topLeftDark: rng.next() < 0.5, topLeftOverText, bottomRightOverText });
  }
  return rects;
}

const DARK_EDGE = css([0, 0, 0], 0.45);
const LIGHT_EDGE = css([255, 255, 255], 0.8);

/** Draws the edges that belong under the text (`overText` false) or over it (true). */
export function drawNoiseRects(ctx: SKRSContext2D, rects: readonly NoiseRect[], overText: boolean): void {
  for (const r of rects) {
    if (r.topLeftOverText === overText) {
      ctx.fillStyle = r.topLeftDark ? DARK_EDGE : LIGHT_EDGE;
      ctx.fillRect(r.x, r.y, r.w, 1);
      ctx.fillRect(r.x, r.y, 1, r.h);
    }
    if (r.bottomRightOverText === overText) {
      ctx.fillStyle = r.topLeftDark ? LIGHT_EDGE : DARK_EDGE;
      ctx.fillRect(r.x, r.y + r.h, r.w, 1);
      ctx.fillRect(r.x + r.w, r.y, 1, r.h);
    }
  }
}

export interface GlyphStyle {
  /** Font family aliases to pick from, one per glyph. */
  fonts: readonly string[];
  /** Font size in points (1pt = 4/3 px), integer range. */
  sizePt: [number, number];
  /** Rotation, integer degrees in [-max, max]. */
  maxAngleDeg: number;
  /** Horizontal shear factor range (x += shear * y); [0, 0] for none. */
  shear: [number, number];
  /** Text colour channels, integer range. */
  colorRange: [number, number];
  /** How far a glyph's centre may move up or down from the middle line, in pixels. */
  verticalJitterPx: number;
  /** How far a glyph's box may reach back over the previous glyph's, in pixels. */
  overlapPx: number;
}

/** Where a glyph landed: its centre and its colour, for noise that should cross the text. */
export interface PlacedGlyph {
  cx: number;
  cy: number;
  color: Rgb;
}

interface InkBox {
  /** Ink centre relative to the text origin (left end of the baseline). */
  cx: number;
  cy: number;
  w: number;
  h: number;
}

const inkCache = new Map<string, InkBox>();

/** The glyph's ink box, from the font's outlines (cached: a pure function of its inputs). */
function inkBox(ctx: SKRSContext2D, font: string, ch: string): InkBox {
  const key = `${font}\u0000${ch}`;
  let box = inkCache.get(key);
  if (!box) {
    ctx.font = font;
    const m = ctx.measureText(ch);
    const left = -m.actualBoundingBoxLeft;
    const right = m.actualBoundingBoxRight;
    const top = -m.actualBoundingBoxAscent;
    const bottom = m.actualBoundingBoxDescent;
    box = { cx: (left + right) / 2, cy: (top + bottom) / 2, w: right - left, h: bottom - top };
    inkCache.set(key, box);
  }
  return box;
}

/**
 * Draws the label one glyph per slot: the width is cut into `label.length` slots and each glyph
 * lands in its slot with random jitter, allowed to reach back over its left neighbour by up
 * to `overlapPx` (rotated boxes have empty corners, so glyphs touch and interlock more than
 * that). Each glyph has its own font, size, colour, rotation and shear.
 */
export function drawGlyphs(ctx: SKRSContext2D, rng: Rng, label: string, style: GlyphStyle): PlacedGlyph[] {
  const placed: PlacedGlyph[] = [];
  const chars = [...label];
  const slot = WIDTH / chars.length;
  let prevRight = 0;
  for (let i = 0; i < chars.length; i++) {
    const family = rng.pick(style.fonts);
    const size = rng.int(style.sizePt[0], style.sizePt[1]);
    const color = randomRgb(rng, style.colorRange[0], style.colorRange[1]);
    const angle = (rng.int(-style.maxAngleDeg, style.maxAngleDeg) * Math.PI) / 180;
    const shear = style.shear[0] === style.shear[1] ? style.shear[0] : rng.uniform(style.shear[0], style.shear[1]);
    const font = `bold ${size}pt ${family}`;
    const ink = inkBox(ctx, font, chars[i]);

    // Extent of the ink box after shear then rotation, around its centre.
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    let halfW = 0;
    let halfH = 0;
    for (const [px, py] of [[ink.w / 2, ink.h / 2], [ink.w / 2, -ink.h / 2]]) {
      const sx = px + shear * py;
      halfW = Math.max(halfW, Math.abs(sx * cos - py * sin));
      halfH = Math.max(halfH, Math.abs(sx * sin + py * cos));
    }
    const boxW = 2 * halfW;
    const boxH = 2 * halfH;

    const base = i * slot;
    const lo = i === 0 ? 2 : Math.max(prevRight - style.overlapPx, base - 15);
    const hi = i === chars.length - 1 ? WIDTH - 2 - boxW : base + slot - boxW + 10;
    let left = lo <= hi ? rng.uniform(lo, hi) : hi;
    left = Math.min(Math.max(left, 1), WIDTH - 1 - boxW);
    // Centres within +-verticalJitter of the middle line, the whole glyph inside the image.
    const yLo = Math.max(halfH + 1, HEIGHT / 2 - style.verticalJitterPx);
    const yHi = Math.min(HEIGHT - 1 - halfH, HEIGHT / 2 + style.verticalJitterPx);
    const cy = yLo <= yHi ? rng.uniform(yLo, yHi) : HEIGHT / 2;
    const cx = left + halfW;
    prevRight = left + boxW;

    ctx.save();
    ctx.translate(cx, cy);
    ctx.rotate(angle);
    if (shear !== 0) ctx.transform(1, 0, shear, 1, 0, 0);
    ctx.font = font;
    ctx.fillStyle = css(color);
    ctx.fillText(chars[i], -ink.cx, -ink.cy);
    ctx.restore();
    placed.push({ cx, cy, color });
  }
  return placed;
}

/**
 * Cubic Bezier strokes from the left edge to the right edge whose control points sit near
 * glyph centres, so each curve runs through the text.
 */
export function drawCurves(ctx: SKRSContext2D, rng: Rng, count: number, glyphs: readonly PlacedGlyph[]): void {
  for (let k = 0; k < count; k++) {
    const a = glyphs[rng.int(0, Math.max(0, (glyphs.length >> 1) - 1))];
    const b = glyphs[rng.int(glyphs.length >> 1, glyphs.length - 1)];
    const x0 = rng.uniform(0, 20);
    const y0 = rng.uniform(10, HEIGHT - 10);
    const x3 = rng.uniform(WIDTH - 20, WIDTH);
    const y3 = rng.uniform(10, HEIGHT - 10);
    const c1x = a.cx + rng.uniform(-8, 8);
    const c1y = a.cy + rng.uniform(-15, 15);
    const c2x = b.cx + rng.uniform(-8, 8);
    const c2y = b.cy + rng.uniform(-15, 15);
    // Mostly dark like the text, so it cannot be told apart by colour; sometimes light, cutting glyphs.
    const dark = rng.next() < 0.7;
    const color = dark ? rng.pick(glyphs).color : randomRgb(rng, 190, 250);
    ctx.strokeStyle = css(color, dark ? 0.9 : 0.85);
    ctx.lineWidth = rng.uniform(1.2, dark ? 2.6 : 2.2);
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.bezierCurveTo(c1x, c1y, c2x, c2y, x3, y3);
    ctx.stroke();
  }
}

/**
 * Adds noise to RGB(A) pixels in place: every channel gets triangular noise in
 * [-amplitude, amplitude], and `saltFraction` of the pixels turn black or white.
 * Integer arithmetic only.
 */
export function addPixelNoise(rgba: Uint8Array, rng: Rng, amplitude: number, saltFraction: number): void {
  const amp = Math.round(amplitude);
  const n = rgba.length >> 2;
  const saltThreshold = Math.floor(saltFraction * 65536);
  for (let p = 0; p < n; p++) {
    const o = p << 2;
    const r0 = rng.nextUint32();
    const r1 = rng.nextUint32();
    // Low three bytes of each word feed the channels; the two top bytes decide salt.
    if ((((r0 >>> 24) << 8) | (r1 >>> 24)) < saltThreshold) {
      const v = r1 & 1 ? 255 : 0;
      rgba[o] = v;
      rgba[o + 1] = v;
      rgba[o + 2] = v;
      continue;
    }
    // Two bytes summed give a triangle on [0, 510]; centre and scale to [-amp, amp].
    for (let c = 0; c < 3; c++) {
      const t = ((r0 >>> (c * 8)) & 0xff) + ((r1 >>> (c * 8)) & 0xff) - 255;
      const v = rgba[o + c] + (((t * amp) / 255) | 0);
      rgba[o + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
}
