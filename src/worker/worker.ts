/**
 * The worker: takes trial jobs from the queue, runs each in a trial process (runner.ts), and
 * records what happens in the database (see the ownership contract in track/store.ts).
 *
 * Why a child process per slot: training holds a core for minutes to hours. In the worker's
 * own event loop it would stop BullMQ from renewing the job's lock, and the job would be
 * declared stalled and handed to another worker while this one still trained it. Here the
 * worker's loop only waits on messages, so the lock is renewed every LOCK_MS / 2, the
 * heartbeat is written every HEARTBEAT_MS, and the stalled-job check (every STALLED_MS) only
 * ever re-delivers the jobs of workers that are gone.
 *
 * Failure policy:
 *   diverged (NaN or infinite loss)  -> `diverged`, never retried (these params do not train)
 *   bad input (data, parameters)     -> `failed`, never retried (it would fail the same way)
 *   anything else                    -> retried with backoff (TRIAL_JOB_OPTIONS); `queued`
 *                                       in between, `failed` with the reason after the last
 *   cancelled (sweep cancel)         -> stops after the running epoch; stays `cancelled`
 *   worker stopping (SIGTERM/SIGINT) -> the running epoch is checkpointed, the job goes back
 *                                       to the front of the queue and the trial to `queued`;
 *                                       whoever takes it next resumes from the checkpoint
 */
import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { openDatabase, type Database } from '../infra/db.ts';
import { redactUrl, type Env } from '../infra/env.ts';
import { connectRedis, ensureRedis } from '../infra/redis.ts';
import { openTrialQueue, pendingJobs, queueName, type TrialJobData } from '../scheduler/queue.ts';
import type { BackendChoice } from '../train/backend.ts';
import type { BatchProgress, EpochMetrics, TrialResult } from '../train/trainer.ts';
import { better, epochMetric, epochRows, formatParams, resultMetric, sweptKeys } from '../track/metrics.ts';
import {
  claimTrial,
  endAttempt,
  failAbandoned,
  finishTrial,
  heartbeat,
  HEARTBEAT_MS,
  recordMetrics,
  STALE_MS,
  stoppedCancelled,
  type ArtifactRecord,
  type ClaimedTrial,
} from '../track/store.ts';
import { formatSeconds } from '../util/progress.ts';
import { dataPlan, trialDir } from './data.ts';
import type { TrainerKind } from './protocol.ts';
import { TrialFailure, TrialProcess } from './trial-process.ts';
import { join } from 'node:path';

/** A job's lock lasts this long and is renewed at half of it while the worker lives. */
export const LOCK_MS = 60_000;
/** How often workers look for jobs whose lock expired (their worker died). */
export const STALLED_MS = 60_000;
/** A job re-delivered after a stall more often than this fails (a trial that kills its worker). */
export const MAX_STALLED = 2;
/** A job whose trial runs on another live worker is looked at again after this long. */
const BUSY_RETRY_MS = STALE_MS / 3;

export interface WorkerOptions {
  /** Trials run at once, each in its own process (one core each on the CPU backends). */
  concurrency?: number;
  /** Stop after this many trials. */
  maxTrials?: number;
  /** Stop when the queue has nothing waiting, running or delayed. */
  exitWhenIdle?: boolean;
  /** Overrides the sweep's `train.backend`. */
  backend?: BackendChoice;
  /** `noop` only in benchmarks of the worker itself (see TrainerKind). */
  trainer?: TrainerKind;
  env?: Env;
  log?: (line: string) => void;
  /** How often an idle worker with exitWhenIdle checks the queue. */
  idlePollMs?: number;
  /** Called when a trial attempt ends; times are performance.now() milliseconds. */
  onTrial?: (t: TrialTiming) => void;
}

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

export type TrialOutcome = 'finished' | 'failed' | 'retry' | 'diverged' | 'cancelled' | 'given-back' | 'skipped' | 'busy' | 'lost';

export interface WorkerSummary {
  id: string;
  /** Why it stopped: idle, max-trials, signal. */
  reason: string;
  outcomes: Partial<Record<TrialOutcome, number>>;
}

export interface RunningWorker {
  id: string;
  /** Resolves once the worker has stopped and closed its connections. */
  done: Promise<WorkerSummary>;
  /**
   * First call: take no more jobs, stop running trials after their epoch, give them back.
   * With `now` (or a second call): kill running trials at once; they still go back.
   */
  stop(reason?: string, now?: boolean): void;
}

