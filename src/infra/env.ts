/**
 * The environment variables sweep reads, in one place, with their defaults.
 *
 *   DATABASE_URL  Postgres server to use (postgresql://user:pass@host:port/db). Unset: the
 *                 embedded database under $SWEEP_HOME/db, which needs no server.
 *   REDIS_URL     Redis for the job queue. Unset: redis://127.0.0.1:6379, or the private
 *                 redis-server that `sweep launch` started and recorded in $SWEEP_HOME/redis.addr.
 *   SWEEP_HOME    Where local state lives (embedded database, private Redis, address files).
 *                 Unset: `.sweep` in the current directory.
 *
 * Each function takes the environment as an argument (default process.env) so that callers
 * and tests can pass their own without touching the process's.
 */
import path from 'node:path';

export type Env = Record<string, string | undefined>;

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v ? v : undefined;
}

/** Absolute path of the local state directory. */
export function sweepHome(env: Env = process.env): string {
  return path.resolve(nonEmpty(env.SWEEP_HOME) ?? '.sweep');
}

/** The Postgres URL the user chose, or undefined for the embedded database. */
export function databaseUrl(env: Env = process.env): string | undefined {
  return nonEmpty(env.DATABASE_URL);
}

/** The Redis URL the user chose, or undefined when none was given. */
export function redisUrl(env: Env = process.env): string | undefined {
  return nonEmpty(env.REDIS_URL);
}

/** Files under SWEEP_HOME that processes use to find each other. */
export function homePaths(env: Env = process.env) {
  const home = sweepHome(env);
  return {
    home,
    /** PGlite data directory of the embedded database. */
    dbDir: path.join(home, 'db'),
    /** Owner of the embedded database: JSON { pid, url }. */
    dbLock: path.join(home, 'db.lock'),
    /** Data directory of the private redis-server. */
    redisDir: path.join(home, 'redis'),
    /** Address of the private redis-server: JSON { pid, url, port }. */
    redisAddr: path.join(home, 'redis.addr'),
  };
}

/** A URL (Postgres, Redis) with its password removed, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}
