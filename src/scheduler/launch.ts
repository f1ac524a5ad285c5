/**
 * `sweep launch`: sweep file -> Sweep and Trial rows -> one job per queued trial.
 *
 * Order matters for "nothing half-written": the file is loaded, validated and expanded, and
 * its data plan checked, before anything is contacted; Redis and the database are both
 * reached before either is written. The rows are written before the jobs, so a launch that
 * dies in between leaves queued trials without jobs, and the next launch of the same file
 * (which enqueues every queued trial that has no job) completes it. Launching is idempotent:
 * trial ids are content hashes, rows are inserted with skipDuplicates and jobs with the trial
 * id as job id.
 *
 * With local workers (`--workers N`), launch also starts N `sweep worker --exit-when-idle`
 * processes and watches the sweep until every trial has ended (superviseLocalWorkers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { openDatabase, type Database } from '../infra/db.ts';
import { redactUrl, redisUrl, sweepHome, type Env } from '../infra/env.ts';
import { connectRedis, ensureRedis } from '../infra/redis.ts';
import { loadSweepFile } from '../sweep/parse.ts';
import type { SweepSpec } from '../sweep/schema.ts';
import {
  insertTrials,
  queuedTrialIds,
  requeueTrials,
  saveSweep,
  sweepStatus,
  trialRows,
  type SweepStatus,
  type TrialRow,
} from '../track/store.ts';
import { dataPlan, withAbsolutePaths } from '../sweep/data-plan.ts';
import { missingDirs } from '../worker/data.ts';
import { expandSweep } from './expand.ts';
import { enqueueTrials, openTrialQueue, type JobProgress } from '../worker/queue.ts';

export interface LaunchOptions {
  file: string;
  env?: Env;
  /** Also set failed and cancelled trials back to queued. */
  retry?: boolean;
  log?: (msg: string) => void;
}

export interface LaunchResult {
  sweep: { id: string; name: string; created: boolean };
  spec: SweepSpec;
  /** Trials in the sweep file. */
  trials: number;
  /** Of those, how many were not in the database yet. */
  new: number;
  /** ... and how many were (from an earlier launch of the same sweep). */
  existing: number;
  /** Failed or cancelled trials set back to queued (`--retry`). */
  requeued: number;
  /** Trials queued in the database after this launch (new ones and older ones still waiting). */
  queued: number;
  /** Jobs added to the queue by this launch. */
  enqueued: number;
  redis: { url: string; started: boolean };
  database: { kind: string; url: string };
  warnings: string[];
}

