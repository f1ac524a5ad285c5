/**
 * The data a sweep trains and evaluates on, as its sweep file names it: directories of labelled
 * images or CAPTCHAs to generate. It touches no disk: where generated data lands, and generating
 * it, is worker/data.ts.
 */
import path from 'node:path';
import type { DataSourceSpec, GenerateSpec, SweepSpec, TrainDefaults } from './schema.ts';
import { UserError } from '../util/errors.ts';

/** A dataset directory, or CAPTCHAs to generate. */
export type DataSource = { dir: string } | { generate: GenerateSpec };

/** The sets one trial trains and evaluates on. Without `val`, val_fraction of train is held out. */
export interface DataPlan {
  train: DataSource;
  val?: DataSource;
  test?: DataSource;
}

function source(s: DataSourceSpec): DataSource {
  return typeof s === 'string' ? { dir: s } : { generate: s };
}

/** The sweep's data plan; a UserError when the `train:` block names no training data. */
export function dataPlan(train: TrainDefaults, file = 'the sweep file'): DataPlan {
  if (train.data === undefined && train.generate === undefined) {
    throw new UserError(
      `${file}: train: names no training data; give train.data (a directory of labelled images) ` +
        'or train.generate ({style: railway, count: 2000, seed: 1})',
    );
  }
  return {
    train: train.data !== undefined ? { dir: train.data } : { generate: train.generate! },
    val: train.val !== undefined ? source(train.val) : undefined,
    test: train.test !== undefined ? source(train.test) : undefined,
  };
}

/**
 * The spec with its dataset directories made absolute, relative to the sweep file's own
 * directory (so a sweep means the same data wherever it is launched from). Stored with the
 * sweep for the workers.
 */
export function withAbsolutePaths(spec: SweepSpec): SweepSpec {
  const base = path.dirname(path.resolve(spec.file));
  const abs = (s: DataSourceSpec | undefined) => (typeof s === 'string' ? path.resolve(base, s) : s);
  const train: TrainDefaults = { ...spec.train };
  if (train.data !== undefined) train.data = path.resolve(base, train.data);
  if (train.val !== undefined) train.val = abs(train.val);
  if (train.test !== undefined) train.test = abs(train.test);
  return { ...spec, train };
}
