/**
 * The worker's timings and failure rules, with their environment overrides, in one place.
 *
 *   SWEEP_HEARTBEAT_MS   how often a running trial's owner writes heartbeatAt     (10 s)
 *   SWEEP_STALE_MS       a heartbeat older than this means the owner is gone     (90 s)
 *   SWEEP_LOCK_MS        a job's queue lock; renewed at half of it while alive    (60 s)
 *   SWEEP_DB_OUTAGE_MS   how long a worker keeps trying to reach the database
 *                        before it gives a trial up (training goes on meanwhile) (10 min)
 *   SWEEP_CONNECT_WAIT_S how long a starting worker waits for Postgres and Redis
 *                        to answer before it exits, saying which did not      (300 s)
 *   SWEEP_MAX_CONSECUTIVE_FAILURES
 *                        a worker whose trials fail this many times in a row stops
 *                        taking work (a broken machine must not burn the sweep)   (5)
 *
 * The shorter values are for tests and fault drills; the defaults suit runs of hours.
 */
import { databaseErrorReason } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import { isConnectionError } from '../infra/reachability.ts';
import { UserError } from '../util/errors.ts';

export { isConnectionError };

export interface WorkerTimings {
  heartbeatMs: number;
  staleMs: number;
  lockMs: number;
  /** How often the queue looks for jobs whose lock expired (their worker died). */
  stalledMs: number;
  dbOutageMs: number;
  /** How long a starting worker waits for Postgres and Redis (0: not at all). */
  connectWaitMs: number;
}

export const DEFAULT_TIMINGS: WorkerTimings = {
  heartbeatMs: 10_000,
  staleMs: 90_000,
  lockMs: 60_000,
  stalledMs: 60_000,
  dbOutageMs: 600_000,
  connectWaitMs: 300_000,
};

export const DEFAULT_MAX_CONSECUTIVE_FAILURES = 5;

function positiveInt(env: Env, name: string, fallback: number, min = 1): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new UserError(`${name} must be a whole number >= ${min}, got ${JSON.stringify(raw)}`);
  return v;
}

export function workerTimings(env: Env = process.env): WorkerTimings {
  const heartbeatMs = positiveInt(env, 'SWEEP_HEARTBEAT_MS', DEFAULT_TIMINGS.heartbeatMs);
  const staleMs = positiveInt(env, 'SWEEP_STALE_MS', DEFAULT_TIMINGS.staleMs);
  const lockMs = positiveInt(env, 'SWEEP_LOCK_MS', DEFAULT_TIMINGS.lockMs);
  const dbOutageMs = positiveInt(env, 'SWEEP_DB_OUTAGE_MS', DEFAULT_TIMINGS.dbOutageMs);
  const connectWaitMs = positiveInt(env, 'SWEEP_CONNECT_WAIT_S', DEFAULT_TIMINGS.connectWaitMs / 1000, 0) * 1000;
  if (staleMs <= 2 * heartbeatMs) {
    throw new UserError(`SWEEP_STALE_MS (${staleMs}) must be more than twice SWEEP_HEARTBEAT_MS (${heartbeatMs}), or live workers would look dead`);
  }
  return { heartbeatMs, staleMs, lockMs, stalledMs: lockMs, dbOutageMs, connectWaitMs };
}

export function maxConsecutiveFailures(env: Env = process.env, given?: number): number {
  if (given !== undefined) {
    if (!Number.isInteger(given) || given < 1) throw new UserError(`--max-consecutive-failures must be a whole number >= 1, got ${given}`);
    return given;
  }
  return positiveInt(env, 'SWEEP_MAX_CONSECUTIVE_FAILURES', DEFAULT_MAX_CONSECUTIVE_FAILURES);
}

/** One line of a (Prisma) error, for logs: the database's own message. */
export const shortError = databaseErrorReason;

/** Backoff for the n-th retry (0-based): 1 s, 2 s, 4 s ... capped, with ±20% jitter. */
export function backoffMs(n: number, baseMs = 1_000, capMs = 15_000): number {
  const d = Math.min(capMs, baseMs * 2 ** Math.min(n, 20));
  return Math.round(d * (0.8 + 0.4 * Math.random()));
}

export class DatabaseUnreachable extends Error {
  constructor(what: string, ms: number, cause: unknown) {
    super(`the database stayed unreachable for ${Math.round(ms / 1000)} s while ${what}: ${(cause as Error)?.message ?? cause}`, { cause });
    this.name = 'DatabaseUnreachable';
  }
}

/**
 * Runs a database write until it succeeds, waiting out connection errors for up to
 * `outageMs` (other errors are thrown at once). `onOutage` is told when the first attempt
 * fails and when one succeeds after that.
 */
export async function persistently<T>(
  what: string,
  write: () => Promise<T>,
  opts: { outageMs: number; onOutage?: (state: 'down' | 'up', err?: unknown) => void; signal?: AbortSignal },
): Promise<T> {
  const start = Date.now();
  for (let n = 0; ; n++) {
    try {
      const v = await write();
      if (n > 0) opts.onOutage?.('up');
      return v;
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      if (n === 0) opts.onOutage?.('down', err);
      const waited = Date.now() - start;
      if (waited >= opts.outageMs || opts.signal?.aborted) throw new DatabaseUnreachable(what, waited, err);
      await new Promise((r) => setTimeout(r, Math.min(backoffMs(n), opts.outageMs - waited + 10)));
    }
  }
}