export async function launchSweep(opts: LaunchOptions): Promise<LaunchResult> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  // Everything that can be wrong with the file is found before anything is contacted.
  const spec = await loadSweepFile(opts.file, { trainer: true });
  const trials = expandSweep(spec);
  const stored = withAbsolutePaths(spec);
  const plan = dataPlan(stored.train, opts.file);
  const warnings = missingDirs(plan).map((d) => `${d} does not exist on this machine; every worker must see it at this path`);

  const redis = await ensureRedis({ allowStart: !redisUrl(env), env, log });
  const db = await openDatabase({ env, migrate: true, log });
  let connection: Redis | null = null;
  try {
    const sweep = await saveSweep(db.prisma, spec, stored);
    const created = await insertTrials(db.prisma, sweep.id, trials);
    const requeued = opts.retry ? await requeueTrials(db.prisma, sweep.id, ['failed', 'cancelled']) : 0;
    const queued = await queuedTrialIds(db.prisma, sweep.id);
    connection = connectRedis({ url: redis.url });
    const queue = openTrialQueue(connection, env);
    let enqueued: number;
    try {
      enqueued = await enqueueTrials(queue, connection, spec.name, queued);
    } finally {
      await queue.close();
    }
    return {
      sweep,
      spec: stored,
      trials: trials.length,
      new: created,
      existing: trials.length - created,
      requeued,
      queued: queued.length,
      enqueued,
      redis,
      database: { kind: db.kind, url: redactUrl(db.url) },
      warnings,
    };
  } finally {
    await connection?.quit().catch(() => {});
    await db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Local workers

const BIN = fileURLToPath(new URL('../../bin/sweep.mjs', import.meta.url));

export interface LocalWorker {
  index: number;
  pid: number | undefined;
  log: string;
  exit: { code: number | null; signal: string | null } | null;
  /** Asked by the launcher to stop because the sweep was done (its exit is not a failure). */
  stoppedWhenDone: boolean;
}

export interface SweepSnapshot {
  status: SweepStatus;
  trials: TrialRow[];
  /** Progress reported by running trials, by trial id. */
  progress: Map<string, JobProgress>;
  workers: LocalWorker[];
  elapsedMs: number;
}

export interface SuperviseOptions {
  sweepId: string;
  workers: number;
  /** The queue's Redis (LaunchResult.redis.url), handed to the workers as REDIS_URL. */
  redisUrl: string;
  env?: Env;
  /** Passed to each worker as --backend. */
  backend?: string;
  intervalMs?: number;
  onSnapshot?: (s: SweepSnapshot) => void;
  log?: (msg: string) => void;
}

export interface SuperviseResult {
  final: SweepSnapshot;
  /** Stopped by stop() before every trial ended. */
  interrupted: boolean;
}

export interface Supervisor {
  workers: LocalWorker[];
  done: Promise<SuperviseResult>;
  /** Passes the signal on to the workers (a second SIGINT makes them kill their trials). */
  stop(signal: NodeJS.Signals): void;
}

/** Last lines of a file, for showing why a worker died. */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Starts N local workers (each writes its log to <home>/logs/) and reports snapshots of the
 * sweep until every trial has ended or every worker has exited. Once the sweep is done the
 * workers still running (busy with another sweep's trials) are asked to stop; they give
 * those trials back.
 */
export async function superviseLocalWorkers(o: SuperviseOptions): Promise<Supervisor> {
  const env = o.env ?? process.env;
  const log = o.log ?? (() => {});
  const db: Database = await openDatabase({ env });
  const connection = connectRedis({ url: o.redisUrl });
  const queue = openTrialQueue(connection, env);
  const logDir = path.join(sweepHome(env), 'logs');
  mkdirSync(logDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const started = Date.now();

  const children: ChildProcess[] = [];
  const workers: LocalWorker[] = [];
  const exits: Promise<void>[] = [];
  for (let i = 0; i < o.workers; i++) {
    const file = path.join(logDir, `worker-${stamp}-${i + 1}.log`);
    const fd = openSync(file, 'a');
    const args = [BIN, 'worker', '--exit-when-idle', ...(o.backend ? ['--backend', o.backend] : [])];
    // Own process group: a terminal's Ctrl-C reaches launch only, which passes it on once.
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env, REDIS_URL: o.redisUrl } as NodeJS.ProcessEnv, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    const w: LocalWorker = { index: i + 1, pid: child.pid, log: file, exit: null, stoppedWhenDone: false };
    exits.push(new Promise((resolve) => child.once('exit', (code, signal) => ((w.exit = { code, signal }), resolve()))));
    child.on('error', (err) => log(`worker ${i + 1}: ${err.message}`));
    children.push(child);
    workers.push(w);
  }
  log(`started ${o.workers} worker(s); logs in ${logDir}`);

  let stopped = false;
  const allExited = Promise.all(exits);
  const snapshot = async (): Promise<SweepSnapshot> => {
    const [status, trials, active] = await Promise.all([
      sweepStatus(db.prisma, o.sweepId),
      trialRows(db.prisma, o.sweepId),
      queue.getActive().catch(() => []),
    ]);
    const progress = new Map<string, JobProgress>();
    for (const job of active) {
      const p = job?.progress as JobProgress | undefined;
      if (p && typeof p === 'object' && p.trialId) progress.set(p.trialId, p);
    }
    return { status, trials, progress, workers, elapsedMs: Date.now() - started };
  };

  const stop = (signal: NodeJS.Signals) => {
    stopped = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  };

  const done = (async (): Promise<SuperviseResult> => {
    let exitedAll = false;
    void allExited.then(() => (exitedAll = true));
    let last: SweepSnapshot;
    try {
      for (;;) {
        last = await snapshot();
        o.onSnapshot?.(last);
        const c = last.status.counts;
        if (c.queued + c.running === 0 || exitedAll) break;
        await Promise.race([new Promise((r) => setTimeout(r, o.intervalMs ?? 1000)), allExited]);
      }
      // Done: workers that are still up are working for other sweeps; they give that back.
      children.forEach((c, i) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        if (c.kill('SIGTERM')) workers[i].stoppedWhenDone = true;
      });
      await allExited;
      last = await snapshot();
      o.onSnapshot?.(last);
      const c = last.status.counts;
      return { final: last, interrupted: stopped && c.queued + c.running > 0 };
    } finally {
      await queue.close().catch(() => {});
      await connection.quit().catch(() => {});
      await db.close().catch(() => {});
    }
  })();

  return { workers, done, stop };
}
