/**
 * The trainer's data shapes, shared by the training loop (trainer.ts), its checkpoints
 * (checkpoint.ts) and its outputs (outputs.ts). trainer.ts re-exports the public ones.
 */
import type { AugmentSpec, TrainParams } from './params.ts';

export type Phase = 'pretrain' | 'gru';

export interface TrainBatch {
  /** n images, NHWC float32 in [0, 1]. */
  x: Float32Array;
  /** n * length class indices. */
  y: Int32Array;
  n: number;
}

/** What the trainer needs from a dataset. */
export interface TrainSet {
  readonly size: number;
  /** One epoch of batches; when shuffled, the order is a pure function of (seed, epoch). */
  /** With `augment`, every image is augmented as a pure function of (seed, epoch, its position in the set). */
  batches(o: { batchSize: number; shuffle: boolean; seed: number; epoch: number; dropRemainder?: boolean; augment?: AugmentSpec | null }): AsyncIterable<TrainBatch>;
  /** Per-item file names and labels, in unshuffled order (saved with predictions). */
  readonly files: readonly string[];
  readonly labels: readonly string[];
}

export interface EpochMetrics {
  phase: Phase;
  epoch: number;
  loss: number;
  char_acc: number;
  seq_acc: number;
  val_loss: number;
  val_char_acc: number;
  val_seq_acc: number;
  /** Validation accuracy of each character position (head); shows which positions are learned. */
  val_char_acc_by_position: number[];
  /** The learning rate this epoch trained with at its first step (lr * lr_decay^epoch, times the cosine factor with lr_cosine). */
  lr: number;
  /** Present when `testEveryEpoch` is set (benchmarks: accuracy against time). */
  test_loss?: number;
  test_char_acc?: number;
  test_seq_acc?: number;
  images_per_s: number;
  seconds: number;
}

export interface EvalMetrics {
  loss: number;
  char_acc: number;
  seq_acc: number;
  char_acc_by_position: number[];
}

export interface TrialResult {
  val_seq_acc: number;
  val_char_acc: number;
  val_loss: number;
  test_seq_acc: number | null;
  test_char_acc: number | null;
  test_loss: number | null;
  backend: string;
  images_per_s: number;
  seconds: number;
  parameter_count: number;
  best: Partial<Record<Phase, { epoch: number; val_seq_acc: number; val_loss: number }>>;
  epochs_run: Record<Phase, number>;
  model_dir: string;
  predictions: { val: string; test: string | null };
  params: TrainParams;
}

/** A phase's best epoch so far, and the checkpoint directory holding its weights. */
export interface BestRecord {
  epoch: number;
  val_seq_acc: number;
  val_char_acc?: number;
  val_loss: number;
  dir: string;
}

/** Everything needed to resume; written atomically after every epoch. */
export interface TrainerState {
  version: 1;
  params: TrainParams;
  phase: Phase | 'done';
  /** Next epoch to run in `phase`. */
  epoch: number;
  /** Optimizer steps taken in `phase` (dropout seeds derive from it). */
  step: number;
  /** Epochs since the phase's best. */
  sinceBest: number;
  best: Partial<Record<Phase, BestRecord>>;
  history: EpochMetrics[];
  /** Directory (under checkpoints/) holding the model and optimizer to resume from. */
  checkpoint: string | null;
  /** The checkpoint before it in the same phase, kept to fall back to if `checkpoint` is damaged. */
  previous?: string | null;
  /** Adam's running beta powers, restored exactly (recomputing them rounds differently). */
  adamBetaPowers: [number, number] | null;
  trainSeconds: number;
  trainImages: number;
}
