/** `sweep eval READER --data DIR`: a reader's accuracy on a labelled dataset. */
import type { Argv, CommandModule } from 'yargs';
import { BACKEND_CHOICES, type BackendChoice } from '../train/backend.ts';
import type { EvalReport } from '../ensemble/evaluate.ts';
import { progressLine } from '../util/progress.ts';
import { UserError } from '../util/errors.ts';

interface EvalArgs {
  reader: string;
  data: string;
  json: boolean;
  batch: number;
  resize: boolean;
  backend: BackendChoice;
}

export function formatEval(r: EvalReport): string {
  const lines = [
    `${r.data}: ${r.images} images read${r.unreadable.length ? `, ${r.unreadable.length} unreadable` : ''}`,
    `character accuracy ${r.char_acc.toFixed(4)}, sequence accuracy ${r.seq_acc.toFixed(4)}`,
    `by position: ${r.by_position.map((x, i) => `${i + 1}:${x.toFixed(4)}`).join(' ')}`,
  ];
  if (r.confusions.length > 0) lines.push(`most frequent confusions (truth -> read): ${r.confusions.map((c) => `${c.truth}->${c.read} ${c.count}`).join(', ')}`);
  for (const u of r.unreadable.slice(0, 10)) lines.push(`  unreadable ${u.file}: ${u.problem}`);
  if (r.unreadable.length > 10) lines.push(`  and ${r.unreadable.length - 10} more`);
  return `${lines.join('\n')}\n`;
}

const command: CommandModule<object, EvalArgs> = {
  command: 'eval <reader>',
  describe: "A reader's accuracy on a labelled dataset: per character, per sequence, by position, confusions",
  builder: (y: Argv) =>
    y
      .positional('reader', { type: 'string', demandOption: true, describe: 'exported reader directory, model directory, or trial (id, prefix, SWEEP#INDEX)' })
      .option('data', { type: 'string', demandOption: true, describe: 'labelled dataset directory (labels.csv or labels in file names)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
      .option('batch', { type: 'number', default: 32, describe: 'images per batch through the members' })
      .option('resize', { type: 'boolean', default: false, describe: "resize images of another size to the reader's input" })
      .option('backend', { type: 'string', choices: BACKEND_CHOICES, default: 'auto' as BackendChoice, describe: 'TensorFlow.js backend' }) as unknown as Argv<EvalArgs>,
  handler: async (a) => {
    if (!Number.isInteger(a.batch) || a.batch < 1) throw new UserError(`--batch: expected an integer >= 1, got ${a.batch}`);
    const { resolveReaderDir } = await import('../ensemble/resolve.ts');
    const { loadReader } = await import('../ensemble/reader.ts');
    const { evaluateReader } = await import('../ensemble/evaluate.ts');
    const dir = await resolveReaderDir(a.reader);
    const reader = await loadReader(dir, { backend: a.backend });
    const progress = progressLine();
    try {
      const r = await evaluateReader(reader, a.data, {
        batch: a.batch,
        resize: a.resize,
        onProgress: (done, total) => progress.update(`read ${done}/${total}`),
      });
      progress.done();
      process.stdout.write(a.json ? `${JSON.stringify(r)}\n` : formatEval(r));
    } finally {
      reader.dispose();
    }
  },
};

export default command;