/** What a trial's progress looks like in its job (`job.progress`), for displays. */
export interface JobProgress {
  trialId: string;
  worker: string;
  phase?: string;
  epoch?: number;
  epochs?: number;
  batch?: number;
  batches?: number;
  loss?: number;
  metric?: number | null;
}

export async function startWorker(opts: WorkerOptions = {}): Promise<RunningWorker> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const concurrency = opts.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`concurrency must be a positive integer, got ${concurrency}`);
  const id = `${hostname()}:${process.pid}`;
  const trainer = opts.trainer ?? 'tfjs';

  const { url } = await ensureRedis({ allowStart: false, env });
  let db: Database | null = null;
  let connection: Redis | null = null;
  try {
    db = await openDatabase({ env, migrate: true });
    connection = connectRedis({ url });
  } catch (err) {
    await db?.close();
    throw err;
  }
  const prisma = db.prisma;
  const queue = openTrialQueue(connection, env);
  const processEnv = { ...process.env, ...env, REDIS_URL: url } as NodeJS.ProcessEnv;

  const idle: TrialProcess[] = [];
  const busy = new Set<TrialProcess>();
  const outcomes: WorkerSummary['outcomes'] = {};
  let claimed = 0;
  let processed = 0;
  let stopping = false;
  let forced = false;
  let stopReason = '';
  let resolveDone!: (s: WorkerSummary) => void;
  const done = new Promise<WorkerSummary>((r) => (resolveDone = r));

  const count = (o: TrialOutcome) => (outcomes[o] = (outcomes[o] ?? 0) + 1);
  const say = (trial: { id: string; index?: number }, msg: string) => log(`${new Date().toISOString().slice(11, 19)} ${trial.id.slice(0, 10)}${trial.index !== undefined ? ` #${trial.index}` : ''} ${msg}`);

  const acquire = (): TrialProcess => {
    const p = idle.pop() ?? new TrialProcess(processEnv);
    busy.add(p);
    return p;
  };
  /** A process whose trial failed unexpectedly is replaced: its backend may be broken (a wasm abort). */
  const release = (p: TrialProcess, healthy: boolean) => {
    busy.delete(p);
    if (healthy && p.alive && !stopping) idle.push(p);
    else void p.close();
  };

  async function giveBack(job: Job<TrialJobData>, token: string | undefined, trialId: string): Promise<never> {
    await endAttempt(prisma, { trialId, worker: id, status: 'queued' }).catch(() => false);
    await job.moveToWait(token);
    throw new WaitingError();
  }

  async function runTrial(job: Job<TrialJobData>, token: string | undefined, trial: ClaimedTrial, pickedAt: number): Promise<TrialTiming> {
    const metric = trial.sweep.metric;
    const spec = trial.sweep.spec;
    const outDir = trialDir(trial.id, env);
    const backend = opts.backend ?? spec.train.backend ?? 'auto';
    const swept = sweptKeys(spec.parameters);
    let best = trial.bestMetric;
    let cancelled = false;
    let lost = false;
    let startedAt: number | null = null;
    let trainedAt: number | null = null;
    let activeBackend: string | null = null;
    let healthy = false;
    const timing = (outcome: TrialOutcome): TrialTiming => {
      count(outcome);
      return { trialId: trial.id, outcome, pickedAt, startedAt, trainedAt, storedAt: performance.now() };
    };
    const status = (st: string | null) => {
      if (st === 'cancelled') cancelled = true;
      if (st === null) lost = true;
      if (cancelled || lost) proc.abort();
    };
    const progress = (p: Omit<JobProgress, 'trialId' | 'worker'>) =>
      void job.updateProgress({ trialId: trial.id, worker: id, ...p } satisfies JobProgress).catch(() => {});

    const proc = acquire();
    const beat = setInterval(() => {
      heartbeat(prisma, trial.id, id, best).then(status, (err) => say(trial, `heartbeat failed: ${(err as Error).message}`));
    }, HEARTBEAT_MS);
    say(trial, `${trial.sweep.name}: started (attempt ${trial.attempts}) ${formatParams(trial.params, swept)} -> ${outDir}`);
    try {
      if (stopping) throw new TrialFailure('aborted', 'the worker is stopping');
      const out = await proc.run(
        {
          trialId: trial.id,
          params: { ...trial.params, seed: trial.seed },
          outDir,
          data: dataPlan(spec.train, spec.file),
          backend,
          trainer,
        },
        {
          log: (m) => say(trial, m),
          started: (info) => {
            startedAt = performance.now();
            activeBackend = info.backend;
            say(trial, `training on ${info.backend}: ${info.images.train} train / ${info.images.val} val / ${info.images.test} test images`);
            if (stopping) proc.abort();
          },
          phase: (phase, epochs, start) => progress({ phase, epoch: start, epochs, metric: best }),
          progress: (p: BatchProgress) => progress({ phase: p.phase, epoch: p.epoch, epochs: p.epochs, batch: p.batch, batches: p.batches, loss: p.loss, metric: best }),
          epoch: async (m: EpochMetrics) => {
            const v = epochMetric(metric, m);
            if (v !== null && better(metric.goal, v, best)) best = v;
            try {
              const [, st] = await Promise.all([recordMetrics(prisma, epochRows(trial.id, m)), heartbeat(prisma, trial.id, id, best)]);
              status(st);
            } catch (err) {
              // The epoch stays in the trial's history.json and is stored when the trial ends.
              say(trial, `could not store epoch metrics (kept on disk): ${(err as Error).message}`);
            }
            say(
              trial,
              `${m.phase} ${m.epoch + 1}: loss ${m.loss.toFixed(4)} val_loss ${m.val_loss.toFixed(4)} ` +
                `val_seq_acc ${m.val_seq_acc.toFixed(4)} ${m.images_per_s.toFixed(1)} img/s ${formatSeconds(m.seconds)}`,
            );
            progress({ phase: m.phase, epoch: m.epoch + 1, metric: best });
            return stopping || cancelled || lost;
          },
        },
      );
      trainedAt = performance.now();
      healthy = true;
      return await store(out.result, out.history);
    } catch (err) {
      trainedAt ??= performance.now();
      if (!(err instanceof TrialFailure)) throw err;
      healthy = err.kind === 'aborted' || err.kind === 'diverged' || err.kind === 'bad-input';
      if (lost) {
        say(trial, 'another worker owns this trial now; leaving it to it');
        return timing('lost');
      }
      if (cancelled && (err.kind === 'aborted' || err.kind === 'crashed')) {
        await stoppedCancelled(prisma, trial.id, id);
        say(trial, 'cancelled: stopped after a checkpoint');
        return timing('cancelled');
      }
      if (stopping && (err.kind === 'aborted' || err.kind === 'crashed')) {
        say(trial, `given back to the queue (${forced ? 'killed' : 'checkpointed'}); it resumes wherever it runs next`);
        opts.onTrial?.(timing('given-back'));
        return await giveBack(job, token, trial.id);
      }
      if (err.kind === 'diverged' || err.kind === 'bad-input') {
        const st = err.kind === 'diverged' ? 'diverged' : 'failed';
        await endAttempt(prisma, { trialId: trial.id, worker: id, status: st, error: err.message, backend: activeBackend });
        say(trial, `${st}: ${err.message}`);
        opts.onTrial?.(timing(st));
        throw new UnrecoverableError(err.message);
      }
      const attempts = job.opts.attempts ?? 1;
      const last = job.attemptsMade + 1 >= attempts;
      const reason = err.kind === 'error' && err.childStack ? err.childStack : err.message;
      await endAttempt(prisma, { trialId: trial.id, worker: id, status: last ? 'failed' : 'queued', error: reason, backend: activeBackend });
      say(trial, last ? `failed after ${attempts} attempt(s): ${err.message}` : `attempt failed, will retry: ${err.message}`);
      opts.onTrial?.(timing(last ? 'failed' : 'retry'));
      throw new Error(err.message);
    } finally {
      clearInterval(beat);
      release(proc, healthy);
    }

    async function store(result: TrialResult, history: EpochMetrics[]): Promise<TrialTiming> {
      const artifacts: ArtifactRecord[] = [
        { kind: 'model', path: result.model_dir },
        { kind: 'predictions', path: result.predictions.val, phase: 'val' },
        ...(result.predictions.test ? [{ kind: 'predictions' as const, path: result.predictions.test, phase: 'test' }] : []),
        { kind: 'checkpoint', path: join(outDir, 'checkpoints') },
      ];
      const value = resultMetric(metric, result, history);
      const st = await finishTrial(prisma, {
        trialId: trial.id,
        worker: id,
        result,
        bestMetric: value,
        metrics: history.flatMap((m) => epochRows(trial.id, m)),
        artifacts: trainer === 'noop' ? [] : artifacts,
      });
      say(trial, `${st ?? 'lost'}: ${metric.name} ${value?.toFixed(4) ?? '-'} in ${formatSeconds(result.seconds)} (${result.images_per_s.toFixed(1)} img/s on ${result.backend})`);
      return timing(st === 'finished' ? 'finished' : st === 'cancelled' ? 'cancelled' : 'lost');
    }
  }

  const processor = async (job: Job<TrialJobData>, token?: string) => {
    const pickedAt = performance.now();
    const trialId = job.data.trialId;
    if (stopping || (opts.maxTrials !== undefined && claimed >= opts.maxTrials)) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    const claim = await claimTrial(prisma, trialId, id);
    if (claim.outcome === 'missing') throw new UnrecoverableError(`trial ${trialId} is not in the database (was its sweep deleted?)`);
    if (claim.outcome === 'ended') {
      say({ id: trialId }, `already ${claim.status}; not run again`);
      count('skipped');
      return { status: claim.status };
    }
    if (claim.outcome === 'busy') {
      // Another live worker runs it (it lost this job's lock, e.g. through a Redis restart).
      // Look again in a while: if that worker is gone, its heartbeat will be stale by then.
      say({ id: trialId }, `running on ${claim.worker}; looking again in ${BUSY_RETRY_MS / 1000}s`);
      count('busy');
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
    claimed++;
    try {
      const t = await runTrial(job, token, claim.trial, pickedAt);
      opts.onTrial?.(t);
      return { status: t.outcome };
    } finally {
      processed++;
      if (opts.maxTrials !== undefined && processed >= opts.maxTrials) stop(`max-trials (${opts.maxTrials})`);
    }
  };

  const { name, prefix } = queueName(env);
  const worker = new Worker<TrialJobData>(name, processor, {
    connection,
    prefix,
    concurrency,
    name: id,
    lockDuration: LOCK_MS,
    stalledInterval: STALLED_MS,
    maxStalledCount: MAX_STALLED,
    autorun: false,
  });
  worker.on('error', (err) => log(`queue: ${err.message}`));
  // A job whose workers died more than MAX_STALLED times is failed by the queue without
  // reaching the processor; its trial would otherwise stay `running` with no owner.
  // Likewise a job whose last attempt threw outside the trial (a store error, say): the
  // processor could not record the end, so the trial is failed here with the reason.
  worker.on('failed', (job, err) => {
    if (!job) return;
    const lastAttempt = job.attemptsMade >= (job.opts.attempts ?? 1);
    if (!job.deferredFailure && !lastAttempt) return;
    const why = job.deferredFailure
      ? `${err.message}: the workers running this trial died ${MAX_STALLED + 1} times (killed, or out of memory?)`
      : `${err.message} (after ${job.attemptsMade} attempts)`;
    void failAbandoned(prisma, job.data.trialId, why).then(
      (changed) => changed && say({ id: job.data.trialId }, `failed: ${why}`),
      () => {},
    );
  });

  let idleTimer: NodeJS.Timeout | null = null;
  if (opts.exitWhenIdle) {
    const check = async () => {
      if (stopping) return;
      if (busy.size === 0 && (await pendingJobs(queue).catch(() => 1)) === 0 && busy.size === 0) stop('idle');
    };
    idleTimer = setInterval(() => void check(), opts.idlePollMs ?? 2_000);
    void check();
  }

  function stop(reason = 'stopped', now = false): void {
    if (stopping) {
      // Asked again: do not wait for the running epochs.
      if (!forced && busy.size > 0) {
        forced = true;
        log(`stopping now: killing ${busy.size} running trial(s); they resume from their last checkpoint`);
        for (const p of busy) p.kill();
      }
      return;
    }
    forced = now;
    stopping = true;
    stopReason = reason;
    if (idleTimer) clearInterval(idleTimer);
    if (busy.size > 0) {
      log(
        forced
          ? `stopping (${reason}): killing ${busy.size} running trial(s); they resume from their last checkpoint`
          : `stopping (${reason}): ${busy.size} running trial(s) stop after their epoch is checkpointed and go back to the queue (stop again to kill them now)`,
      );
    }
    for (const p of busy) (forced ? p.kill() : p.abort());
    void (async () => {
      try {
        await worker.close();
      } catch (err) {
        log(`closing the queue worker: ${(err as Error).message}`);
      }
      await Promise.all(idle.splice(0).map((p) => p.close()));
      await queue.close().catch(() => {});
      await connection!.quit().catch(() => {});
      await db!.close().catch(() => {});
      resolveDone({ id, reason: stopReason, outcomes });
    })();
  }

  log(`worker ${id}: queue ${prefix}:${name} at ${redactUrl(url)}, concurrency ${concurrency}${opts.maxTrials !== undefined ? `, at most ${opts.maxTrials} trial(s)` : ''}${opts.exitWhenIdle ? ', exits when idle' : ''}`);
  void worker.run().catch((err) => {
    log(`queue worker stopped: ${(err as Error).message}`);
    stop('error');
  });
  return { id, done, stop };
}
