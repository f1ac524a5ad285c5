/**
 * What a trial attempt comes to, decided from what happened: a pure function of the facts
 * (how the trial process ended, what the worker learned meanwhile), so every branch of the
 * failure policy (worker.ts) is one row of a table in test/worker/outcome.test.ts.
 * attempt.ts gathers the facts and carries the decision out.
 *
 * The order of the rules is the policy:
 *   1. a result is stored (finishTrial says whether the trial is still this worker's);
 *   2. an error of ours while storing it is thrown again: the queue retries the job, which
 *      resumes from the last checkpoint;
 *   3. a trial another worker owns now is left to it, whatever else happened;
 *   4. a trial stopped on request (aborted after its epoch, or killed) stops as it was asked:
 *      cancelled before stopped early before given back (the worker stopping);
 *   5. divergence and bad input end the trial, never retried;
 *   6. anything else (an error, a disk that would not take a checkpoint, a crash no one
 *      asked for) ends the attempt: retried while attempts are left, `failed` after the last.
 */
import type { TrialStatus } from '../infra/db.ts';
import type { StopDecision } from '../sweep/early-stop.ts';
import type { FailureKind } from './protocol.ts';

/** What one trial attempt came to, as the worker counts it. */
export type TrialOutcome = 'finished' | 'failed' | 'retry' | 'diverged' | 'stopped' | 'cancelled' | 'given-back' | 'skipped' | 'busy' | 'lost';

/** How the trial process's run ended. */
export type TrialEnding =
  /** The trainer returned a result. */
  | { kind: 'result' }
  /** The trial did not finish (a TrialFailure). */
  | { kind: 'failure'; failure: FailureKind; message: string; childStack?: string }
  /** An error of the worker's, not the trial's: storing the trainer's result failed. */
  | { kind: 'worker-error' };

export interface OutcomeFacts {
  ending: TrialEnding;
  /** A heartbeat found the trial no longer this worker's. */
  lost: boolean;
  /** A heartbeat found the trial cancelled (sweep cancel). */
  cancelled: boolean;
  /** The sweep's early_terminate rule stopped the trial. */
  earlyStop: StopDecision | null;
  /** The worker is stopping (SIGTERM/SIGINT, max-trials, failures in a row). */
  stopping: boolean;
  /** ... and was told to kill its trials at once. */
  forced: boolean;
  /** Attempts of the job before this one (job.attemptsMade). */
  attemptsMade: number;
  /** Attempts the job may make (job.opts.attempts). */
  attemptsAllowed: number;
}

/**
 * What to do. `next` is the trial's status afterwards (null: not this worker's to say);
 * `outcome`, what the worker counts; `healthy`, whether the trial process may take another
 * trial (absent: as it was).
 */
export type OutcomeDecision =
  /** Store the result; the outcome follows from the status the store returns (storedOutcome). */
  | { action: 'store-result'; next: 'finished'; healthy: true }
  /** Throw the error again: the trial stays `running` here and the queue retries the job. */
  | { action: 'rethrow'; next: 'running' }
  /** Another worker owns the trial: write nothing. */
  | { action: 'leave'; next: null; outcome: 'lost'; healthy: boolean }
  /** Close the cancelled trial (it already says `cancelled`) and its W&B run. */
  | { action: 'record-cancel'; next: 'cancelled'; outcome: 'cancelled'; healthy: boolean }
  /** Store the early stop; the outcome is `lost` instead when the store finds the trial another worker's. */
  | { action: 'record-stop'; next: 'stopped'; outcome: 'stopped'; reason: string; iteration: number; healthy: boolean }
  /** Put the job back at the front of the queue and the trial to `queued`. */
  | { action: 'give-back'; next: 'queued'; outcome: 'given-back'; killed: boolean; healthy: boolean }
  /** End the attempt with `next`; end the W&B run when `wandb`; then throw (`unrecoverable`: no retry). */
  | {
      action: 'end-attempt';
      next: Extract<TrialStatus, 'failed' | 'diverged' | 'queued'>;
      outcome: 'failed' | 'diverged' | 'retry';
      /** Stored as the trial's error. */
      error: string;
      /** For the log and W&B. */
      message: string;
      log: string;
      wandb: 'failed' | 'diverged' | null;
      then: 'unrecoverable' | 'retry';
      healthy: boolean;
    };

/** A failure that may be the trial stopping as it was asked to: after its epoch, or killed. */
function stoppedOnRequest(kind: FailureKind): boolean {
  return kind === 'aborted' || kind === 'crashed';
}

export function decideOutcome(f: OutcomeFacts): OutcomeDecision {
  const { ending } = f;
  if (ending.kind === 'result') return { action: 'store-result', next: 'finished', healthy: true };
  if (ending.kind === 'worker-error') return { action: 'rethrow', next: 'running' };
  const { failure: kind, message } = ending;
  // A process that failed unexpectedly is replaced: its backend may be broken (a wasm abort).
  const healthy = kind === 'aborted' || kind === 'diverged' || kind === 'bad-input';
  if (f.lost) return { action: 'leave', next: null, outcome: 'lost', healthy };
  if (stoppedOnRequest(kind)) {
    if (f.cancelled) return { action: 'record-cancel', next: 'cancelled', outcome: 'cancelled', healthy };
    if (f.earlyStop) return { action: 'record-stop', next: 'stopped', outcome: 'stopped', reason: f.earlyStop.reason, iteration: f.earlyStop.iteration, healthy };
    if (f.stopping) return { action: 'give-back', next: 'queued', outcome: 'given-back', killed: f.forced, healthy };
  }
  if (kind === 'diverged' || kind === 'bad-input') {
    const st = kind === 'diverged' ? 'diverged' : 'failed';
    return { action: 'end-attempt', next: st, outcome: st, error: message, message, log: `${st}: ${message}`, wandb: st, then: 'unrecoverable', healthy };
  }
  const last = f.attemptsMade + 1 >= f.attemptsAllowed;
  return {
    action: 'end-attempt',
    next: last ? 'failed' : 'queued',
    outcome: last ? 'failed' : 'retry',
    error: kind === 'error' && ending.childStack ? ending.childStack : message,
    message,
    log: last ? `failed after ${f.attemptsAllowed} attempt(s): ${message}` : `attempt failed, will retry: ${message}`,
    wandb: last ? 'failed' : null,
    then: 'retry',
    healthy,
  };
}

/** A stored result's outcome, from the status finishTrial returned (null: the trial is another worker's). */
export function storedOutcome(status: TrialStatus | null): { outcome: 'finished' | 'cancelled' | 'lost'; endWandb: boolean } {
  if (status === 'finished' || status === 'cancelled') return { outcome: status, endWandb: true };
  return { outcome: 'lost', endWandb: false };
}
