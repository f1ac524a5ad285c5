/**
 * `sweep predict READER IMAGE... [--data DIR]`: read CAPTCHAs with an exported reader, a model
 * directory or a finished trial. Files that cannot be read are named with their problem; the
 * others are still read, and the command then exits 2.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { BACKEND_CHOICES, type BackendChoice } from '../train/backend.ts';
import { EXIT_BAD_INPUT, UserError } from '../util/errors.ts';

interface PredictArgs {
  reader: string;
  images: string[];
  data?: string;
  json: boolean;
  batch: number;
  resize: boolean;
  backend: BackendChoice;
}

const IMAGE = /\.(png|jpe?g)$/i;

function imagesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => IMAGE.test(f)).sort().map((f) => path.join(dir, f));
  } catch (err) {
    throw new UserError(`--data ${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message}`);
  }
}

const command: CommandModule<object, PredictArgs> = {
  command: 'predict <reader> [images..]',
  describe: 'Read CAPTCHA images with an exported reader, a model directory or a finished trial',
  builder: (y: Argv) =>
    y
      .positional('reader', { type: 'string', demandOption: true, describe: 'exported reader directory, model directory, or trial (id, prefix, SWEEP#INDEX)' })
      .positional('images', { type: 'string', array: true, default: [], describe: 'image files' })
      .option('data', { type: 'string', describe: 'also read every PNG/JPEG in this directory' })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON object: results (text, confidence, per-character probabilities) and problems' })
      .option('batch', { type: 'number', default: 32, describe: 'images per batch through the members' })
      .option('resize', { type: 'boolean', default: false, describe: "resize images of another size to the reader's input" })
      .option('backend', { type: 'string', choices: BACKEND_CHOICES, default: 'auto' as BackendChoice, describe: 'TensorFlow.js backend' }) as unknown as Argv<PredictArgs>,
  handler: async (a) => {
    if (!Number.isInteger(a.batch) || a.batch < 1) throw new UserError(`--batch: expected an integer >= 1, got ${a.batch}`);
    const files = [...a.images, ...(a.data ? imagesIn(a.data) : [])];
    if (files.length === 0) throw new UserError('no images given: name image files, or a directory with --data');
    const { resolveReaderDir } = await import('../ensemble/resolve.ts');
    const { loadReader } = await import('../ensemble/reader.ts');
    const dir = await resolveReaderDir(a.reader);
    const reader = await loadReader(dir, { backend: a.backend });
    try {
      const out = await reader.read(files, { batch: a.batch, resize: a.resize, probs: a.json });
      if (a.json) {
        process.stdout.write(`${JSON.stringify({ reader: dir, method: reader.manifest.method, members: reader.members.length, results: out.results, problems: out.problems })}\n`);
      } else {
        const width = Math.max(...out.results.map((r) => r.file.length), 4);
        for (const r of out.results) process.stdout.write(`${r.file.padEnd(width)}  ${r.text}  ${r.confidence.toFixed(3)}\n`);
      }
      for (const p of out.problems) process.stderr.write(`sweep: ${p.file}: ${p.problem}\n`);
      if (out.problems.length > 0) process.exitCode = EXIT_BAD_INPUT;
    } finally {
      reader.dispose();
    }
  },
};

export default command;
