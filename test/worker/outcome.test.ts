/**
 * What a trial attempt comes to, as a table: how the trial process ended and what the worker
 * knew then (lost, cancelled, early stop, stopping, attempts) -> the trial's next status, the
 * worker's outcome and what to do. Each row is one path of the worker's failure policy.
 */
import { describe, expect, it } from 'vitest';
import { decideOutcome, storedOutcome, type OutcomeDecision, type OutcomeFacts, type TrialEnding } from '../../src/worker/outcome.ts';
import type { FailureKind } from '../../src/worker/protocol.ts';

const STOP = { trialId: 't1', iteration: 4, reason: 'median: val_seq_acc 0.1 below the median 0.3' };

const result: TrialEnding = { kind: 'result' };
const workerError: TrialEnding = { kind: 'worker-error' };
const failed = (failure: FailureKind, message = `${failure} happened`, childStack?: string): TrialEnding => ({ kind: 'failure', failure, message, ...(childStack ? { childStack } : {}) });

/** Nothing else happened; three attempts allowed, this the first. */
const facts = (ending: TrialEnding, more: Partial<OutcomeFacts> = {}): OutcomeFacts => ({
  ending,
  lost: false,
  cancelled: false,
  earlyStop: null,
  stopping: false,
  forced: false,
  attemptsMade: 0,
  attemptsAllowed: 3,
  ...more,
});

const allFlags: Partial<OutcomeFacts> = { lost: true, cancelled: true, earlyStop: STOP, stopping: true, forced: true };

