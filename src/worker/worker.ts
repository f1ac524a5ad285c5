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
  recordMetrics,
  stopTrial,
  stoppedCancelled,
  type ArtifactRecord,
  type ClaimedTrial,
} from '../track/store.ts';
import type { MetricRow } from '../track/metrics.ts';
import { earlyStopCheck } from '../track/histories.ts';
import { openWandbMirror, wandbSummary, type WandbMirror } from '../track/wandb/index.ts';
import type { StopDecision } from '../scheduler/early-stop.ts';
import { formatSeconds } from '../util/progress.ts';
import { dataPlan, trialDir } from './data.ts';
import type { TrainerKind } from './protocol.ts';
import { TrialFailure, TrialProcess } from './trial-process.ts';
import { join } from 'node:path';
import { reapOrphans } from './reaper.ts';
import { readTrialPredictions } from '../track/predictions.ts';
import { isConnectionError, maxConsecutiveFailures, persistently, shortError, workerTimings, type WorkerTimings } from './policy.ts';

/** A job re-delivered after a stall more often than this fails (a trial that kills its worker). */
export const MAX_STALLED = 2;
/** While the database is unreachable, a job that could not be claimed waits this long. */
const DB_DOWN_RETRY_MS = 5_000;
/** The epoch's database writes hold the trial back at most this long; after that they go on in the background. */
const EPOCH_WRITE_WAIT_MS = 5_000;

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
  /** Stop taking work after this many failed trial attempts in a row (default SWEEP_MAX_CONSECUTIVE_FAILURES or 5). */
  maxConsecutiveFailures?: number;
  /** Overrides the timings read from the environment (policy.ts). */
  timings?: Partial<WorkerTimings>;
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

export type TrialOutcome = 'finished' | 'failed' | 'retry' | 'diverged' | 'stopped' | 'cancelled' | 'given-back' | 'skipped' | 'busy' | 'lost';

export interface WorkerSummary {
  id: string;
  /** Why it stopped: idle, max-trials, signal, consecutive failures. */
  reason: string;
  /** True when it stopped because something is wrong (its trials kept failing). */
  failed: boolean;
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
  const timings: WorkerTimings = { ...workerTimings(env), ...opts.timings };
  const failureLimit = maxConsecutiveFailures(env, opts.maxConsecutiveFailures);
  const busyRetryMs = Math.round(timings.staleMs / 3);

  const { url } = await ensureRedis({ allowStart: false, env });
  let db: Database | null = null;
  let connection: Redis | null = null;
  let wandb: WandbMirror;
  try {
    db = await openDatabase({ env, migrate: true });
    // W&B gets what the database gets, through the outbox: never in the way of training.
    wandb = openWandbMirror(db.prisma, env, (line) => log(line));
    connection = connectRedis({ url });
  } catch (err) {
    await db?.close();
    throw err;
  }
  wandb.start();
  const prisma = db.prisma;
  const queue = openTrialQueue(connection, env);
  const processEnv = { ...process.env, ...env, REDIS_URL: url } as NodeJS.ProcessEnv;

  const idle: TrialProcess[] = [];
  /** Trials this process is running now: a job for one of them is never started twice here. */
  const running = new Set<string>();
  const busy = new Set<TrialProcess>();
  const outcomes: WorkerSummary['outcomes'] = {};
  let claimed = 0;
  let processed = 0;
  let stopping = false;
  let forced = false;
  let stopReason = '';
  let stopFailed = false;
  let failuresInRow = 0;
  let dbDown = false;
  /** Logs the start and the end of a database outage once each, however many writes notice it. */
  const onOutage = (state: 'down' | 'up', err?: unknown) => {
    if (state === 'down' && !dbDown) {
      dbDown = true;
      log(`database unreachable (${shortError(err)}); training goes on, results wait in memory and on disk`);
    } else if (state === 'up' && dbDown) {
      dbDown = false;
      log('database reachable again; stored what waited');
    }
  };
  const persist = <T>(what: string, write: () => Promise<T>) => persistently(what, write, { outageMs: timings.dbOutageMs, onOutage });
  let resolveDone!: (s: WorkerSummary) => void;
  const done = new Promise<WorkerSummary>((r) => (resolveDone = r));

