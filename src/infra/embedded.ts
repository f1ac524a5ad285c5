/**
 * The embedded database: Postgres compiled to WebAssembly (PGlite), kept under
 * $SWEEP_HOME/db, so that `sweep launch` and local workers need no database server.
 *
 * CONTRACT
 * - PGlite lives inside one process, the SERVER: a small detached process (embedded-server.ts)
 *   that serves it over the Postgres wire protocol on a unix socket,
 *   `<socketDir>/.s.PGSQL.5432`. Every sweep process is a client and talks to it with the
 *   ordinary Postgres driver. The socket's path depends only on SWEEP_HOME.
 *   The server is a process of its own, rather than whichever command came first, so that
 *   `sweep launch` can exit while workers go on writing.
 * - Ownership is the file $SWEEP_HOME/db.lock, JSON { pid, url, applied }. It is created
 *   atomically (link of a complete file, which fails if one exists), so there is never a
 *   half-written lock. `url` is null while the server starts and migrates; once it is set, the
 *   database is ready and migrated (`applied` names what that start applied).
 * - A lock whose pid is not alive is stale. Whoever finds one removes it under a short-lived
 *   guard file (db.lock.steal), re-reading it under the guard, so two processes never both
 *   remove a lock and both become owners.
 * - A client that finds no live server starts one (several may try; one wins the lock, the
 *   others exit) and waits for `url`. Clients check again before every new connection, so
 *   when the server has died (killed, crashed, machine slept) the next query starts a new one
 *   on the same data directory and socket. Queries in flight when a server dies fail.
 * - The server exits by itself after IDLE_EXIT_MS without connections (clients start it again
 *   when they need it), on SIGTERM/SIGINT, or through stopEmbedded(). Its log is
 *   $SWEEP_HOME/db.log.
 * - All connections share PGlite's single session. A connection keeps the database for a
 *   whole protocol exchange and a whole transaction (pglite-server.ts), so transactions are
 *   serialized: keep them short, and never wait inside one on a query made outside it.
 *   Session-level state (advisory locks, LISTEN, temporary tables, SET) is shared by everyone
 *   and not to be relied on.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { homePaths, type Env } from './env.ts';
import { isAlive, readLock, releaseLock, replaceFile } from './lockfile.ts';
import { migrate } from './migrate.ts';
import { PGliteWireServer } from './pglite-server.ts';
import { nodeScript } from '../util/node-script.ts';

const SOCKET_PORT = 5432;
/** Longest unix socket path Linux accepts (sun_path is 108 bytes, NUL included). */
const MAX_SOCKET_PATH = 107;
/** The server exits after this long without any connection. */
export const IDLE_EXIT_MS = 15 * 60_000;
const SERVER = nodeScript(import.meta.url, './embedded-server');

export interface LockInfo {
  pid: number;
  url: string | null;
  /** Migrations the server applied when it started. */
  applied?: string[];
}

export interface EmbeddedPaths {
  home: string;
  dataDir: string;
  lock: string;
  log: string;
  socketDir: string;
}

export function embeddedPaths(env: Env = process.env): EmbeddedPaths {
  const p = homePaths(env);
  let socketDir = path.join(p.home, 'run');
  if (path.join(socketDir, `.s.PGSQL.${SOCKET_PORT}`).length > MAX_SOCKET_PATH) {
    // Deep working directories do not fit in a socket address: use a short directory keyed
    // by the home's path, which every process computes alike.
    const key = createHash('sha256').update(p.home).digest('hex').slice(0, 16);
    socketDir = path.join(os.tmpdir(), `sweep-${key}`);
  }
  return { home: p.home, dataDir: p.dbDir, lock: p.dbLock, log: path.join(p.home, 'db.log'), socketDir };
}

/** Connection string for the embedded database's socket. */
export function embeddedUrl(socketDir: string): string {
  return `postgresql://postgres@localhost/postgres?host=${encodeURIComponent(socketDir)}`;
}

/** Driver settings for the embedded database (pg.Pool config). */
export function embeddedPoolConfig(socketDir: string) {
  // A handful per process: PGlite runs one statement at a time whatever the count.
  return { host: socketDir, port: SOCKET_PORT, user: 'postgres', database: 'postgres', max: 4 };
}

export interface EmbeddedServer {
  url: string;
  applied: string[];
  /** Connections open now. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * Serve the data directory on the socket, in this process. The caller must hold the lock.
 * Applies pending migrations, then publishes the url in the lock file.
 */
export async function serveEmbedded(
  paths: EmbeddedPaths,
  log: (msg: string) => void = () => {},
): Promise<EmbeddedServer> {
  const [{ PGlite }, { PrismaPg }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@prisma/adapter-pg'),
  ]);
  await mkdir(paths.dataDir, { recursive: true });
  await mkdir(paths.socketDir, { recursive: true, mode: 0o700 });
  const socketPath = path.join(paths.socketDir, `.s.PGSQL.${SOCKET_PORT}`);
  let db: PGlite | null = null;
  let server: PGliteWireServer | null = null;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server?.close();
    await db?.close();
    if ((await readLock(paths.lock))?.pid === process.pid) {
      await rm(socketPath, { force: true });
      await releaseLock(paths.lock);
    }
  };
  try {
    const fresh = !existsSync(path.join(paths.dataDir, 'PG_VERSION'));
    db = await PGlite.create(paths.dataDir);
    // Left by a server that died; ours now, since we hold the lock.
    await rm(socketPath, { force: true });
    server = new PGliteWireServer(db);
    await server.listen(socketPath);
    log(`${fresh ? 'created' : 'opened'} ${paths.dataDir}, serving on ${socketPath}`);
    const { applied } = await migrate(new PrismaPg(embeddedPoolConfig(paths.socketDir)), { lock: false });
    if (applied.length) log(`applied migrations: ${applied.join(', ')}`);
    const url = embeddedUrl(paths.socketDir);
    await replaceFile(paths.lock, JSON.stringify({ pid: process.pid, url, applied } satisfies LockInfo));
    const srv = server;
    return { url, applied, connections: () => srv.connectionCount, close };
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}

