/** Adapts a loaded dataset to what the trainer reads, and loads the sets of one trial. */
import { batches, type BatchOptions } from './batches.ts';
import { loadDataset, splitDataset, type Dataset, type LoadOptions } from './dataset.ts';
import type { TrainSet } from '../train/trainer.ts';

export function toTrainSet(ds: Dataset, decoder?: BatchOptions['decoder']): TrainSet {
  return {
    size: ds.items.length,
    files: ds.items.map((i) => i.file),
    labels: ds.items.map((i) => i.label),
    batches: (o) => batches(ds, { ...o, decoder }),
  };
}

export interface TrialDataOptions extends LoadOptions {
  train: string;
  val?: string;
  test?: string;
  /** Used when no val directory is given. */
  valFraction: number;
  seed: number;
}

export interface TrialData {
  train: Dataset;
  val: Dataset;
  test?: Dataset;
}

export async function loadTrialData(o: TrialDataOptions): Promise<TrialData> {
  const all = await loadDataset(o.train, o);
  let train = all;
  let val: Dataset;
  if (o.val) {
    val = await loadDataset(o.val, o);
  } else {
    ({ train, val } = splitDataset(all, { valFraction: o.valFraction, seed: o.seed }));
  }
  const test = o.test ? await loadDataset(o.test, o) : undefined;
  return { train, val, test };
}