  const count = (o: TrialOutcome) => {
    outcomes[o] = (outcomes[o] ?? 0) + 1;
    // Failures in a row say the machine is broken (a bad driver, a full disk), not the trials:
    // stop before it fails every trial of the sweep. Divergence says nothing about the machine.
    if (o === 'failed' || o === 'retry') failuresInRow++;
    else if (o === 'finished' || o === 'stopped') failuresInRow = 0;
  };
  const checkFailures = (lastError: string) => {
    if (failuresInRow >= failureLimit && !stopping) {
      stopFailed = true;
      stop(`${failuresInRow} trial attempts failed in a row (limit ${failureLimit}, SWEEP_MAX_CONSECUTIVE_FAILURES); the last: ${lastError}`);
    }
  };
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
    // Unless the database answers now, the trial stays `running` under this worker's name
    // until its heartbeat is stale; the next worker to receive the job claims it then.
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
    /** Set when the sweep's early_terminate rule stops this trial. */
    let earlyStop: StopDecision | null = null;
    let startedAt: number | null = null;
    let trainedAt: number | null = null;
    let activeBackend: string | null = null;
    let healthy = false;
    const report = (t: TrialTiming) => opts.onTrial?.(t);
    const timing = (outcome: TrialOutcome): TrialTiming => {
      count(outcome);
      return { trialId: trial.id, outcome, pickedAt, startedAt, trainedAt, storedAt: performance.now() };
    };
    /** Set once the attempt is over: a late heartbeat must not abort the process's next trial. */
    let ended = false;
    const status = (st: string | null) => {
      if (ended) return;
      if (st === 'cancelled') cancelled = true;
      if (st === null) lost = true;
      if (cancelled || lost) proc.abort();
    };
    const progress = (p: Omit<JobProgress, 'trialId' | 'worker'>) =>
      void job.updateProgress({ trialId: trial.id, worker: id, ...p } satisfies JobProgress).catch(() => {});

