/**
 * What a finished trial leaves in its directory: the final model (`model/`), the
 * per-character probabilities of the validation and test sets (`predictions/`), the epoch
 * history (`history.json`) and the result (`result.json`, also returned).
 */
import { join } from 'node:path';
import type { tfl } from './tf.ts';
import { fileUrl, writeFileAtomic } from './io.ts';
import { writeFileList } from './integrity.ts';
import type { TrainParams } from './params.ts';
import type { EvalMetrics, TrainerState, TrainSet, TrialResult } from './types.ts';

/** Loss and accuracy on a set, filling `probs` with every per-character probability. */
export type Evaluate = (model: tfl.LayersModel, set: TrainSet, probs: Float32Array) => Promise<EvalMetrics>;

export interface OutputInput {
  outDir: string;
  params: TrainParams;
  backend: string;
  data: { val: TrainSet; test?: TrainSet };
  shape: { length: number; classes: number };
}

/** Evaluates `set` and writes its probabilities (`<name>.probs.f32`) and their description (`<name>.json`). */
async function savePredictions(
  input: OutputInput,
  model: tfl.LayersModel,
  evaluate: Evaluate,
  name: string,
  set: TrainSet,
): Promise<{ metrics: EvalMetrics; path: string }> {
  const { shape } = input;
  const predDir = join(input.outDir, 'predictions');
  const probs = new Float32Array(set.size * shape.length * shape.classes);
  const metrics = await evaluate(model, set, probs);
  writeFileAtomic(join(predDir, `${name}.probs.f32`), new Uint8Array(probs.buffer));
  writeFileAtomic(
    join(predDir, `${name}.json`),
    JSON.stringify({ shape: [set.size, shape.length, shape.classes], files: set.files, labels: set.labels, metrics }),
  );
  return { metrics, path: join(predDir, `${name}.probs.f32`) };
}

/** The final model, predictions, history and result of a finished trial. */
export async function writeOutputs(input: OutputInput, state: TrainerState, model: tfl.LayersModel, evaluate: Evaluate): Promise<TrialResult> {
  const { data, outDir, params, backend } = input;
  const modelDir = join(outDir, 'model');
  await model.save(fileUrl(modelDir));

  const val = await savePredictions(input, model, evaluate, 'val', data.val);
  const test = data.test ? await savePredictions(input, model, evaluate, 'test', data.test) : null;
  const epochsRun = { pretrain: 0, gru: 0 };
  for (const h of state.history) epochsRun[h.phase]++;
  const result: TrialResult = {
    val_seq_acc: val.metrics.seq_acc,
    val_char_acc: val.metrics.char_acc,
    val_loss: val.metrics.loss,
    test_seq_acc: test?.metrics.seq_acc ?? null,
    test_char_acc: test?.metrics.char_acc ?? null,
    test_loss: test?.metrics.loss ?? null,
    backend,
    images_per_s: state.trainSeconds > 0 ? state.trainImages / state.trainSeconds : 0,
    seconds: state.history.reduce((s, h) => s + h.seconds, 0),
    parameter_count: model.countParams(),
    best: Object.fromEntries(
      Object.entries(state.best).map(([k, v]) => [k, { epoch: v!.epoch, val_seq_acc: v!.val_seq_acc, val_loss: v!.val_loss }]),
    ),
    epochs_run: epochsRun,
    model_dir: modelDir,
    predictions: { val: val.path, test: test?.path ?? null },
    params,
  };
  // Export, predict and backfill check these before they read the files.
  writeFileList(modelDir);
  writeFileList(join(outDir, 'predictions'));
  writeFileAtomic(join(outDir, 'history.json'), JSON.stringify(state.history, null, 1));
  writeFileAtomic(join(outDir, 'result.json'), JSON.stringify(result, null, 1));
  return result;
}
