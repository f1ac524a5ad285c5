import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { DEFAULT_LABEL_SPEC, labelProblem, type LabelSpec } from '../../src/data/charset.ts';
import { GlobalFonts } from '@napi-rs/canvas';
import {
  FONT_NAMES,
  generateDataset,
  HEIGHT,
  imageLook,
  imageRng,
  parseFonts,
  renderCaptcha,
  WIDTH,
  type CaptchaStyle,
} from '../../src/data/generate/index.ts';
import { deflateRaw, encodePngRgb } from '../../src/data/generate/png.ts';
import { ensureFonts, FONTS, type FontName } from '../../src/data/generate/fonts.ts';
import { Rng } from '../../src/util/rng.ts';

const root = mkdtempSync(path.join(os.tmpdir(), 'sweep-generate-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => path.join(root, `d${dirs++}`);

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** File name -> sha256 of every file in the directory, labels.csv included. */
function hashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = sha256(readFileSync(path.join(dir, f)));
  return out;
}

function readLabels(dir: string): Array<{ file: string; label: string }> {
  const [header, ...lines] = readFileSync(path.join(dir, 'labels.csv'), 'utf8').trimEnd().split('\n');
  expect(header).toBe('file,label');
  return lines.map((l) => {
    const [file, label] = l.split(',');
    return { file, label };
  });
}

async function generate(style: CaptchaStyle, count: number, seed: number, extra: { start?: number; spec?: LabelSpec; letterCase?: 'lower' | 'upper' | 'mixed'; fonts?: FontName[] } = {}) {
  const out = freshDir();
  await generateDataset({ style, count, seed, out, ...extra });
  return out;
}

describe.each(['railway', 'hard'] as const)('%s style', (style) => {
  const ext = style === 'railway' ? 'png' : 'jpg';

  it('writes the same bytes for the same seed, and different ones for another seed', async () => {
    const a = await generate(style, 2, 7);
    const b = await generate(style, 2, 7);
    const c = await generate(style, 2, 8);
    expect(hashes(a)).toEqual(hashes(b));
    const ha = hashes(a);
    const hc = hashes(c);
    for (const f of Object.keys(ha)) expect(hc[f]).not.toBe(ha[f]);
  });

  it('makes the first k images of a larger run, and --start continues the numbering', async () => {
    const four = hashes(await generate(style, 4, 11));
    const two = hashes(await generate(style, 2, 11));
    const rest = hashes(await generate(style, 2, 11, { start: 2 }));
    for (const f of [`000000.${ext}`, `000001.${ext}`]) expect(two[f]).toBe(four[f]);
    for (const f of [`000002.${ext}`, `000003.${ext}`]) expect(rest[f]).toBe(four[f]);
    expect(Object.keys(rest).filter((f) => f !== 'labels.csv')).toEqual([`000002.${ext}`, `000003.${ext}`]);
  });

  it('lists every image in labels.csv with a valid label, and images are 200x60 RGB', async () => {
    const spec = { charset: '0123456789', length: 4 };
    for (const [dir, s] of [[await generate(style, 2, 5), DEFAULT_LABEL_SPEC], [await generate(style, 2, 5, { spec }), spec]] as const) {
      const rows = readLabels(dir);
      const images = readdirSync(dir).filter((f) => f !== 'labels.csv');
      expect(rows.map((r) => r.file)).toEqual(images);
      for (const { file, label } of rows) {
        expect(labelProblem(label, s)).toBeNull();
        expect(file).toMatch(new RegExp(`^\\d{6}\\.${ext}$`));
        const meta = await sharp(readFileSync(path.join(dir, file))).metadata();
        expect([meta.width, meta.height, meta.channels, meta.format]).toEqual([WIDTH, HEIGHT, 3, ext === 'png' ? 'png' : 'jpeg']);
      }
    }
  });
});

/** `style index label sha256-prefix` for seed 1 (see the test below). */
const GOLDEN = [
  'railway 0 4pdw1o d8317e803fc7e288',
  'railway 1 gjva4b b1d1b7f0ff44c45a',
  'hard 0 4pdw1o 5bc947b290d94c60',
  'hard 1 gjva4b f1b837e0fedbb1db',
];

describe.each(['railway', 'hard'] as const)('%s style, letter case', (style) => {
  it('upper and mixed keep the labels and the lower-case bytes, draw other images, and repeat for the same seed', async () => {
    const lower = await generate(style, 4, 5);
    const explicit = await generate(style, 4, 5, { letterCase: 'lower' });
    const upper = await generate(style, 4, 5, { letterCase: 'upper' });
    const mixed = await generate(style, 4, 5, { letterCase: 'mixed' });
    const mixedAgain = await generate(style, 4, 5, { letterCase: 'mixed' });
    expect(hashes(explicit)).toEqual(hashes(lower));
    expect(hashes(mixedAgain)).toEqual(hashes(mixed));
    expect(readLabels(upper)).toEqual(readLabels(lower));
    expect(readLabels(mixed)).toEqual(readLabels(lower));
    const [hl, hu, hm] = [hashes(lower), hashes(upper), hashes(mixed)];
    // Every label here has a letter (checked), so every upper-case image differs.
    for (const { file, label } of readLabels(lower)) {
      expect(label).toMatch(/[a-z]/);
      expect(hu[file]).not.toBe(hl[file]);
    }
    expect(Object.keys(hm).filter((f) => f !== 'labels.csv' && hm[f] !== hl[f] && hm[f] !== hu[f]).length).toBeGreaterThan(0);
  });

  it('mixed draws letters in both cases and leaves digits alone', async () => {
    const { shownText } = await import('../../src/data/generate/draw.ts');
    const shown = shownText('a1b2c3defgh', { letterCase: 'mixed', caseRng: new Rng('case:test') });
    expect(shown.toLowerCase()).toBe('a1b2c3defgh');
    expect(shown).toMatch(/[A-Z]/);
    expect(shown).toMatch(/[a-z]/);
    expect(shownText('a1b2', { letterCase: 'upper' })).toBe('A1B2');
  });
});

describe('fonts', () => {
  it('registers every bundled font, and each draws glyphs of its own', () => {
    const aliases = ensureFonts();
    expect(Object.keys(aliases).sort()).toEqual([...FONT_NAMES].sort());
    for (const name of FONT_NAMES) expect(GlobalFonts.has(FONTS[name].alias), name).toBe(true);
    // The same image drawn in each font alone: seven different images.
    const drawn = FONT_NAMES.map((f) => sha256(renderCaptcha('railway', imageRng(3, 0), DEFAULT_LABEL_SPEC, imageLook('lower', 3, 0, undefined, [f])).image));
    expect(new Set(drawn).size).toBe(FONT_NAMES.length);
  });

  it.each(['railway', 'hard'] as const)('%s: the style\'s own fonts by default; other fonts keep the labels and repeat for the same seed', async (style) => {
    const plain = await generate(style, 4, 9);
    const all = await generate(style, 4, 9, { fonts: [...FONT_NAMES] });
    const allAgain = await generate(style, 4, 9, { fonts: [...FONT_NAMES] });
    const own = await generate(style, 4, 9, { fonts: style === 'railway' ? ['serif', 'mono'] : ['serif', 'mono', 'sans'] });
    expect(hashes(own)).toEqual(hashes(plain));
    expect(hashes(allAgain)).toEqual(hashes(all));
    expect(readLabels(all)).toEqual(readLabels(plain));
    const [hp, ha] = [hashes(plain), hashes(all)];
    expect(Object.keys(ha).filter((f) => f !== 'labels.csv' && ha[f] !== hp[f]).length).toBeGreaterThan(0);
  });

  it('a sweep file names the same fonts; a generated directory is named by its fonts, the default as before', async () => {
    const { GENERATOR_FONTS } = await import('../../src/sweep/schema.ts');
    const { generatedDir } = await import('../../src/worker/data.ts');
    expect([...GENERATOR_FONTS]).toEqual(FONT_NAMES);
    const env = { SWEEP_HOME: '/h' };
    expect(generatedDir({ style: 'railway', count: 5, seed: 1 }, undefined, env)).toBe('/h/data/railway-5-s1');
    expect(generatedDir({ style: 'railway', count: 5, seed: 1, case: 'mixed', fonts: ['serif', 'open-sans'] }, undefined, env)).toBe('/h/data/railway-5-s1-mixed-fonts-serif+open-sans');
    expect(generatedDir({ style: 'railway', count: 5, seed: 1, fonts: 'all' }, undefined, env)).toBe(`/h/data/railway-5-s1-fonts-${FONT_NAMES.join('+')}`);
  });

  it.each([
    ['style', undefined],
    ['all', [...FONT_NAMES]],
    ['serif,open-sans', ['serif', 'open-sans']],
    [' mono , plex-mono ', ['mono', 'plex-mono']],
  ])('parses --fonts %j', (text, want) => {
    expect(parseFonts(text)).toEqual(want);
  });

  it.each([
    ['times', /unknown font "times"; expected style, all, or a comma-separated list of: serif, mono/],
    ['serif,,mono', /unknown font ""/],
    ['serif,serif', /names a font twice/],
  ])('refuses --fonts %j', (text, message) => {
    expect(() => parseFonts(text)).toThrow(message);
  });
});

describe('an interrupted run', () => {
  it('leaves finished images, no temporary files and no labels.csv', async () => {
    const out = freshDir();
    const abort = new AbortController();
    const run = generateDataset({
      style: 'railway',
      count: 50,
      seed: 1,
      out,
      signal: abort.signal,
      onProgress: (p) => p.done === 3 && abort.abort(new Error('stop')),
    });
    await expect(run).rejects.toThrow('stop');
    const files = readdirSync(out);
    expect(files).not.toContain('labels.csv');
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect(files.length).toBeLessThan(50);
  });
});

describe('determinism across machines', () => {
  // Labels are pure Rng arithmetic. The image hashes pin the whole pipeline: Rng, layout
  // arithmetic, Skia's drawing in @napi-rs/canvas, our PNG encoder and libjpeg-turbo. If
  // one fails on a machine, images from a seed differ there; if a drawing change was
  // intended, update them.
  it('gives the pinned labels and bytes for seed 1', () => {
    const got = (['railway', 'hard'] as const).map((style) =>
      [0, 1].map((i) => {
        const c = renderCaptcha(style, imageRng(1, i));
        return `${style} ${i} ${c.label} ${sha256(c.image).slice(0, 16)}`;
      }),
    );
    expect(got.flat()).toEqual(GOLDEN);
  });
});

describe('PNG encoder', () => {
  it('round-trips through zlib and decodes to the same pixels', async () => {
    const rng = new Rng('png-test');
    for (const n of [0, 1, 5, 300, 70000]) {
      const data = new Uint8Array(n);
      const runs = rng.next() < 0.5;
      for (let i = 0; i < n; i++) data[i] = runs ? (i >> 6) % 4 : rng.int(0, 255);
      expect(Buffer.from(inflateRawSync(deflateRaw(data))).equals(Buffer.from(data))).toBe(true);
    }
    const rgba = new Uint8Array(WIDTH * HEIGHT * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = (i & 3) === 3 ? 255 : rng.next() < 0.7 ? 200 : rng.int(0, 255);
    const { data, info } = await sharp(encodePngRgb(rgba, WIDTH, HEIGHT)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([WIDTH, HEIGHT, 3]);
    for (let p = 0; p < WIDTH * HEIGHT; p++) {
      for (let c = 0; c < 3; c++) if (data[p * 3 + c] !== rgba[p * 4 + c]) throw new Error(`pixel ${p} channel ${c} differs`);
    }
  });
});

async function run(argv: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  let stderr = '';
  let stdout = '';
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  try {
    const code = await main(argv);
    return { code, stderr, stdout };
  } finally {
    err.mockRestore();
    out.mockRestore();
  }
}

describe('sweep data generate', () => {
  it('generates, refuses an existing dataset with exit 2, and replaces it with --force', async () => {
    const out = freshDir();
    const args = ['data', 'generate', '--style', 'railway', '--count', '2', '--seed', '4', '--out', out];
    const first = await run([...args, '--json']);
    expect(first.code).toBe(0);
    const summary = JSON.parse(first.stdout);
    expect(summary).toMatchObject({ count: 2, out: path.resolve(out), style: 'railway', seed: 4 });
    expect(summary.images_per_s).toBeGreaterThan(0);
    expect(first.stderr).toContain('generated 2/2');
    const before = hashes(out);

    writeFileSync(path.join(out, 'keep.txt'), 'x');
    const refused = await run(args);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/already holds a dataset.*--force/);
    expect(hashes(out)['labels.csv']).toBe(before['labels.csv']);

    const forced = await run([...args, '--force']);
    expect(forced.code).toBe(0);
    expect(hashes(out)).toEqual({ ...before, 'keep.txt': sha256(Buffer.from('x')) });
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rejects bad input with exit 2 and writes nothing', async () => {
    const out = freshDir();
    for (const bad of [
      ['--style', 'pretty', '--count', '2'],
      ['--style', 'hard', '--count', '0'],
      ['--style', 'hard', '--count', '2', '--charset', 'z-a'],
      ['--style', 'hard', '--count', '2', '--length', '0'],
      ['--style', 'hard', '--count', '2', '--height', '4'],
      ['--style', 'railway', '--count', '2', '--width', '160.5'],
      ['--style', 'railway', '--count', '2', '--fonts', 'comic-sans'],
    ]) {
      const r = await run(['data', 'generate', '--out', out, ...bad]);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^sweep: /);
    }
    expect(existsSync(out)).toBe(false);
  });
});

describe('another image size and label shape', () => {
  it.each<CaptchaStyle>(['railway', 'hard'])('%s: 4 capitals on 160x50 images, the same bytes for the same seed', async (style) => {
    const spec: LabelSpec = { charset: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', length: 4 };
    const a = freshDir();
    const b = freshDir();
    for (const out of [a, b]) await generateDataset({ style, count: 4, seed: 2, out, spec, size: { height: 50, width: 160 } });
    expect(hashes(a)).toEqual(hashes(b));
    for (const { file, label } of readLabels(a)) {
      expect(label).toMatch(/^[0-9A-Z]{4}$/);
      const meta = await sharp(path.join(a, file)).metadata();
      expect([meta.width, meta.height, meta.channels]).toEqual([160, 50, 3]);
    }
  });

  it('at 200x60 given explicitly, the bytes are those of the default size', async () => {
    const a = freshDir();
    const b = freshDir();
    await generateDataset({ style: 'railway', count: 3, seed: 5, out: a });
    await generateDataset({ style: 'railway', count: 3, seed: 5, out: b, size: { height: 60, width: 200 } });
    expect(hashes(b)).toEqual(hashes(a));
  });

  it('the CLI takes --height --width --length --charset and says so in --json', async () => {
    const out = freshDir();
    const r = await run(['data', 'generate', '--style', 'railway', '--count', '2', '--seed', '1', '--out', out, '--height', '64', '--width', '256', '--length', '5', '--charset', '0-9A-Z', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ height: 64, width: 256, length: 5, charset: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ' });
    const meta = await sharp(path.join(out, '000000.png')).metadata();
    expect([meta.width, meta.height]).toEqual([256, 64]);
  });
});
