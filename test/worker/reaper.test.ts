/**
 * Trials that no queue job will deliver (Redis lost its jobs) are found and queued again;
 * a worker started afterwards runs them to the end. Real Redis and Postgres.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/infra/db.ts';
import { connectRedis } from '../../src/infra/redis.ts';
import { launchSweep } from '../../src/scheduler/launch.ts';
import { openTrialQueue } from '../../src/worker/queue.ts';
import { reapOrphans } from '../../src/worker/reaper.ts';
import { runCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';

let t: TestEnv;
let db: Database;

beforeAll(async () => {
  t = await testEnv('reaper');
  db = await t.db();
});
afterAll(async () => {
  await db?.close();
  await t?.cleanup();
});

/** What Redis losing its data looks like to the sweep: every key under the test's prefix gone. */
async function loseRedis(): Promise<void> {
  const keys = await t.redisKeys();
  if (keys.length) await t.redis.del(...keys);
}

describe('orphaned trials', () => {
  it('reapOrphans queues stale running and old queued trials without a job, and nothing else', async () => {
    const launched = await launchSweep({ file: writeFile(t.dir, 'orphans.yaml', tinySweep({ name: 'orphans', dropout: [0.1, 0.2, 0.3, 0.4] })), env: t.env });
    const ids = (await db.prisma.trial.findMany({ where: { sweepId: launched.sweep.id }, orderBy: { index: 'asc' } })).map((r) => r.id);
    await loseRedis();
    const old = new Date(Date.now() - 600_000);
    // 0: running, heartbeat stale (its worker died with Redis' data); 1: running, alive;
    // 2: queued long ago; 3: finished.
    await db.prisma.trial.update({ where: { id: ids[0] }, data: { status: 'running', worker: 'gone:1', heartbeatAt: old } });
    await db.prisma.trial.update({ where: { id: ids[1] }, data: { status: 'running', worker: 'alive:2', heartbeatAt: new Date() } });
    await db.prisma.trial.update({ where: { id: ids[3] }, data: { status: 'finished' } });

    const connection = connectRedis({ url: t.env.REDIS_URL });
    const queue = openTrialQueue(connection, t.env);
    try {
      const r = await reapOrphans(db.prisma, queue, connection, { staleMs: 60_000, minAgeMs: 0 });
      expect(r.requeued).toEqual([ids[0]]);
      expect(r.enqueued).toBe(2);
      expect(await queue.getJobState(ids[0])).toBe('waiting');
      expect(await queue.getJobState(ids[2])).toBe('waiting');
      expect(await queue.getJobState(ids[1])).toBe('unknown');
      expect(await queue.getJobState(ids[3])).toBe('unknown');
      const rows = await db.prisma.trial.findMany({ where: { id: { in: ids } }, orderBy: { index: 'asc' } });
      expect(rows.map((x) => x.status)).toEqual(['queued', 'running', 'queued', 'finished']);
      expect(rows[0].worker).toBeNull();
      // Nothing more to do the second time.
      expect(await reapOrphans(db.prisma, queue, connection, { staleMs: 60_000, minAgeMs: 0 })).toEqual({ requeued: [], enqueued: 0 });
      // A queued trial younger than minAgeMs may still be on its way into the queue: left alone.
      await loseRedis();
      expect((await reapOrphans(db.prisma, queue, connection, { staleMs: 60_000, minAgeMs: 3_600_000 })).enqueued).toBe(0);
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it('a worker started after Redis lost the jobs finds the trials and finishes them', async () => {
    const launched = await launchSweep({ file: writeFile(t.dir, 'lost.yaml', tinySweep({ name: 'lost-jobs', dropout: [0.1, 0.2] })), env: t.env });
    await loseRedis();
    await new Promise((r) => setTimeout(r, 1_200));
    const w = await runCli(['worker', '--exit-when-idle'], { ...t.env, SWEEP_HEARTBEAT_MS: '300', SWEEP_STALE_MS: '1000' });
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr, w.stderr).toMatch(/found \d+ trial\(s\) without a queue job/);
    const rows = await db.prisma.trial.findMany({ where: { sweepId: launched.sweep.id } });
    expect(rows.map((x) => x.status)).toEqual(['finished', 'finished']);
  });
});
