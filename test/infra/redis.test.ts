import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../src/infra/env.ts';
import { isAlive } from '../../src/infra/lockfile.ts';
import {
  connectRedis,
  ensureRedis,
  redisAnswers,
  resolveRedisUrl,
  stopPrivateRedis,
  type RedisAddr,
} from '../../src/infra/redis.ts';
import { UserError } from '../../src/util/errors.ts';

/** A port on which nothing listens (just released by the OS). */
async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

describe('Redis', () => {
  let home: string;
  let env: Record<string, string | undefined>;
  let url: string;

  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sweep-redis-'));
    url = `redis://127.0.0.1:${await closedPort()}`;
    env = { PATH: process.env.PATH, SWEEP_HOME: home, REDIS_URL: url };
  });
  afterAll(async () => {
    if (!home) return;
    await stopPrivateRedis(env);
    await rm(home, { recursive: true, force: true });
  });

  it('without permission to start one, says how to get Redis', async () => {
    const err = await ensureRedis({ allowStart: false, env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain(url);
    expect((err as Error).message).toMatch(/apt-get install redis-server/);
    expect((err as Error).message).toMatch(/docker compose up -d redis/);
  });

  it('without redis-server on PATH, says how to get it', async () => {
    const err = await ensureRedis({ allowStart: true, env: { ...env, PATH: '/nonexistent' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/redis-server/);
    expect((err as Error).message).toMatch(/apt-get install redis-server/);
  });

  it('starts a private redis-server where REDIS_URL points, records it, and reuses it', async () => {
    const lines: string[] = [];
    const first = await ensureRedis({ allowStart: true, env, log: (m) => lines.push(m) });
    expect(first).toEqual({ url, started: true });
    expect(lines.join('\n')).toMatch(/started a private redis-server/);
    expect(await redisAnswers(url)).toBe(true);

    const paths = homePaths(env);
    const addr = JSON.parse(await readFile(paths.redisAddr, 'utf8')) as RedisAddr;
    expect(addr.url).toBe(url);
    expect(isAlive(addr.pid)).toBe(true);

    expect(await ensureRedis({ allowStart: true, env })).toEqual({ url, started: false });
    // Without REDIS_URL, processes started from the same SWEEP_HOME find it through the file.
    expect(resolveRedisUrl({ SWEEP_HOME: home })).toBe(url);

    const redis = connectRedis({ env });
    try {
      expect(redis.options.maxRetriesPerRequest).toBeNull();
      await redis.set('sweep:test', '1');
      expect(await redis.get('sweep:test')).toBe('1');
      const info = await redis.config('GET', 'appendonly');
      expect(info).toEqual(['appendonly', 'yes']);
      const dir = (await redis.config('GET', 'dir')) as string[];
      expect(dir[1]).toBe(paths.redisDir);
    } finally {
      redis.disconnect();
    }
  });

  it('serves BullMQ through connectRedis connections', async () => {
    const connection = connectRedis({ env });
    const queue = new Queue('sweep-test', { connection });
    const events = new QueueEvents('sweep-test', { connection: connectRedis({ env }) });
    const worker = new Worker('sweep-test', async (job) => ({ doubled: (job.data as { n: number }).n * 2 }), {
      connection: connectRedis({ env }),
    });
    try {
      await events.waitUntilReady();
      const job = await queue.add('double', { n: 21 }, { jobId: 'trial-hash-1' });
      expect(job.id).toBe('trial-hash-1');
      expect(await job.waitUntilFinished(events, 30_000)).toEqual({ doubled: 42 });
      // The same job id again is the same job: adding twice does not run twice.
      const again = await queue.add('double', { n: 21 }, { jobId: 'trial-hash-1' });
      expect(again.id).toBe('trial-hash-1');
      expect(await queue.getJobCounts('completed', 'waiting')).toEqual({ completed: 1, waiting: 0 });
    } finally {
      await worker.close();
      await events.close();
      await queue.obliterate({ force: true });
      await queue.close();
      connection.disconnect();
    }
  });

  it('starts on a free port when REDIS_URL is unset and nothing answers at the default', async () => {
    const home2 = await mkdtemp(path.join(os.tmpdir(), 'sweep-redis-'));
    const env2 = { PATH: process.env.PATH, SWEEP_HOME: home2 };
    try {
      const defaultUrl = `redis://127.0.0.1:${await closedPort()}`;
      const got = await ensureRedis({ allowStart: true, env: env2, defaultUrl });
      expect(got.started).toBe(true);
      expect(got.url).not.toBe(defaultUrl);
      expect(resolveRedisUrl(env2)).toBe(got.url);
      expect(await redisAnswers(got.url)).toBe(true);
      expect(await stopPrivateRedis(env2)).toBe(true);
      expect(await redisAnswers(got.url, 300)).toBe(false);
    } finally {
      await stopPrivateRedis(env2);
      await rm(home2, { recursive: true, force: true });
    }
  });
});
