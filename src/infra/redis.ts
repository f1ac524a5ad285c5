/**
 * Redis for the job queue.
 *
 * Which Redis: REDIS_URL when set; otherwise the private redis-server recorded in
 * $SWEEP_HOME/redis.addr, if it is alive; otherwise redis://127.0.0.1:6379.
 *
 * ensureRedis({ allowStart: true }) (what `sweep launch` does) starts a private redis-server
 * when nothing answers and the address is on this machine: on REDIS_URL's port when REDIS_URL
 * names one, else on a free port. It keeps its data in $SWEEP_HOME/redis (append-only file,
 * so queued jobs survive a restart) and is recorded in $SWEEP_HOME/redis.addr, JSON
 * { pid, url, port }, where workers started from the same directory find it. It runs until
 * stopped (stopPrivateRedis, or `redis-cli -p PORT shutdown`).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { firstLine, UserError } from '../util/errors.ts';
import { DEFAULT_REDIS_URL, homePaths, redactUrl, redisUrl, type Env } from './env.ts';
import { hostPort, ServerUnreachable } from './reachability.ts';
import { isAlive, readLock, releaseLock, replaceFile, tryAcquire, type PidFile } from './lockfile.ts';

export interface RedisAddr extends PidFile {
  url: string;
  port: number;
}

export interface RedisConnectOptions {
  /** Overrides REDIS_URL and the recorded address. */
  url?: string;
  env?: Env;
  /** More ioredis options; `maxRetriesPerRequest` stays null unless given. */
  options?: RedisOptions;
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function readAddr(file: string): RedisAddr | null {
  try {
    const addr = JSON.parse(readFileSync(file, 'utf8')) as RedisAddr;
    return typeof addr?.pid === 'number' && typeof addr.url === 'string' ? addr : null;
  } catch {
    return null;
  }
}

/** The Redis URL to use, as described at the top of this file. */
export function resolveRedisUrl(env: Env = process.env): string {
  const explicit = redisUrl(env);
  if (explicit) return explicit;
  const addr = readAddr(homePaths(env).redisAddr);
  if (addr && isAlive(addr.pid)) return addr.url;
  return DEFAULT_REDIS_URL;
}

/**
 * An ioredis connection. `maxRetriesPerRequest: null` makes commands wait through a
 * reconnection instead of failing, which BullMQ requires of the connections it is given.
 */
export function connectRedis(opts: RedisConnectOptions = {}): Redis {
  const url = opts.url ?? resolveRedisUrl(opts.env);
  return new Redis(url, { maxRetriesPerRequest: null, ...opts.options });
}

/** Whether a Redis answers PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1_500): Promise<boolean> {
  return (await redisProblem(url, timeoutMs)) === null;
}

/** Why no Redis answers PING at `url` within `timeoutMs` ("connection refused"), or null when one does. */
export async function redisProblem(url: string, timeoutMs = 1_500): Promise<string | null> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The socket's error comes as an event; connect() then only says "Connection is closed".
  let socketError: unknown;
  client.on('error', (err) => (socketError ??= err));
  try {
    await client.connect();
    const answer = await client.ping();
    return answer === 'PONG' ? null : `PING answered ${JSON.stringify(answer)}`;
  } catch (err) {
    return socketReason(socketError ?? err);
  } finally {
    client.disconnect();
  }
}

/** A socket error in a few words. */
function socketReason(err: unknown): string {
  const code = (err as { code?: string })?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  return firstLine(err) || 'no answer';
}

