/**
 * One attempt at a trial: claim it, run it in a trial process, write its heartbeat and epochs
 * while it trains, mirror it to W&B, and carry out what its end comes to (outcome.ts) in the
 * database and the queue. The worker loop (worker.ts) takes the job and counts the outcome.
 */
import { join } from 'node:path';
import { DelayedError, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { PrismaClient, TrialStatus } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import type { JobProgress, TrialJobData } from './queue.ts';
import type { StopDecision } from '../sweep/early-stop.ts';
import type { BackendChoice } from '../train/backend.ts';
import type { BatchProgress, EpochMetrics, TrialResult } from '../train/trainer.ts';
import { better, epochMetric, epochRows, formatParams, resultMetric, sweptKeys, type MetricRow } from '../track/metrics.ts';
import {
  claimTrial,
  endAttempt,
  finishTrial,
  heartbeat,
  recordMetrics,
  stopTrial,
  stoppedCancelled,
  type ArtifactRecord,
  type Claim,
  type ClaimedTrial,
} from '../track/store.ts';
import { earlyStopCheck } from '../track/histories.ts';
import { readTrialPredictions } from '../track/predictions.ts';
import { wandbSummary, type WandbMirror } from '../track/wandb/index.ts';
import { formatSeconds } from '../util/progress.ts';
import { dataPlan } from '../sweep/data-plan.ts';
import { trialDir } from '../infra/artifacts.ts';
import { decideOutcome, storedOutcome, type OutcomeDecision, type TrialEnding, type TrialOutcome } from './outcome.ts';
import { isConnectionError, shortError, type WorkerTimings } from './policy.ts';
import type { TrainerKind } from './protocol.ts';
import { TrialFailure, type TrialHandlers, type TrialOutput, type TrialProcess } from './trial-process.ts';

/** The epoch's database writes hold the trial back at most this long; after that they go on in the background. */
const EPOCH_WRITE_WAIT_MS = 5_000;
/** While the database is unreachable, a job that could not be claimed waits this long. */
const DB_DOWN_RETRY_MS = 5_000;

export interface TrialTiming {
  trialId: string;
  outcome: TrialOutcome;
  /** The job reached the processor. */
  pickedAt: number;
  /** The trainer began (data and backend ready); null when it never did. */
  startedAt: number | null;
  /** The trainer returned or failed. */
  trainedAt: number | null;
  /** The outcome is in the database. */
  storedAt: number;
}

/** What an attempt uses of its worker. */
export interface AttemptContext {
  /** The worker's name, the trial's owner in the database. */
  id: string;
  prisma: PrismaClient;
  wandb: WandbMirror;
  env: Env;
  timings: WorkerTimings;
  trainer: TrainerKind;
  /** Overrides the sweep's `train.backend`. */
  backend?: BackendChoice;
  /** A trial another worker runs is looked at again after this long. */
  busyRetryMs: number;
  /** Whether the worker is stopping, and whether it was told to kill its trials: read when needed, they change. */
  stopping(): boolean;
  forced(): boolean;
  say(trial: { id: string; index?: number }, msg: string): void;
  /** A database write that waits out an outage (policy.ts persistently). */
  persist<T>(what: string, write: () => Promise<T>): Promise<T>;
  onOutage(state: 'down' | 'up', err?: unknown): void;
  /** A trial process to run in, and its return (`healthy`: it may take another trial). */
  acquire(): TrialProcess;
  release(p: TrialProcess, healthy: boolean): void;
  /** Counts an outcome (and the failures in a row); checkFailures stops the worker when there are too many. */
  count(o: TrialOutcome): void;
  checkFailures(lastError: string): void;
  /** Told of an attempt's end that is thrown rather than returned (opts.onTrial). */
  report(t: TrialTiming): void;
  /**
   * Claims whose answer was lost with the connection, by trial id: the job's attempt and the
   * claim's time. The job's next delivery makes the same claim again (claimTrial's claimedAt),
   * so a claim that was stored after all counts one attempt, not two.
   */
  unanswered: Map<string, { jobAttempt: number; claimedAt: Date }>;
}

/**
 * Forgets lost claims made more than `maxAgeMs` ago: by then the worker has given the trial up
 * or its job has gone to another worker, and the claim cannot be made again as itself.
 */
export function pruneUnanswered(unanswered: AttemptContext['unanswered'], now: number, maxAgeMs: number): void {
  for (const [id, c] of unanswered) if (now - c.claimedAt.getTime() > maxAgeMs) unanswered.delete(id);
}

/**
 * Claims the job's trial for this worker (track/store.ts claimTrial). Resolves to the trial,
 * or to the status of a trial that has ended (nothing to run); throws what the queue must do
 * otherwise: look again later (DelayedError) or give the job up (UnrecoverableError).
 */
export async function claimAttempt(ctx: AttemptContext, job: Job<TrialJobData>, token: string | undefined): Promise<{ trial: ClaimedTrial } | { ended: TrialStatus }> {
  const trialId = job.data.trialId;
  const earlier = ctx.unanswered.get(trialId);
  const claimedAt = earlier?.jobAttempt === job.attemptsMade ? earlier.claimedAt : new Date();
  let claim: Claim;
  try {
    claim = await claimTrial(ctx.prisma, trialId, ctx.id, ctx.timings.staleMs, claimedAt);
    ctx.unanswered.delete(trialId);
    ctx.onOutage('up');
  } catch (err) {
    if (!isConnectionError(err)) throw err;
    pruneUnanswered(ctx.unanswered, Date.now(), ctx.timings.dbOutageMs + ctx.timings.staleMs);
    ctx.unanswered.set(trialId, { jobAttempt: job.attemptsMade, claimedAt });
    // Not the trial's fault: wait without spending one of its attempts.
    ctx.onOutage('down', err);
    await job.moveToDelayed(Date.now() + DB_DOWN_RETRY_MS, token);
    throw new DelayedError();
  }
  if (claim.outcome === 'missing') throw new UnrecoverableError(`trial ${trialId} is not in the database (was its sweep deleted?)`);
  if (claim.outcome === 'ended') {
    ctx.say({ id: trialId }, `already ${claim.status}; not run again`);
    ctx.count('skipped');
    return { ended: claim.status };
  }
  if (claim.outcome === 'busy') {
    // Another live worker runs it (it lost this job's lock, e.g. through a Redis restart).
    // Look again in a while: if that worker is gone, its heartbeat will be stale by then.
    ctx.say({ id: trialId }, `running on ${claim.worker}; looking again in ${Math.round(ctx.busyRetryMs / 1000)}s`);
    ctx.count('busy');
    await job.moveToDelayed(Date.now() + ctx.busyRetryMs, token);
    throw new DelayedError();
  }
  return { trial: claim.trial };
}

/** Runs one attempt at `trial`; resolves to its timing, or throws what the queue must know (retry, no retry, waiting). */
export function runAttempt(ctx: AttemptContext, job: Job<TrialJobData>, token: string | undefined, trial: ClaimedTrial, pickedAt: number): Promise<TrialTiming> {
  return new TrialAttempt(ctx, job, token, trial, pickedAt).run();
}

class TrialAttempt {
  private readonly spec: ClaimedTrial['sweep']['spec'];
  private readonly metric: ClaimedTrial['sweep']['metric'];
  private readonly outDir: string;
  private best: number | null;
  /** Learned from heartbeats: the trial was cancelled, or is another worker's now. */
  private cancelled = false;
  private lost = false;
  /** Set when the sweep's early_terminate rule stops this trial. */
  private earlyStop: StopDecision | null = null;
  private startedAt: number | null = null;
  private trainedAt: number | null = null;
  private activeBackend: string | null = null;
  private healthy = false;
  /** Set once the attempt is over: a late heartbeat must not abort the process's next trial. */
  private ended = false;
  /**
   * Metric rows not yet stored (the database was unreachable), by (phase, epoch, key): they
   * go with the next write that succeeds. They are also in the trial's history.json, which
   * is stored whole when the trial ends, so a worker that dies meanwhile loses none.
   */
  private readonly unsaved = new Map<string, MetricRow>();
  /** W&B outbox rows not yet written: the run's start, then its epochs, in order (with their steps). */
  private wandbStart = true;
  private readonly wandbEpochs = new Map<string, { m: EpochMetrics; step: number }>();
  /** The heartbeat-and-epoch write in flight, if any. */
  private writing: Promise<void> | null = null;
  private proc!: TrialProcess;
  private beat: NodeJS.Timeout | undefined;

  constructor(
    private readonly w: AttemptContext,
    private readonly job: Job<TrialJobData>,
    private readonly token: string | undefined,
    private readonly trial: ClaimedTrial,
    private readonly pickedAt: number,
  ) {
    this.spec = trial.sweep.spec;
    this.metric = trial.sweep.metric;
    this.outDir = trialDir(trial.id, w.env);
    this.best = trial.bestMetric;
  }

  private say(msg: string): void {
    this.w.say(this.trial, msg);
  }

  private timing(outcome: TrialOutcome): TrialTiming {
    this.w.count(outcome);
    return { trialId: this.trial.id, outcome, pickedAt: this.pickedAt, startedAt: this.startedAt, trainedAt: this.trainedAt, storedAt: performance.now() };
  }

  private progress(p: Omit<JobProgress, 'trialId' | 'worker'>): void {
    void this.job.updateProgress({ trialId: this.trial.id, worker: this.w.id, ...p } satisfies JobProgress).catch(() => {});
  }

  async run(): Promise<TrialTiming> {
    const { trial, w } = this;
    this.proc = w.acquire();
    this.beat = setInterval(() => void this.writeEpoch(), w.timings.heartbeatMs);
    this.say(`${trial.sweep.name}: started (attempt ${trial.attempts}) ${formatParams(trial.params, sweptKeys(this.spec.parameters))} -> ${this.outDir}`);
    try {
      if (w.stopping()) throw new TrialFailure('aborted', 'the worker is stopping');
      const out = await this.proc.run(
        {
          trialId: trial.id,
          params: { ...trial.params, seed: trial.seed },
          outDir: this.outDir,
          data: dataPlan(this.spec.train, this.spec.file),
          backend: w.backend ?? this.spec.train.backend ?? 'auto',
          trainer: w.trainer,
        },
        this.handlers(),
      );
      this.trainedAt = performance.now();
      this.healthy = true;
      return await this.carryOut(this.decide({ kind: 'result' }), out);
    } catch (err) {
      this.trainedAt ??= performance.now();
      clearInterval(this.beat);
      await this.writing; // the outcome's writes below must not race a heartbeat's
      const ending: TrialEnding =
        err instanceof TrialFailure ? { kind: 'failure', failure: err.kind, message: err.message, childStack: err.childStack } : { kind: 'worker-error' };
      return await this.carryOut(this.decide(ending), null, err);
    } finally {
      clearInterval(this.beat);
      await this.writing;
      this.ended = true;
      // Epochs the database missed: stored now if it answers and the trial is still this
      // worker's (history.json keeps them anyway).
      if (this.unsaved.size > 0) await recordMetrics(w.prisma, [...this.unsaved.values()], w.id).catch(() => 0);
      w.wandb.forget(trial.id);
      w.release(this.proc, this.healthy);
    }
  }

  private decide(ending: TrialEnding): OutcomeDecision {
    return decideOutcome({
      ending,
      lost: this.lost,
      cancelled: this.cancelled,
      earlyStop: this.earlyStop,
      stopping: this.w.stopping(),
      forced: this.w.forced(),
      attemptsMade: this.job.attemptsMade,
      attemptsAllowed: this.job.opts.attempts ?? 1,
    });
  }

  /** Does what `d` says; `out` is the trainer's output (for `store-result`), `err` what ended the run otherwise. */
  private async carryOut(d: OutcomeDecision, out: TrialOutput | null, err?: unknown): Promise<TrialTiming> {
    const { w, trial } = this;
    const metric = this.metric.name;
    if ('healthy' in d) this.healthy = d.healthy;
    switch (d.action) {
      case 'store-result':
        return await this.store(out!.result, out!.history);
      case 'rethrow':
        // Not the trial's failure but ours (storing its outcome): the queue retries the job,
        // which resumes from the last checkpoint.
        this.say(`could not record the trial's outcome, the job is retried: ${shortError(err)}`);
        throw err;
      case 'leave':
        this.say('another worker owns this trial now; leaving it to it');
        return this.timing('lost');
      case 'record-cancel':
        await stoppedCancelled(w.prisma, trial.id, w.id);
        await this.endWandb('cancelled', { [metric]: this.best });
        this.say('cancelled: stopped after a checkpoint');
        return this.timing('cancelled');
      case 'record-stop': {
        const owned = await w.persist('recording an early stop', () =>
          stopTrial(w.prisma, { trialId: trial.id, worker: w.id, reason: d.reason, bestMetric: this.best, backend: this.activeBackend, checkpoint: join(this.outDir, 'checkpoints') }),
        );
        if (!owned) return this.timing('lost');
        await this.endWandb('stopped', { [metric]: this.best, stopped: d.reason });
        this.say(`stopped early after iteration ${d.iteration}; metrics and checkpoint kept`);
        return this.timing('stopped');
      }
      case 'give-back':
        this.say(`given back to the queue (${d.killed ? 'killed' : 'checkpointed'}); it resumes wherever it runs next`);
        w.report(this.timing('given-back'));
        await this.preemptWandb();
        return await this.giveBack();
      case 'end-attempt': {
        const what = d.then === 'unrecoverable' ? 'recording the end of a trial' : 'recording a failed attempt';
        await w.persist(what, () => endAttempt(w.prisma, { trialId: trial.id, worker: w.id, status: d.next, error: d.error, backend: this.activeBackend }));
        this.say(d.log);
        if (d.wandb) await this.endWandb(d.wandb, { [metric]: this.best, error: d.message });
        w.report(this.timing(d.outcome));
        w.checkFailures(d.message);
        throw d.then === 'unrecoverable' ? new UnrecoverableError(d.message) : new Error(d.message);
      }
    }
  }

  private async giveBack(): Promise<never> {
    // Unless the database answers now, the trial stays `running` under this worker's name
    // until its heartbeat is stale; the next worker to receive the job claims it then.
    await endAttempt(this.w.prisma, { trialId: this.trial.id, worker: this.w.id, status: 'queued' }).catch(() => false);
    await this.job.moveToWait(this.token);
    throw new WaitingError();
  }

  private async store(result: TrialResult, history: EpochMetrics[]): Promise<TrialTiming> {
    const { w, trial } = this;
    // No heartbeat write may run beside the final one (W&B rows of one run go in order).
    clearInterval(this.beat);
    await this.writing;
    const artifacts: ArtifactRecord[] = [
      { kind: 'model', path: result.model_dir },
      { kind: 'predictions', path: result.predictions.val, phase: 'val' },
      ...(result.predictions.test ? [{ kind: 'predictions' as const, path: result.predictions.test, phase: 'test' }] : []),
      { kind: 'checkpoint', path: join(this.outDir, 'checkpoints') },
    ];
    const value = resultMetric(this.metric, result, history);
    const predictions = w.trainer === 'noop' ? [] : readTrialPredictions(result, (m) => this.say(m));
    const st = await w.persist('storing a finished trial', () => finishTrial(w.prisma, {
      trialId: trial.id,
      worker: w.id,
      result,
      bestMetric: value,
      metrics: history.flatMap((m) => epochRows(trial.id, m)),
      artifacts: w.trainer === 'noop' ? [] : artifacts,
      predictions,
    }));
    const stored = storedOutcome(st);
    if (stored.endWandb) {
      // Every epoch, also those an earlier attempt or an outage kept from the outbox (rewriting
      // one keeps its W&B step, so nothing is sent twice).
      if (w.wandb.mode !== 'disabled') history.forEach((m, step) => this.wandbEpochs.set(`${m.phase}/${m.epoch}`, { m, step }));
      await this.endWandb(stored.outcome, wandbSummary(result));
    }
    this.say(`${st ?? 'lost'}: ${this.metric.name} ${value?.toFixed(4) ?? '-'} in ${formatSeconds(result.seconds)} (${result.images_per_s.toFixed(1)} img/s on ${result.backend})`);
    return this.timing(stored.outcome);
  }

  // --- while the trial trains --------------------------------------------------------------

  private handlers(): TrialHandlers {
    const { w } = this;
    return {
      log: (m) => this.say(m),
      started: (info) => {
        this.startedAt = performance.now();
        this.activeBackend = info.backend;
        this.say(`training on ${info.backend}: ${info.images.train} train / ${info.images.val} val / ${info.images.test} test images`);
        if (w.stopping()) this.proc.abort();
      },
      phase: (phase, epochs, start) => this.progress({ phase, epoch: start, epochs, metric: this.best }),
      progress: (p: BatchProgress) => this.progress({ phase: p.phase, epoch: p.epoch, epochs: p.epochs, batch: p.batch, batches: p.batches, loss: p.loss, metric: this.best }),
      // An earlier attempt ran these epochs; if it died before storing them, they are
      // stored now, before the new ones (W&B lines keep their steps either way).
      resumed: (history) => history.forEach((m, step) => this.record(m, step)),
      epoch: (m: EpochMetrics, step: number) => this.onEpoch(m, step),
    };
  }

  /** After each checkpointed epoch: store it, ask the early-termination rule; resolves true to stop the trial. */
  private async onEpoch(m: EpochMetrics, step: number): Promise<boolean> {
    const { trial, w, spec } = this;
    this.record(m, step);
    // A database that does not answer holds the trial back a few seconds at most.
    const stored = await Promise.race([
      (this.writing ? this.writing.then(() => this.writeEpoch()) : this.writeEpoch()).then(() => this.unsaved.size === 0),
      new Promise<false>((r) => setTimeout(() => r(false), EPOCH_WRITE_WAIT_MS).unref()),
    ]);
    // Early termination compares this epoch with the other trials' epochs, so it needs
    // this one stored; while the database is away the decision waits for a later epoch.
    if (stored && spec.early_terminate && !w.stopping() && !this.cancelled && !this.lost) {
      try {
        this.earlyStop = await Promise.race([
          earlyStopCheck(w.prisma, { sweepId: trial.sweep.id, trialId: trial.id, config: spec.early_terminate, metric: this.metric }),
          new Promise<null>((r) => setTimeout(() => r(null), EPOCH_WRITE_WAIT_MS).unref()),
        ]);
        if (this.earlyStop) this.say(`early termination (${spec.early_terminate.type}): ${this.earlyStop.reason}`);
      } catch (err) {
        this.say(`early termination check failed, trial goes on: ${(err as Error).message}`);
      }
    }
    this.say(
      `${m.phase} ${m.epoch + 1}: loss ${m.loss.toFixed(4)} val_loss ${m.val_loss.toFixed(4)} ` +
        `val_seq_acc ${m.val_seq_acc.toFixed(4)} ${m.images_per_s.toFixed(1)} img/s ${formatSeconds(m.seconds)}`,
    );
    this.progress({ phase: m.phase, epoch: m.epoch + 1, metric: this.best });
    return w.stopping() || this.cancelled || this.lost || this.earlyStop !== null;
  }

  /** An epoch to store and mirror: the best so far, its metric rows, its W&B line at `step`. */
  private record(m: EpochMetrics, step: number): void {
    const v = epochMetric(this.metric, m);
    if (v !== null && better(this.metric.goal, v, this.best)) this.best = v;
    for (const r of epochRows(this.trial.id, m)) this.unsaved.set(`${r.phase}/${r.epoch}/${r.key}`, r);
    if (this.w.wandb.mode !== 'disabled') this.wandbEpochs.set(`${m.phase}/${m.epoch}`, { m, step });
  }

  /** What a heartbeat says of the trial: cancelled, or (null) no longer this worker's. */
  private onStatus(st: string | null): void {
    if (this.ended) return;
    if (st === 'cancelled') this.cancelled = true;
    if (st === null) this.lost = true;
    if (this.cancelled || this.lost) this.proc.abort();
  }

  /** The heartbeat, then the epochs not yet stored, then their W&B rows; one write at a time. */
  private writeEpoch(): Promise<void> {
    if (this.writing) return this.writing;
    const { trial, w } = this;
    const rows = [...this.unsaved.values()];
    this.writing = (async () => {
      try {
        // The heartbeat first: it says whether this worker still owns the trial; the rows are
        // written only if it does (and the upsert checks that again).
        const st = await heartbeat(w.prisma, trial.id, w.id, this.best);
        if (st !== null && rows.length) await recordMetrics(w.prisma, rows, w.id);
        for (const r of rows) if (this.unsaved.get(`${r.phase}/${r.epoch}/${r.key}`) === r) this.unsaved.delete(`${r.phase}/${r.epoch}/${r.key}`);
        w.onOutage('up');
        this.onStatus(st);
        // W&B's rows are secondary: their failure must not hide a cancel or delay a decision.
        if (st !== null) await this.writeWandb().catch((err) => (isConnectionError(err) ? undefined : this.say(`W&B outbox: ${shortError(err)}`)));
      } catch (err) {
        if (isConnectionError(err)) w.onOutage('down', err);
        else this.say(`could not store epoch metrics (kept on disk, stored when the trial ends): ${(err as Error).message}`);
      } finally {
        this.writing = null;
      }
    })();
    return this.writing;
  }

  private async writeWandb(): Promise<void> {
    const { trial, w } = this;
    if (this.wandbStart) {
      await w.wandb.runStarted({ trialId: trial.id, sweepId: trial.sweep.id, sweepName: trial.sweep.name, params: { ...trial.params, seed: trial.seed }, attempt: trial.attempts, spec: this.spec });
      this.wandbStart = false;
    }
    for (const [k, { m, step }] of this.wandbEpochs) {
      await w.wandb.epoch(trial.id, m, step);
      this.wandbEpochs.delete(k);
    }
  }

  /** The epochs W&B has not got yet, then the run marked preempting (it resumes with the trial). */
  private async preemptWandb(): Promise<void> {
    // An attempt that sent W&B nothing has nothing to tell it.
    if (this.wandbStart && this.wandbEpochs.size === 0) return;
    await this.writeWandb()
      .then(() => this.w.wandb.runPreempted(this.trial.id))
      .catch((err) => this.say(`W&B outbox: ${(err as Error).message}`));
  }

  private endWandb(st: string, summary: Record<string, unknown>): Promise<void> {
    return this.writeWandb()
      .then(() => this.w.wandb.runEnded(this.trial.id, st, summary))
      .catch((err) => this.say(`W&B outbox: ${(err as Error).message}`));
  }
}