    // Metric rows not yet stored (the database was unreachable), by (phase, epoch, key): they
    // go with the next write that succeeds. They are also in the trial's history.json, which
    // is stored whole when the trial ends, so a worker that dies meanwhile loses none.
    const unsaved = new Map<string, MetricRow>();
    /** W&B outbox rows not yet written: the run's start, then its epochs, in order (with their steps). */
    let wandbStart = true;
    const wandbEpochs = new Map<string, { m: EpochMetrics; step: number }>();
    const writeWandb = async () => {
      if (wandbStart) {
        await wandb.runStarted({ trialId: trial.id, sweepId: trial.sweep.id, sweepName: trial.sweep.name, params: { ...trial.params, seed: trial.seed }, attempt: trial.attempts, spec });
        wandbStart = false;
      }
      for (const [k, { m, step }] of wandbEpochs) {
        await wandb.epoch(trial.id, m, step);
        wandbEpochs.delete(k);
      }
    };
    const endWandb = (st: string, summary: Record<string, unknown>) =>
      writeWandb()
        .then(() => wandb.runEnded(trial.id, st, summary))
        .catch((err) => say(trial, `W&B outbox: ${(err as Error).message}`));
    let writing: Promise<void> | null = null;
    const writeEpoch = (): Promise<void> => {
      if (writing) return writing;
      const rows = [...unsaved.values()];
      writing = (async () => {
        try {
          // The heartbeat first: it says whether this worker still owns the trial; the rows are
          // written only if it does (and the upsert checks that again).
          const st = await heartbeat(prisma, trial.id, id, best);
          if (st !== null && rows.length) await recordMetrics(prisma, rows, id);
          for (const r of rows) if (unsaved.get(`${r.phase}/${r.epoch}/${r.key}`) === r) unsaved.delete(`${r.phase}/${r.epoch}/${r.key}`);
          if (dbDown) onOutage('up');
          status(st);
          // W&B's rows are secondary: their failure must not hide a cancel or delay a decision.
          if (st !== null) await writeWandb().catch((err) => (isConnectionError(err) ? undefined : say(trial, `W&B outbox: ${shortError(err)}`)));
        } catch (err) {
          if (isConnectionError(err)) onOutage('down', err);
          else say(trial, `could not store epoch metrics (kept on disk, stored when the trial ends): ${(err as Error).message}`);
        } finally {
          writing = null;
        }
      })();
      return writing;
    };
    /** An epoch to store and mirror: the best so far, its metric rows, its W&B line at `step`. */
    const record = (m: EpochMetrics, step: number) => {
      const v = epochMetric(metric, m);
      if (v !== null && better(metric.goal, v, best)) best = v;
      for (const r of epochRows(trial.id, m)) unsaved.set(`${r.phase}/${r.epoch}/${r.key}`, r);
      if (wandb.mode !== 'disabled') wandbEpochs.set(`${m.phase}/${m.epoch}`, { m, step });
    };
    const proc = acquire();
    const beat = setInterval(() => void writeEpoch(), timings.heartbeatMs);
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
          // An earlier attempt ran these epochs; if it died before storing them, they are
          // stored now, before the new ones (W&B lines keep their steps either way).
          resumed: (history) => history.forEach(record),
          epoch: async (m: EpochMetrics, step: number) => {
            record(m, step);
            // A database that does not answer holds the trial back a few seconds at most.
            const stored = await Promise.race([
              (writing ? writing.then(writeEpoch) : writeEpoch()).then(() => unsaved.size === 0),
              new Promise<false>((r) => setTimeout(() => r(false), EPOCH_WRITE_WAIT_MS).unref()),
            ]);
            // Early termination compares this epoch with the other trials' epochs, so it needs
            // this one stored; while the database is away the decision waits for a later epoch.
            if (stored && spec.early_terminate && !stopping && !cancelled && !lost) {
              try {
                earlyStop = await Promise.race([
                  earlyStopCheck(prisma, { sweepId: trial.sweep.id, trialId: trial.id, config: spec.early_terminate, metric }),
                  new Promise<null>((r) => setTimeout(() => r(null), EPOCH_WRITE_WAIT_MS).unref()),
                ]);
                if (earlyStop) say(trial, `early termination (${spec.early_terminate.type}): ${earlyStop.reason}`);
              } catch (err) {
                say(trial, `early termination check failed, trial goes on: ${(err as Error).message}`);
              }
            }
            say(
              trial,
              `${m.phase} ${m.epoch + 1}: loss ${m.loss.toFixed(4)} val_loss ${m.val_loss.toFixed(4)} ` +
                `val_seq_acc ${m.val_seq_acc.toFixed(4)} ${m.images_per_s.toFixed(1)} img/s ${formatSeconds(m.seconds)}`,
            );
            progress({ phase: m.phase, epoch: m.epoch + 1, metric: best });
            return stopping || cancelled || lost || earlyStop !== null;
          },
        },
      );
      trainedAt = performance.now();
      healthy = true;
      return await store(out.result, out.history);
    } catch (err) {
      trainedAt ??= performance.now();
      clearInterval(beat);
      await writing; // the outcome's writes below must not race a heartbeat's
      if (!(err instanceof TrialFailure)) {
        // Not the trial's failure but ours (storing its outcome): the queue retries the job,
        // which resumes from the last checkpoint.
        say(trial, `could not record the trial's outcome, the job is retried: ${shortError(err)}`);
        throw err;
      }
      healthy = err.kind === 'aborted' || err.kind === 'diverged' || err.kind === 'bad-input';
      if (lost) {
        say(trial, 'another worker owns this trial now; leaving it to it');
        return timing('lost');
      }
      if (cancelled && (err.kind === 'aborted' || err.kind === 'crashed')) {
        await stoppedCancelled(prisma, trial.id, id);
        await endWandb('cancelled', { [metric.name]: best });
        say(trial, 'cancelled: stopped after a checkpoint');
        return timing('cancelled');
      }
      const stop = earlyStop as StopDecision | null; // set by the epoch handler
      if (stop && (err.kind === 'aborted' || err.kind === 'crashed')) {
        const why = stop.reason;
        const owned = await persist('recording an early stop', () =>
          stopTrial(prisma, { trialId: trial.id, worker: id, reason: why, bestMetric: best, backend: activeBackend, checkpoint: join(outDir, 'checkpoints') }),
        );
        if (!owned) return timing('lost');
        await endWandb('stopped', { [metric.name]: best, stopped: why });
        say(trial, `stopped early after iteration ${stop.iteration}; metrics and checkpoint kept`);
        return timing('stopped');
      }
      if (stopping && (err.kind === 'aborted' || err.kind === 'crashed')) {
        say(trial, `given back to the queue (${forced ? 'killed' : 'checkpointed'}); it resumes wherever it runs next`);
        report(timing('given-back'));
        return await giveBack(job, token, trial.id);
      }
      if (err.kind === 'diverged' || err.kind === 'bad-input') {
        const st = err.kind === 'diverged' ? 'diverged' : 'failed';
        await persist('recording the end of a trial', () => endAttempt(prisma, { trialId: trial.id, worker: id, status: st, error: err.message, backend: activeBackend }));
        say(trial, `${st}: ${err.message}`);
        await endWandb(st, { [metric.name]: best, error: err.message });
        report(timing(st));
        checkFailures(err.message);
        throw new UnrecoverableError(err.message);
      }
      const attempts = job.opts.attempts ?? 1;
      const last = job.attemptsMade + 1 >= attempts;
      const reason = err.kind === 'error' && err.childStack ? err.childStack : err.message;
      await persist('recording a failed attempt', () =>
        endAttempt(prisma, { trialId: trial.id, worker: id, status: last ? 'failed' : 'queued', error: reason, backend: activeBackend }),
      );
      say(trial, last ? `failed after ${attempts} attempt(s): ${err.message}` : `attempt failed, will retry: ${err.message}`);
      if (last) await endWandb('failed', { [metric.name]: best, error: err.message });
      report(timing(last ? 'failed' : 'retry'));
      checkFailures(err.message);
      throw new Error(err.message);
    } finally {
      clearInterval(beat);
      await writing;
      ended = true;
      // Epochs the database missed: stored now if it answers and the trial is still this
      // worker's (history.json keeps them anyway).
      if (unsaved.size > 0) await recordMetrics(prisma, [...unsaved.values()], id).catch(() => 0);
      wandb.forget(trial.id);
      release(proc, healthy);
    }

    async function store(result: TrialResult, history: EpochMetrics[]): Promise<TrialTiming> {
      // No heartbeat write may run beside the final one (W&B rows of one run go in order).
      clearInterval(beat);
      await writing;
      const artifacts: ArtifactRecord[] = [
        { kind: 'model', path: result.model_dir },
        { kind: 'predictions', path: result.predictions.val, phase: 'val' },
        ...(result.predictions.test ? [{ kind: 'predictions' as const, path: result.predictions.test, phase: 'test' }] : []),
        { kind: 'checkpoint', path: join(outDir, 'checkpoints') },
      ];
      const value = resultMetric(metric, result, history);
      const predictions = trainer === 'noop' ? [] : readTrialPredictions(result, (m) => say(trial, m));
      const st = await persist('storing a finished trial', () => finishTrial(prisma, {
        trialId: trial.id,
        worker: id,
        result,
        bestMetric: value,
        metrics: history.flatMap((m) => epochRows(trial.id, m)),
        artifacts: trainer === 'noop' ? [] : artifacts,
        predictions,
      }));
      if (st === 'finished' || st === 'cancelled') {
        // Every epoch, also those an earlier attempt or an outage kept from the outbox (rewriting
        // one keeps its W&B step, so nothing is sent twice).
        if (wandb.mode !== 'disabled') history.forEach((m, step) => wandbEpochs.set(`${m.phase}/${m.epoch}`, { m, step }));
        await endWandb(st, wandbSummary(result));
      }
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
    if (running.has(trialId)) {
      // Its job came back while this worker still runs it (the job's lock expired while Redis
      // was away): claiming would succeed, the owner being this worker, and run it twice.
      say({ id: trialId }, `already running here; looking again in ${Math.round(busyRetryMs / 1000)}s`);
      count('busy');
      await job.moveToDelayed(Date.now() + busyRetryMs, token);
      throw new DelayedError();
    }
    let claim: Awaited<ReturnType<typeof claimTrial>>;
    try {
      claim = await claimTrial(prisma, trialId, id, timings.staleMs);
      if (dbDown) onOutage('up');
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      // Not the trial's fault: wait without spending one of its attempts.
      onOutage('down', err);
      await job.moveToDelayed(Date.now() + DB_DOWN_RETRY_MS, token);
      throw new DelayedError();
    }
    if (claim.outcome === 'missing') throw new UnrecoverableError(`trial ${trialId} is not in the database (was its sweep deleted?)`);
    if (claim.outcome === 'ended') {
      say({ id: trialId }, `already ${claim.status}; not run again`);
      count('skipped');
      return { status: claim.status };
    }
    if (claim.outcome === 'busy') {
      // Another live worker runs it (it lost this job's lock, e.g. through a Redis restart).
      // Look again in a while: if that worker is gone, its heartbeat will be stale by then.
      say({ id: trialId }, `running on ${claim.worker}; looking again in ${Math.round(busyRetryMs / 1000)}s`);
      count('busy');
      await job.moveToDelayed(Date.now() + busyRetryMs, token);
      throw new DelayedError();
    }
    claimed++;
    running.add(trialId);
    try {
      const t = await runTrial(job, token, claim.trial, pickedAt);
      opts.onTrial?.(t);
      return { status: t.outcome };
    } finally {
      running.delete(trialId);
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
    lockDuration: timings.lockMs,
    stalledInterval: timings.stalledMs,
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

  // Trials no job will deliver (Redis lost them) get one again; see reaper.ts.
  const reap = async () => {
    if (stopping) return;
    try {
      const r = await reapOrphans(prisma, queue, connection!, { staleMs: timings.staleMs, minAgeMs: timings.staleMs });
      if (r.enqueued > 0 || r.requeued.length > 0) log(`found ${r.enqueued} trial(s) without a queue job (${r.requeued.length} running with a stale heartbeat); queued them again`);
    } catch (err) {
      if (!isConnectionError(err)) log(`looking for trials without a job: ${shortError(err)}`);
    }
  };
  const reapTimer = setInterval(() => void reap(), timings.staleMs);
  reapTimer.unref();
  const firstReap = reap();

  let idleTimer: NodeJS.Timeout | null = null;
  if (opts.exitWhenIdle) {
    const check = async () => {
      await firstReap; // orphans found at startup are work: do not call the queue idle before
      if (stopping) return;
      const idleNow = async () => busy.size === 0 && (await pendingJobs(queue).catch(() => 1)) === 0 && busy.size === 0;
      if (!(await idleNow())) return;
      // Before leaving, one more look for trials whose jobs were lost since the last pass.
      await reap();
      if (!stopping && (await idleNow())) stop('idle');
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
    clearInterval(reapTimer);
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
      await wandb.close(5_000).catch(() => {});
      await db!.close().catch(() => {});
      resolveDone({ id, reason: stopReason, failed: stopFailed, outcomes });
    })();
  }

  log(`worker ${id}: queue ${prefix}:${name} at ${redactUrl(url)}, concurrency ${concurrency}${opts.maxTrials !== undefined ? `, at most ${opts.maxTrials} trial(s)` : ''}${opts.exitWhenIdle ? ', exits when idle' : ''}`);
  void worker.run().catch((err) => {
    log(`queue worker stopped: ${(err as Error).message}`);
    stopFailed = true;
    stop('error');
  });
  return { id, done, stop };
}
