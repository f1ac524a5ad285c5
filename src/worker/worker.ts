/**
 * The worker: takes trial jobs from the queue, runs each in a trial process (runner.ts), and
 * records what happens in the database (see the ownership contract in track/store.ts). This
 * file is the loop (the queue worker, claiming, stopping, counting); one attempt at a trial
 * is attempt.ts, and what its end comes to, outcome.ts.
 *
 * Why a child process per slot: training holds a core for minutes to hours. In the worker's
 * own event loop it would stop BullMQ from renewing the job's lock, and the job would be
 * declared stalled and handed to another worker while this one still trained it. Here the
 * worker's loop only waits on messages, so the lock is renewed every LOCK_MS / 2, the
 * heartbeat is written every HEARTBEAT_MS, and the stalled-job check (every STALLED_MS) only
 * ever re-delivers the jobs of workers that are gone.
 *
 * Failure policy (decided in outcome.ts):
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
import { DelayedError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { openDatabase, type Database } from '../infra/db.ts';
import { redactUrl, type Env } from '../infra/env.ts';
import { connectRedis, ensureRedis } from '../infra/redis.ts';
import { openTrialQueue, pendingJobs, queueName, type TrialJobData } from './queue.ts';
import type { BackendChoice } from '../train/backend.ts';
import { failAbandoned } from '../track/store.ts';
import { openWandbMirror, type WandbMirror } from '../track/wandb/index.ts';
import { claimAttempt, runAttempt, type AttemptContext, type TrialTiming } from './attempt.ts';
import type { TrialOutcome } from './outcome.ts';
import type { TrainerKind } from './protocol.ts';
import { TrialProcess } from './trial-process.ts';
import { reapOrphans } from './reaper.ts';
import { untilReachable } from './connect.ts';
import { isConnectionError, maxConsecutiveFailures, persistently, shortError, workerTimings, type WorkerTimings } from './policy.ts';

export type { TrialTiming } from './attempt.ts';
export type { TrialOutcome } from './outcome.ts';

/** A job re-delivered after a stall more often than this fails (a trial that kills its worker). */
export const MAX_STALLED = 2;

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

  // Started before its servers (or while one restarts): wait for them, saying so (connect.ts).
  const wait = { limitMs: timings.connectWaitMs, since: Date.now(), log };
  const { url } = await untilReachable(() => ensureRedis({ allowStart: false, env }), wait);
  let db: Database | null = null;
  let connection: Redis | null = null;
  let wandb: WandbMirror;
  try {
    db = await untilReachable(() => openDatabase({ env, migrate: true }), wait);
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

  const attempt: AttemptContext = {
    id,
    prisma,
    wandb,
    env,
    timings,
    trainer,
    backend: opts.backend,
    busyRetryMs,
    stopping: () => stopping,
    forced: () => forced,
    say,
    persist,
    onOutage,
    acquire,
    release,
    count,
    checkFailures,
    report: (t) => opts.onTrial?.(t),
    unanswered: new Map(),
  };

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
    const claim = await claimAttempt(attempt, job, token);
    if ('ended' in claim) return { status: claim.ended };
    claimed++;
    running.add(trialId);
    try {
      const t = await runAttempt(attempt, job, token, claim.trial, pickedAt);
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
