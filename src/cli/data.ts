import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_LABEL_SPEC, parseCharset } from '../data/charset.ts';
import { generateDataset, parseFonts, FONT_NAMES, LETTER_CASES, STYLES, type CaptchaStyle, type GenerateProgress, type LetterCase } from '../data/generate/index.ts';
import { DEFAULT_IMAGE_SIZE } from '../train/geometry.ts';
import { UserError } from '../util/errors.ts';

interface GenerateArgs {
  style: CaptchaStyle;
  case: LetterCase;
  fonts: string;
  count: number;
  seed: number;
  out: string;
  start: number;
  length: number;
  charset: string;
  height: number;
  width: number;
  force: boolean;
  json: boolean;
}

/** A line every second: rewritten in place on a terminal, appended when piped. */
function progressReporter(stream: NodeJS.WriteStream) {
  const tty = Boolean(stream.isTTY);
  let lastShown = 0; // first line after a second: the first images include start-up
  const text = (p: GenerateProgress) =>
    `generated ${p.done}/${p.total} (${p.seconds > 0 ? Math.round(p.done / p.seconds) : 0} img/s)`;
  return {
    update(p: GenerateProgress): void {
      if (p.seconds - lastShown < 1 || p.done === p.total) return;
      lastShown = p.seconds;
      stream.write(tty ? `\r${text(p)}\x1b[K` : `${text(p)}\n`);
    },
    finish(p: GenerateProgress): void {
      stream.write(tty ? `\r${text(p)}\x1b[K\n` : `${text(p)}\n`);
    },
    interrupted(): void {
      if (tty && lastShown > 0) stream.write('\n');
    },
  };
}

const generate: CommandModule<object, GenerateArgs> = {
  command: 'generate',
  describe: 'Write synthetic CAPTCHA images and labels.csv into a directory',
  builder: (y) =>
    y
      .option('style', { choices: STYLES, demandOption: true, describe: 'railway: like the Taiwan railway CAPTCHA; hard: more fonts, shear, curves, noise, JPEG' })
      .option('count', { type: 'number', demandOption: true, describe: 'Number of images' })
      .option('seed', { type: 'number', default: 0, describe: 'Same seed, same bytes' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory (created if missing)' })
      .option('start', { type: 'number', default: 0, describe: 'Index of the first image; split a big set into runs with different --start' })
      .option('length', { type: 'number', default: DEFAULT_LABEL_SPEC.length, describe: 'Characters per label' })
      .option('charset', { type: 'string', default: '0-9a-z', describe: 'Label characters; ranges like 0-9a-z expand' })
      .option('height', { type: 'number', default: DEFAULT_IMAGE_SIZE.height, describe: 'Image height in pixels (drawn at 60x200, then scaled)' })
      .option('width', { type: 'number', default: DEFAULT_IMAGE_SIZE.width, describe: 'Image width in pixels' })
      .option('case', { choices: LETTER_CASES, default: 'lower' as LetterCase, describe: 'How letters are drawn: lower (as labelled), upper (capitals), mixed (each letter either); labels stay as they are' })
      .option('fonts', { type: 'string', default: 'style', describe: `Fonts glyphs are drawn in: style (the style's own), all, or a list such as serif,mono,noto-serif (known: ${FONT_NAMES.join(', ')})` })
      .option('force', { type: 'boolean', default: false, describe: 'Replace a dataset already in --out' })
      .option('json', { type: 'boolean', default: false, describe: 'Print a JSON summary on stdout' })
      .example('$0 data generate --style railway --count 5000 --seed 1 --out data/train', '') as unknown as Argv<GenerateArgs>,
  handler: async (args) => {
    let charset: string;
    try {
      charset = parseCharset(args.charset);
    } catch (err) {
      throw new UserError(`--charset: ${(err as Error).message}`);
    }
    let fonts: ReturnType<typeof parseFonts>;
    try {
      fonts = parseFonts(args.fonts);
    } catch (err) {
      throw new UserError(`--fonts: ${(err as Error).message}`);
    }
    for (const [name, v] of [['count', args.count], ['seed', args.seed], ['start', args.start], ['length', args.length], ['height', args.height], ['width', args.width]] as const) {
      if (!Number.isSafeInteger(v)) throw new UserError(`--${name} must be an integer, got ${v}`);
    }
    const progress = progressReporter(process.stderr);
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    let last: GenerateProgress | null = null;
    try {
      const result = await generateDataset({
        style: args.style,
        count: args.count,
        seed: args.seed,
        out: args.out,
        start: args.start,
        spec: { charset, length: args.length },
        size: { height: args.height, width: args.width },
        letterCase: args.case,
        fonts,
        force: args.force,
        signal: abort.signal,
        onProgress: (p) => {
          last = p;
          progress.update(p);
        },
      });
      progress.finish({ done: result.count, total: result.count, seconds: result.seconds });
      if (args.json) {
        const summary = {
          count: result.count,
          out: path.resolve(args.out),
          style: args.style,
          seed: args.seed,
          height: args.height,
          width: args.width,
          length: args.length,
          charset,
          case: args.case,
          fonts: fonts ?? 'style',
          images_per_s: Math.round((result.count / result.seconds) * 10) / 10,
          seconds: Math.round(result.seconds * 1000) / 1000,
        };
        process.stdout.write(`${JSON.stringify(summary)}\n`);
      }
    } catch (err) {
      if (last) progress.interrupted();
      if (!abort.signal.aborted) throw err;
      // Ctrl-C: finished images stay, no labels.csv; the conventional exit code for SIGINT.
      process.stderr.write(`sweep: interrupted; ${args.out} has images but no labels.csv; run the command again to redo it\n`);
      process.exitCode = 130;
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
  },
};

const data: CommandModule = {
  command: 'data <command>',
  describe: 'Datasets: generate synthetic CAPTCHAs',
  builder: (y) => y.command(generate).demandCommand(1, 'Name a data command: generate'),
  handler: () => {},
};

export default data;
