import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { LABEL_CASES, labelSpec, type LabelCase } from '../data/charset.ts';
import { writeLabelFile } from '../train/label-file.ts';
import { shapeFromParams, type DataShape } from '../train/shape.ts';
import { loadTrialData, toTrainSet } from '../data/trainset.ts';
import { BACKEND_CHOICES, initBackend, type BackendChoice } from '../train/backend.ts';
import { TRAINER_PARAMS, parseSetArgs, resolveParams } from '../train/params.ts';
import { TrainingAborted, trainTrial, type TrainerEvents } from '../train/trainer.ts';
import { bar, formatSeconds, progressLine } from '../util/progress.ts';
import { UserError } from '../util/errors.ts';

interface TrainArgs {
  data: string;
  val?: string;
  test?: string;
  set: string[];
  config?: string;
  out: string;
  backend: BackendChoice;
  json: boolean;
  'skip-bad': boolean;
  height?: number;
  width?: number;
  length?: number;
  charset?: string;
  case?: LabelCase;
}

/** The data shape: each flag given, else the --config sweep's `train: {image, label}`, else the report's. */
function dataShape(args: TrainArgs, fromConfig: Record<string, unknown>): DataShape {
  const base = shapeFromParams(fromConfig);
  const height = args.height ?? base.height;
  const width = args.width ?? base.width;
  const length = args.length ?? base.label.length;
  for (const [name, v] of [['height', height], ['width', width], ['length', length]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`--${name} must be a positive integer, got ${v}`);
  }
  try {
    // A charset from the config is already in its case; one given here is read as --case says.
    const label = labelSpec(length, args.charset ?? base.label.charset, args.case ?? base.label.case ?? 'lower');
    return { height, width, label };
  } catch (err) {
    throw new UserError(`--charset: ${(err as Error).message}`);
  }
}

/** Parameters a sweep file fixes for every trial: its `train:` block and single-`value` parameters. */
async function configParams(file: string): Promise<Record<string, unknown>> {
  const { loadSweepFile, trainHyperparameters } = await import('../sweep/index.ts');
  const spec = await loadSweepFile(file, { trainer: true });
  const out: Record<string, unknown> = { ...trainHyperparameters(spec.train) };
  for (const [key, p] of Object.entries(spec.parameters ?? {})) {
    if (p && typeof p === 'object' && 'value' in p) out[key] = (p as { value: unknown }).value;
  }
  return out;
}

const command: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Train one trial alone: pretrain the CNN, then the CNN+GRU',
  builder: (y: Argv) =>
    y
      .option('data', { type: 'string', demandOption: true, describe: 'dataset directory (images + labels.csv or labels in file names)' })
      .option('val', { type: 'string', describe: 'validation directory (default: val_fraction of --data, seeded)' })
      .option('test', { type: 'string', describe: 'test directory: test metrics and predictions' })
      .option('set', { type: 'string', array: true, default: [], describe: `hyperparameter key=value (${Object.keys(TRAINER_PARAMS).join(', ')})` })
      .option('config', { type: 'string', describe: 'sweep file whose train block and fixed values give defaults' })
      .option('out', { type: 'string', demandOption: true, describe: 'output directory (checkpoints, model, predictions); resumes if it holds a checkpoint' })
      .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
      .option('json', { type: 'boolean', default: false, describe: 'print the final metrics as JSON on stdout' })
      .option('skip-bad', { type: 'boolean', default: false, describe: 'skip and count bad images instead of stopping' })
      .option('height', { type: 'number', describe: 'image height (default: --config\'s train.image, else 60)' })
      .option('width', { type: 'number', describe: 'image width (default: --config\'s train.image, else 200)' })
      .option('length', { type: 'number', describe: 'characters per CAPTCHA (default: --config\'s train.label, else 6)' })
      .option('charset', { type: 'string', describe: 'label characters, ranges expand (default: --config\'s train.label, else 0-9a-z)' })
      .option('case', { choices: LABEL_CASES, describe: 'labels\' letter case: lower (as they are), upper, fold (either case is one class)' }) as unknown as Argv<TrainArgs>,
  handler: async (args) => {
    const fromConfig = args.config ? await configParams(args.config) : {};
    const params = resolveParams({ ...fromConfig, ...parseSetArgs(args.set) }, args.config ? `${args.config} and --set` : '--set');
    const shape = dataShape(args, fromConfig);
    const spec = shape.label;
    const progress = progressLine();
    const log = (msg: string) => progress.line(msg);

    const active = await initBackend(args.backend, log);
    const data = await loadTrialData({
      train: args.data,
      val: args.val,
      test: args.test,
      spec,
      height: shape.height,
      width: shape.width,
      skipBad: args['skip-bad'],
      valFraction: params.val_fraction,
      seed: params.seed,
    });
    for (const [name, ds] of Object.entries(data)) {
      if (!ds) continue;
      log(`${name}: ${ds.items.length} images from ${ds.dir}${ds.skipped.length ? `, ${ds.skipped.length} skipped` : ''}`);
      for (const s of ds.skipped.slice(0, 10)) log(`  skipped ${s.file}: ${s.problem}`);
    }

    writeLabelFile(resolve(args.out), spec);
    const events: TrainerEvents = {
      log,
      phaseStart: (phase, epochs, start) => log(`${phase}: ${epochs} epochs${start > 0 ? `, resuming at ${start + 1}` : ''}`),
      batchEnd: (p) =>
        progress.update(`${p.phase} ${p.epoch + 1}/${p.epochs} ${bar(p.batch / p.batches)} ${p.batch}/${p.batches} loss ${p.loss.toFixed(4)}`),
      epochEnd: (m) =>
        log(
          `${m.phase} ${m.epoch + 1}: loss ${m.loss.toFixed(4)} char ${m.char_acc.toFixed(4)} seq ${m.seq_acc.toFixed(4)} | ` +
            `val loss ${m.val_loss.toFixed(4)} char ${m.val_char_acc.toFixed(4)} seq ${m.val_seq_acc.toFixed(4)} | ` +
            `${m.images_per_s.toFixed(1)} img/s ${formatSeconds(m.seconds)}`,
        ),
    };
    const controller = new AbortController();
    const stop = () => {
      log('stopping after this epoch (checkpointed; run the same command to resume)');
      controller.abort();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const result = await trainTrial({
        params,
        backend: active.backend,
        data: { train: toTrainSet(data.train), val: toTrainSet(data.val), test: data.test && toTrainSet(data.test) },
        shape: { height: shape.height, width: shape.width, length: spec.length, classes: spec.charset.length },
        outDir: resolve(args.out),
        events,
        signal: controller.signal,
      });
      progress.done();
      if (args.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        log(
          `done: val seq ${result.val_seq_acc.toFixed(4)} char ${result.val_char_acc.toFixed(4)}` +
            (result.test_seq_acc !== null ? ` | test seq ${result.test_seq_acc.toFixed(4)} char ${result.test_char_acc!.toFixed(4)}` : '') +
            ` | ${result.images_per_s.toFixed(1)} img/s on ${result.backend} | model in ${result.model_dir}`,
        );
      }
    } catch (err) {
      if (!(err instanceof TrainingAborted)) throw err;
      progress.done();
      log(`${err.message}; run the same command to resume`);
      process.exitCode = 1;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};

export default command;