/**
 * Start a server process for `paths` (it exits at once, with 0, if another holds the lock).
 * Returns a promise of its exit code, settled only if it exits while this process runs.
 */
function spawnServer(paths: EmbeddedPaths): Promise<number | null> {
  const logFd = openSync(paths.log, 'a');
  try {
    const child = spawn(
      process.execPath,
      [...SERVER.execArgv, SERVER.file, paths.home],
      { detached: true, stdio: ['ignore', logFd, logFd], cwd: paths.home, env: process.env },
    );
    child.unref();
    return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  } finally {
    closeSync(logFd);
  }
}

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Make sure a server is serving `paths`, starting one if none is, and return its lock.
 * Throws with the end of the server's log when none gets ready within `timeoutMs`.
 */
export async function ensureEmbeddedServer(
  paths: EmbeddedPaths,
  timeoutMs = 120_000,
  log: (msg: string) => void = () => {},
): Promise<LockInfo> {
  const deadline = Date.now() + timeoutMs;
  let spawnedAt = 0;
  let failed: number | null = null;
  const fail = (why: string) =>
    new Error(`the embedded database in ${paths.dataDir} ${why}; its log (${paths.log}) ends with:\n${logTail(paths.log)}`);
  for (;;) {
    if (failed !== null) throw fail(`could not start (its server exited with code ${failed})`);
    const held = await readLock<LockInfo>(paths.lock);
    const alive = held !== null && isAlive(held.pid);
    if (alive && held.url) return held;
    if (!alive && !existsSync(paths.lock + '.steal') && Date.now() - spawnedAt > 5_000) {
      // Nobody serves (or a starting server died): start one. A server that loses the race
      // for the lock exits quietly.
      await mkdir(paths.home, { recursive: true });
      if (!spawnedAt) log(`starting the embedded database in ${paths.dataDir} (log: ${paths.log})`);
      void spawnServer(paths).then((code) => {
        if (code !== 0 && code !== null) failed = code;
      });
      spawnedAt = Date.now();
    }
    if (Date.now() > deadline) throw fail(`did not start within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(100);
  }
}

export interface EmbeddedOptions {
  env?: Env;
  log?: (msg: string) => void;
  /** How long to wait for the server to be ready (default 120 s; creating takes a while). */
  timeoutMs?: number;
}

export interface EmbeddedHandle {
  url: string;
  paths: EmbeddedPaths;
  /** Migrations the server applied when it started, if this call started it. */
  applied: string[];
  /** pg.Pool settings whose connections start the server again if it has gone. */
  poolConfig: pg.PoolConfig;
}

/** Join the embedded database, starting its server if needed. */
export async function openEmbedded(opts: EmbeddedOptions = {}): Promise<EmbeddedHandle> {
  const paths = embeddedPaths(opts.env);
  const before = await readLock<LockInfo>(paths.lock);
  const lock = await ensureEmbeddedServer(paths, opts.timeoutMs, opts.log);
  const startedNow = before === null || before.pid !== lock.pid;
  const timeoutMs = opts.timeoutMs;
  // A connection first makes sure a server is up, so that one that died is started again.
  class EmbeddedClient extends pg.Client {}
  const connect = pg.Client.prototype.connect as (this: pg.Client) => Promise<pg.Client>;
  EmbeddedClient.prototype.connect = function (this: pg.Client, callback?: (err: Error) => void) {
    const ready = ensureEmbeddedServer(paths, timeoutMs).then(() => connect.call(this));
    if (!callback) return ready;
    ready.then(() => callback(undefined as unknown as Error), callback);
  } as typeof pg.Client.prototype.connect;
  return {
    url: lock.url!,
    paths,
    applied: startedNow ? (lock.applied ?? []) : [],
    poolConfig: { ...embeddedPoolConfig(paths.socketDir), Client: EmbeddedClient },
  };
}

/** Stop the server for this SWEEP_HOME, if one runs, and wait for it to exit. */
export async function stopEmbedded(env: Env = process.env, timeoutMs = 30_000): Promise<boolean> {
  const paths = embeddedPaths(env);
  const held = await readLock(paths.lock);
  if (!held || !isAlive(held.pid)) return false;
  process.kill(held.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(held.pid)) {
    if (Date.now() > deadline) {
      process.kill(held.pid, 'SIGKILL');
      break;
    }
    await sleep(50);
  }
  return true;
}
