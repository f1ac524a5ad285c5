/**
 * Messages between a worker and its trial process (runner.ts). The trial process trains; the
 * worker owns every connection (Redis, database), so a trial blocking its event loop for
 * minutes never delays a lock renewal or a heartbeat.
 */
import type { BackendChoice } from '../train/backend.ts';
import type { BatchProgress, EpochMetrics, Phase, TrialResult } from '../train/trainer.ts';
import type { DataPlan } from '../sweep/data-plan.ts';

/**
 * `noop` stands in for the trainer in benchmarks of the worker itself: it reports one epoch
 * of made-up metrics and returns at once, touching no data and no model.
 */
export type TrainerKind = 'tfjs' | 'noop';

export interface RunTrial {
  type: 'run';
  trialId: string;
  /** Trainer parameters (seed included), before defaults are filled in. */
  params: Record<string, unknown>;
  outDir: string;
  data: DataPlan;
  backend: BackendChoice;
  trainer: TrainerKind;
}

export type ToTrial =
  | RunTrial
  /** Stop after the running epoch (it is checkpointed first). */
  | { type: 'abort' }
  /** Reply to `epoch`: the metrics are stored; `abort` when the trial must stop now. */
  | { type: 'epoch-ack'; abort: boolean };

/** Why a trial did not finish. */
export type FailureKind =
  /** Stopped on request after a checkpoint (TrainingAborted). */
  | 'aborted'
  /** Loss became NaN or infinite: these hyperparameters do not train. */
  | 'diverged'
  /** The sweep's data or parameters cannot work; retrying would fail the same way. */
  | 'bad-input'
  /** The disk would not take a checkpoint for SWEEP_DISK_WAIT_S (full, failing): transient. */
  | 'storage'
  /** Anything else; may be transient. */
  | 'error'
  /** The trial process died (killed, out of memory, crashed). */
  | 'crashed';

export type FromTrial =
  | { type: 'ready'; pid: number }
  | { type: 'log'; message: string }
  /** Data and backend are ready; training begins. */
  | { type: 'started'; backend: string; images: { train: number; val: number; test: number } }
  | { type: 'phase'; phase: Phase; epochs: number; start: number }
  | { type: 'progress'; progress: BatchProgress }
  /** An epoch ended and was checkpointed; the trial waits for `epoch-ack`. */
  | { type: 'epoch'; metrics: EpochMetrics; step: number }
  /** A resumed trial's epochs from before its checkpoint (an earlier attempt ran them), in order. */
  | { type: 'resumed'; history: readonly EpochMetrics[] }
  | { type: 'result'; result: TrialResult; history: EpochMetrics[] }
  | { type: 'failed'; kind: FailureKind; message: string; stack?: string };