/** Absolute path of `redis-server` on PATH, or null. */
export function findRedisServer(env: Env = process.env): string | null {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function noRedis(url: string, reason: string, why = ''): ServerUnreachable {
  return new ServerUnreachable(
    'Redis',
    hostPort(url, 6379),
    reason,
    `no Redis answers at ${redactUrl(url)} (${reason})${why}: install it (\`apt-get install redis-server\`), ` +
      'start one with `docker compose up -d redis`, or set REDIS_URL to a running Redis.',
  );
}

export interface EnsureRedisOptions {
  /** Start a private redis-server when none answers (`sweep launch` does; workers do not). */
  allowStart: boolean;
  log?: (msg: string) => void;
  env?: Env;
  /** Address tried when REDIS_URL is unset; for tests. */
  defaultUrl?: string;
}

export interface EnsuredRedis {
  url: string;
  /** True when this call started a private redis-server. */
  started: boolean;
}

/** Find a Redis that answers, starting a private one if allowed and needed. */
export async function ensureRedis(opts: EnsureRedisOptions): Promise<EnsuredRedis> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  const paths = homePaths(env);
  const explicit = redisUrl(env);
  const candidates = explicit
    ? [explicit]
    : [readAddr(paths.redisAddr)?.url, opts.defaultUrl ?? DEFAULT_REDIS_URL].filter((u): u is string => !!u);
  let reason = 'no answer';
  for (const url of candidates) {
    const problem = await redisProblem(url);
    if (problem === null) return { url, started: false };
    reason = problem;
  }
  const target = explicit ?? opts.defaultUrl ?? DEFAULT_REDIS_URL;
  let host: string;
  let port: number | null;
  try {
    const u = new URL(target);
    host = u.hostname;
    port = u.port ? Number(u.port) : 6379;
  } catch {
    throw new UserError(`REDIS_URL is not a URL: ${redactUrl(target)} (expected redis://host:port).`);
  }
  if (!opts.allowStart || !LOCAL_HOSTS.has(host)) throw noRedis(target, reason);
  const binary = findRedisServer(env);
  if (!binary) throw noRedis(target, reason, ', and there is no redis-server on PATH to start a private one');
  // With REDIS_URL set, serve exactly there, so that every process that reads it finds it.
  return startPrivateRedis({ binary, paths, port: explicit ? port : null, log });
}

async function startPrivateRedis(args: {
  binary: string;
  paths: ReturnType<typeof homePaths>;
  port: number | null;
  log: (msg: string) => void;
}): Promise<EnsuredRedis> {
  const { binary, paths, log } = args;
  await mkdir(paths.redisDir, { recursive: true });
  const lock = `${paths.redisAddr}.lock`;
  const deadline = Date.now() + 30_000;
  // One starter at a time; the others wait for its address.
  while (!(await tryAcquire(lock))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for another process to start Redis (${lock})`);
    await sleep(100);
    const addr = readAddr(paths.redisAddr);
    if (addr && isAlive(addr.pid) && (await redisAnswers(addr.url))) return { url: addr.url, started: false };
  }
  try {
    const addr = readAddr(paths.redisAddr);
    if (addr && isAlive(addr.pid) && (await redisAnswers(addr.url))) return { url: addr.url, started: false };
    const port = args.port ?? (await freePort());
    const pidFile = path.join(paths.redisDir, 'redis.pid');
    await unlink(pidFile).catch(() => {});
    const child = spawn(
      binary,
      [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--dir', paths.redisDir,
        '--appendonly', 'yes',
        '--daemonize', 'yes',
        '--pidfile', pidFile,
        '--logfile', path.join(paths.redisDir, 'redis.log'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const url = `redis://127.0.0.1:${port}`;
    while (!(await redisAnswers(url, 500))) {
      if (Date.now() > deadline || code !== 0) {
        throw new Error(
          `redis-server did not start on port ${port} (exit ${code}); see ${path.join(paths.redisDir, 'redis.log')}` +
            (stderr ? `: ${stderr.trim()}` : ''),
        );
      }
      await sleep(100);
    }
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    await replaceFile(paths.redisAddr, JSON.stringify({ pid, url, port } satisfies RedisAddr));
    log(`started a private redis-server at ${url} (data in ${paths.redisDir}; address in ${paths.redisAddr})`);
    return { url, started: true };
  } finally {
    await releaseLock(lock);
  }
}

/** Shut down the private redis-server recorded under SWEEP_HOME, if it runs. */
export async function stopPrivateRedis(env: Env = process.env): Promise<boolean> {
  const paths = homePaths(env);
  const addr = await readLock<RedisAddr>(paths.redisAddr);
  if (!addr || !isAlive(addr.pid)) {
    await unlink(paths.redisAddr).catch(() => {});
    return false;
  }
  const client = new Redis(addr.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.shutdown('SAVE').catch(() => {}); // the connection closes as it shuts down
  } catch {
    process.kill(addr.pid, 'SIGTERM');
  } finally {
    client.disconnect();
  }
  const deadline = Date.now() + 10_000;
  while (isAlive(addr.pid) && Date.now() < deadline) await sleep(50);
  await unlink(paths.redisAddr).catch(() => {});
  return !isAlive(addr.pid);
}
