/**
 * Real Postgres and Redis for tests, kept apart from everything else: a database per test
 * file, a Redis key prefix per test file, a temporary SWEEP_HOME. Both are removed afterwards.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/infra/db.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = path.join(ROOT, 'bin', 'sweep.mjs');
const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestEnv {
  env: Record<string, string>;
  home: string;
  dir: string;
  prefix: string;
  /** Opens (and migrates) the test database. */
  db(): Promise<Database>;
  redis: Redis;
  /** Keys under the test's queue prefix. */
  redisKeys(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export async function testEnv(label: string): Promise<TestEnv> {
  const id = `${label}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const dbName = `sweep_test_${id}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const dir = mkdtempSync(path.join(tmpdir(), `sweep-${label}-`));
  const home = path.join(dir, 'home');
  const prefix = `sweep-test-${id}`;
  const env = {
    DATABASE_URL: url.toString(),
    REDIS_URL,
    SWEEP_HOME: home,
    SWEEP_QUEUE_PREFIX: prefix,
    SWEEP_QUEUE: 'trials',
  };
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const redisKeys = async () => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return keys;
  };
  return {
    env,
    home,
    dir,
    prefix,
    redis,
    redisKeys,
    db: () => openDatabase({ env, migrate: true }),
    async cleanup() {
      const keys = await redisKeys();
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      const a = new pg.Client({ connectionString: ADMIN_URL });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
      await a.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

export interface CliRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/sweep.mjs ...args` with the test's environment. */
export function runCli(args: string[], env: Record<string, string>, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const child = startCli(args, env, opts);
  return child.result;
}

export function startCli(args: string[], env: Record<string, string>, opts: { cwd?: string; timeoutMs?: number } = {}) {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, CI: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 240_000);
  const result = new Promise<CliRun>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, result, stderr: () => stderr, stdout: () => stdout };
}
