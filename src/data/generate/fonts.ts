import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GlobalFonts } from '@napi-rs/canvas';

/**
 * Fonts come from npm packages and are registered under aliases of our own, so a drawing
 * never falls back to whatever fonts the machine has: same seed, same glyphs everywhere.
 * All are bold faces of the `latin` subset.
 */
export const FONTS = {
  /** Bold serif, like the Times Bold of the railway CAPTCHA. */
  serif: { alias: 'SweepCaptchaSerif', pkg: '@fontsource/tinos', file: 'tinos-latin-700-normal.woff2' },
  /** Bold monospace, like its Courier Bold. */
  mono: { alias: 'SweepCaptchaMono', pkg: '@fontsource/cousine', file: 'cousine-latin-700-normal.woff2' },
  /** Bold sans-serif, used by the hard style. */
  sans: { alias: 'SweepCaptchaSans', pkg: '@fontsource/arimo', file: 'arimo-latin-700-normal.woff2' },
  /** Further looks, drawn only when asked for (`fonts`): a second serif, sans and monospace, and a slab serif. */
  'noto-serif': { alias: 'SweepCaptchaNotoSerif', pkg: '@fontsource/noto-serif', file: 'noto-serif-latin-700-normal.woff2' },
  'open-sans': { alias: 'SweepCaptchaOpenSans', pkg: '@fontsource/open-sans', file: 'open-sans-latin-700-normal.woff2' },
  'plex-mono': { alias: 'SweepCaptchaPlexMono', pkg: '@fontsource/ibm-plex-mono', file: 'ibm-plex-mono-latin-700-normal.woff2' },
  'roboto-slab': { alias: 'SweepCaptchaRobotoSlab', pkg: '@fontsource/roboto-slab', file: 'roboto-slab-latin-700-normal.woff2' },
  /** More faces for training on many looks: three serifs, three sans, two monospace and a slab serif. */
  merriweather: { alias: 'SweepCaptchaMerriweather', pkg: '@fontsource/merriweather', file: 'merriweather-latin-700-normal.woff2' },
  'pt-serif': { alias: 'SweepCaptchaPtSerif', pkg: '@fontsource/pt-serif', file: 'pt-serif-latin-700-normal.woff2' },
  'libre-baskerville': { alias: 'SweepCaptchaLibreBaskerville', pkg: '@fontsource/libre-baskerville', file: 'libre-baskerville-latin-700-normal.woff2' },
  lato: { alias: 'SweepCaptchaLato', pkg: '@fontsource/lato', file: 'lato-latin-700-normal.woff2' },
  ubuntu: { alias: 'SweepCaptchaUbuntu', pkg: '@fontsource/ubuntu', file: 'ubuntu-latin-700-normal.woff2' },
  montserrat: { alias: 'SweepCaptchaMontserrat', pkg: '@fontsource/montserrat', file: 'montserrat-latin-700-normal.woff2' },
  'source-code-pro': { alias: 'SweepCaptchaSourceCodePro', pkg: '@fontsource/source-code-pro', file: 'source-code-pro-latin-700-normal.woff2' },
  'fira-mono': { alias: 'SweepCaptchaFiraMono', pkg: '@fontsource/fira-mono', file: 'fira-mono-latin-700-normal.woff2' },
  'zilla-slab': { alias: 'SweepCaptchaZillaSlab', pkg: '@fontsource/zilla-slab', file: 'zilla-slab-latin-700-normal.woff2' },
} as const;

export type FontName = keyof typeof FONTS;
export const FONT_NAMES = Object.keys(FONTS) as FontName[];

export function isFontName(s: string): s is FontName {
  return Object.hasOwn(FONTS, s);
}

let registered = false;

/** Registers every font once per process; returns their aliases. */
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
  return Object.fromEntries(FONT_NAMES.map((n) => [n, FONTS[n].alias])) as Record<FontName, string>;
}
