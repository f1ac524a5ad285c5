/** Adapts a loaded dataset to what the trainer reads, and loads the sets of one trial. */
import { batchSource } from './batches.ts';
import { loadDataset, splitDataset, type Dataset, type LoadOptions } from './dataset.ts';

/** The trainer's view of a dataset (see batchSource). */
export const toTrainSet = batchSource;

export interface TrialDataOptions extends LoadOptions {
  train: string;
  val?: string;
  test?: string;
  /** Used when no val directory is given. */
  valFraction: number;
  seed: number;
  /** Reads one directory; default loadDataset (the worker passes one that caches). */
  load?: (dir: string) => Promise<Dataset>;
}

export interface TrialData {
  train: Dataset;
  val: Dataset;
  test?: Dataset;
}

export async function loadTrialData(o: TrialDataOptions): Promise<TrialData> {
  const load = o.load ?? ((dir: string) => loadDataset(dir, o));
  const all = await load(o.train);
  let train = all;
  let val: Dataset;
  if (o.val) {
    val = await load(o.val);
  } else {
    ({ train, val } = splitDataset(all, { valFraction: o.valFraction, seed: o.seed }));
  }
  const test = o.test ? await load(o.test) : undefined;
  return { train, val, test };
}
