import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GlobalFonts } from '@napi-rs/canvas';

/**
 * Fonts come from npm packages and are registered under aliases of our own, so a drawing
 * never falls back to whatever fonts the machine has: same seed, same glyphs everywhere.
 */
export const FONTS = {
  /** Bold serif, like the Times Bold of the railway CAPTCHA. */
  serif: { alias: 'SweepCaptchaSerif', pkg: '@fontsource/tinos', file: 'tinos-latin-700-normal.woff2' },
  /** Bold monospace, like its Courier Bold. */
  mono: { alias: 'SweepCaptchaMono', pkg: '@fontsource/cousine', file: 'cousine-latin-700-normal.woff2' },
  /** Bold sans-serif, used by the hard style only. */
  sans: { alias: 'SweepCaptchaSans', pkg: '@fontsource/arimo', file: 'arimo-latin-700-normal.woff2' },
} as const;

export type FontName = keyof typeof FONTS;

/**
 * Characters the bundled fonts draw: the `latin` subsets cover printable ASCII and Latin-1.
 * Anything else would be drawn by a system fallback font, which differs between machines.
 */
export function fontCovers(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  return (c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xff && c !== 0xad);
}

let registered = false;

/** Registers the three fonts once per process; returns their aliases. */
export function ensureFonts(): Record<FontName, string> {
  if (!registered) {
    const require = createRequire(import.meta.url);
    for (const font of Object.values(FONTS)) {
      const dir = path.dirname(require.resolve(`${font.pkg}/package.json`));
      const file = path.join(dir, 'files', font.file);
      if (!existsSync(file)) throw new Error(`font file missing: ${file} (is ${font.pkg} installed?)`);
      const key = GlobalFonts.registerFromPath(file, font.alias);
      if (!key) throw new Error(`could not register font ${file}`);
    }
    registered = true;
  }
  return { serif: FONTS.serif.alias, mono: FONTS.mono.alias, sans: FONTS.sans.alias };
}