const rows: Array<[string, OutcomeFacts, OutcomeDecision]> = [
  // A result is stored whatever the heartbeats said: the store decides who owns it.
  ['result', facts(result), { action: 'store-result', next: 'finished', healthy: true }],
  ['result, with every flag set', facts(result, allFlags), { action: 'store-result', next: 'finished', healthy: true }],
  // Storing it failed: our error, thrown again for the queue to retry; the process stays as it was.
  ['worker error', facts(workerError), { action: 'rethrow', next: 'running' }],
  ['worker error, trial lost', facts(workerError, { lost: true }), { action: 'rethrow', next: 'running' }],

  // Another worker owns the trial: nothing is written, whatever else happened.
  ['lost, aborted', facts(failed('aborted'), { lost: true }), { action: 'leave', next: null, outcome: 'lost', healthy: true }],
  ['lost, crashed', facts(failed('crashed'), { lost: true }), { action: 'leave', next: null, outcome: 'lost', healthy: false }],
  ['lost, diverged', facts(failed('diverged'), { lost: true }), { action: 'leave', next: null, outcome: 'lost', healthy: true }],
  ['lost, error on the last attempt, cancelled too', facts(failed('error'), { lost: true, cancelled: true, attemptsMade: 2 }), { action: 'leave', next: null, outcome: 'lost', healthy: false }],

  // Cancelled: it stops after its epoch (or was killed) and stays cancelled; before an early stop or a give-back.
  ['cancelled, aborted', facts(failed('aborted'), { cancelled: true }), { action: 'record-cancel', next: 'cancelled', outcome: 'cancelled', healthy: true }],
  ['cancelled, crashed', facts(failed('crashed'), { cancelled: true }), { action: 'record-cancel', next: 'cancelled', outcome: 'cancelled', healthy: false }],
  ['cancelled, early stop and worker stopping too', facts(failed('aborted'), { cancelled: true, earlyStop: STOP, stopping: true }), { action: 'record-cancel', next: 'cancelled', outcome: 'cancelled', healthy: true }],
  // ... but a trial that failed on its own fails as it would have.
  ['cancelled, diverged', facts(failed('diverged', 'training diverged: loss NaN'), { cancelled: true }), {
    action: 'end-attempt', next: 'diverged', outcome: 'diverged', error: 'training diverged: loss NaN', message: 'training diverged: loss NaN',
    log: 'diverged: training diverged: loss NaN', wandb: 'diverged', then: 'unrecoverable', healthy: true,
  }],
  ['cancelled, error with attempts left', facts(failed('error', 'boom'), { cancelled: true }), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'boom', message: 'boom',
    log: 'attempt failed, will retry: boom', wandb: null, then: 'retry', healthy: false,
  }],

  // Stopped early by the sweep's rule: before a give-back.
  ['early stop, aborted', facts(failed('aborted'), { earlyStop: STOP }), { action: 'record-stop', next: 'stopped', outcome: 'stopped', reason: STOP.reason, iteration: 4, healthy: true }],
  ['early stop, crashed', facts(failed('crashed'), { earlyStop: STOP }), { action: 'record-stop', next: 'stopped', outcome: 'stopped', reason: STOP.reason, iteration: 4, healthy: false }],
  ['early stop, worker stopping too', facts(failed('aborted'), { earlyStop: STOP, stopping: true, forced: true }), { action: 'record-stop', next: 'stopped', outcome: 'stopped', reason: STOP.reason, iteration: 4, healthy: true }],
  ['early stop, bad input', facts(failed('bad-input', 'no images in data/'), { earlyStop: STOP }), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'no images in data/', message: 'no images in data/',
    log: 'failed: no images in data/', wandb: 'failed', then: 'unrecoverable', healthy: true,
  }],

  // The worker stops: the trial goes back to the queue, checkpointed or killed.
  ['worker stopping, aborted', facts(failed('aborted'), { stopping: true }), { action: 'give-back', next: 'queued', outcome: 'given-back', killed: false, healthy: true }],
  ['worker stopping now, crashed', facts(failed('crashed'), { stopping: true, forced: true }), { action: 'give-back', next: 'queued', outcome: 'given-back', killed: true, healthy: false }],
  ['worker stopping, crashed', facts(failed('crashed'), { stopping: true }), { action: 'give-back', next: 'queued', outcome: 'given-back', killed: false, healthy: false }],
  ['worker stopping, diverged', facts(failed('diverged', 'nan'), { stopping: true }), {
    action: 'end-attempt', next: 'diverged', outcome: 'diverged', error: 'nan', message: 'nan', log: 'diverged: nan', wandb: 'diverged', then: 'unrecoverable', healthy: true,
  }],
  ['worker stopping, error with attempts left', facts(failed('error', 'boom'), { stopping: true }), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'boom', message: 'boom', log: 'attempt failed, will retry: boom', wandb: null, then: 'retry', healthy: false,
  }],

  // Divergence and bad input end the trial, never retried, on any attempt.
  ['diverged', facts(failed('diverged', 'training diverged: loss Infinity in gru epoch 2')), {
    action: 'end-attempt', next: 'diverged', outcome: 'diverged', error: 'training diverged: loss Infinity in gru epoch 2', message: 'training diverged: loss Infinity in gru epoch 2',
    log: 'diverged: training diverged: loss Infinity in gru epoch 2', wandb: 'diverged', then: 'unrecoverable', healthy: true,
  }],
  ['bad input', facts(failed('bad-input', 'bad data')), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'bad data', message: 'bad data', log: 'failed: bad data', wandb: 'failed', then: 'unrecoverable', healthy: true,
  }],
  ['bad input with a stack: the message is stored', facts(failed('bad-input', 'bad data', 'Error: bad data\n    at load')), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'bad data', message: 'bad data', log: 'failed: bad data', wandb: 'failed', then: 'unrecoverable', healthy: true,
  }],
  ['diverged on the last attempt', facts(failed('diverged', 'nan'), { attemptsMade: 2 }), {
    action: 'end-attempt', next: 'diverged', outcome: 'diverged', error: 'nan', message: 'nan', log: 'diverged: nan', wandb: 'diverged', then: 'unrecoverable', healthy: true,
  }],

  // Anything else is retried while attempts are left, and fails after the last.
  ['error, first of 3 attempts', facts(failed('error', 'boom')), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'boom', message: 'boom', log: 'attempt failed, will retry: boom', wandb: null, then: 'retry', healthy: false,
  }],
  ['error with the trial process stack: the stack is stored', facts(failed('error', 'boom', 'Error: boom\n    at step')), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'Error: boom\n    at step', message: 'boom', log: 'attempt failed, will retry: boom', wandb: null, then: 'retry', healthy: false,
  }],
  ['error, second of 3 attempts', facts(failed('error', 'boom'), { attemptsMade: 1 }), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'boom', message: 'boom', log: 'attempt failed, will retry: boom', wandb: null, then: 'retry', healthy: false,
  }],
  ['error, last of 3 attempts', facts(failed('error', 'boom', 'Error: boom\n    at step'), { attemptsMade: 2 }), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'Error: boom\n    at step', message: 'boom', log: 'failed after 3 attempt(s): boom', wandb: 'failed', then: 'retry', healthy: false,
  }],
  ['error, the only attempt', facts(failed('error', 'boom'), { attemptsAllowed: 1 }), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'boom', message: 'boom', log: 'failed after 1 attempt(s): boom', wandb: 'failed', then: 'retry', healthy: false,
  }],
  ['crashed unasked, attempts left (a stack is not stored)', facts(failed('crashed', 'the trial process exited (killed by SIGKILL)', 'stack')), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'the trial process exited (killed by SIGKILL)', message: 'the trial process exited (killed by SIGKILL)',
    log: 'attempt failed, will retry: the trial process exited (killed by SIGKILL)', wandb: null, then: 'retry', healthy: false,
  }],
  ['crashed unasked, last attempt', facts(failed('crashed', 'exited'), { attemptsMade: 2 }), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'exited', message: 'exited', log: 'failed after 3 attempt(s): exited', wandb: 'failed', then: 'retry', healthy: false,
  }],
  ['disk unavailable (storage), attempts left', facts(failed('storage', 'the disk would not take checkpoint gru-e0003', 'stack')), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'the disk would not take checkpoint gru-e0003', message: 'the disk would not take checkpoint gru-e0003',
    log: 'attempt failed, will retry: the disk would not take checkpoint gru-e0003', wandb: null, then: 'retry', healthy: false,
  }],
  ['disk unavailable (storage), last attempt, worker stopping', facts(failed('storage', 'disk full'), { attemptsMade: 2, stopping: true }), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'disk full', message: 'disk full', log: 'failed after 3 attempt(s): disk full', wandb: 'failed', then: 'retry', healthy: false,
  }],
  ['aborted with no reason known, attempts left', facts(failed('aborted', 'training stopped after gru epoch 3 (checkpointed)')), {
    action: 'end-attempt', next: 'queued', outcome: 'retry', error: 'training stopped after gru epoch 3 (checkpointed)', message: 'training stopped after gru epoch 3 (checkpointed)',
    log: 'attempt failed, will retry: training stopped after gru epoch 3 (checkpointed)', wandb: null, then: 'retry', healthy: true,
  }],
  ['aborted with no reason known, attempts used up', facts(failed('aborted', 'stopped'), { attemptsMade: 5 }), {
    action: 'end-attempt', next: 'failed', outcome: 'failed', error: 'stopped', message: 'stopped', log: 'failed after 3 attempt(s): stopped', wandb: 'failed', then: 'retry', healthy: true,
  }],
];

describe('decideOutcome', () => {
  it.each(rows)('%s', (_name, f, expected) => {
    expect(decideOutcome(f)).toEqual(expected);
  });
});

describe('storedOutcome', () => {
  it.each([
    ['finished', { outcome: 'finished', endWandb: true }],
    // Cancelled while its last epoch ran: the result is kept, the trial stays cancelled.
    ['cancelled', { outcome: 'cancelled', endWandb: true }],
    // Still this worker's but ended otherwise meanwhile, or another worker's.
    ['stopped', { outcome: 'lost', endWandb: false }],
    ['failed', { outcome: 'lost', endWandb: false }],
    [null, { outcome: 'lost', endWandb: false }],
  ] as const)('%s -> %j', (status, expected) => {
    expect(storedOutcome(status)).toEqual(expected);
  });
});
