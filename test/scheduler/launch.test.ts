import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/infra/redis.ts';
import { launchSweep } from '../../src/scheduler/launch.ts';
import { openTrialQueue } from '../../src/worker/queue.ts';
import { SweepFileError } from '../../src/sweep/index.ts';
import { UserError } from '../../src/util/errors.ts';
import { runCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';

let t: TestEnv;

beforeAll(async () => {
  t = await testEnv('launch');
});
afterAll(async () => {
  await t?.cleanup();
});

/** Tables in the test database (none until something was migrated or written). */
async function tables(): Promise<string[]> {
  const c = new pg.Client({ connectionString: t.env.DATABASE_URL });
  await c.connect();
  const r = await c.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
  await c.end();
  return r.rows.map((row) => row.tablename as string);
}

async function waitingJobs(): Promise<string[]> {
  const connection = connectRedis({ url: t.env.REDIS_URL });
  const queue = openTrialQueue(connection, t.env);
  try {
    return (await queue.getJobs(['waiting', 'prioritized', 'delayed', 'active'])).map((j) => j.id!).sort();
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

describe('sweep launch', () => {
  it('rejects a bad sweep file before writing anything to Redis, the database or SWEEP_HOME', async () => {
    const bad = writeFile(t.dir, 'bad.yaml', tinySweep({ name: 'bad', dropout: [0.1, 1.5] }));
    const err = await launchSweep({ file: bad, env: t.env }).catch((e) => e);
    expect(err).toBeInstanceOf(SweepFileError);
    expect((err as SweepFileError).problems[0].path).toBe('parameters.dropout.values[1]');

    // The CLI: exit 2 and the located problem on stderr.
    const run = await runCli(['launch', bad], t.env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/bad\.yaml:\d+:\d+: parameters\.dropout\.values\[1\]/);

    // A sweep without data is refused the same way.
    const noData = writeFile(t.dir, 'nodata.yaml', tinySweep({ name: 'nodata' }).replace(/ {2}generate: .*\n/, ''));
    const err2 = await launchSweep({ file: noData, env: t.env }).catch((e) => e);
    expect(err2).toBeInstanceOf(UserError);
    expect((err2 as Error).message).toMatch(/train\.data .* or train\.generate/);

    expect(await t.redisKeys()).toEqual([]);
    expect(await tables()).toEqual([]); // not even migrated
    expect(existsSync(t.home)).toBe(false);
  });

  it('is idempotent, and adding a grid value enqueues only the new trials', async () => {
    const file = writeFile(t.dir, 'grid.yaml', tinySweep({ name: 'grid', dropout: [0.1, 0.2] }));
    const first = await launchSweep({ file, env: t.env });
    expect(first).toMatchObject({ trials: 2, new: 2, existing: 0, enqueued: 2, queued: 2 });
    expect(first.sweep.created).toBe(true);
    const jobs1 = await waitingJobs();
    expect(jobs1).toHaveLength(2);

    const again = await launchSweep({ file, env: t.env });
    expect(again).toMatchObject({ trials: 2, new: 0, existing: 2, enqueued: 0, queued: 2 });
    expect(again.sweep).toEqual({ ...first.sweep, created: false });
    expect(await waitingJobs()).toEqual(jobs1);

    // One more dropout value: one new trial, one new job; the other two keep theirs.
    writeFile(t.dir, 'grid.yaml', tinySweep({ name: 'grid', dropout: [0.1, 0.2, 0.3] }));
    const grown = await launchSweep({ file, env: t.env });
    expect(grown).toMatchObject({ trials: 3, new: 1, existing: 2, enqueued: 1, queued: 3 });
    const jobs3 = await waitingJobs();
    expect(jobs3).toHaveLength(3);
    expect(jobs3.filter((id) => !jobs1.includes(id))).toHaveLength(1);

    // Jobs carry ids only; job id = trial id = database key.
    const db = await t.db();
    try {
      const rows = await db.prisma.trial.findMany({ where: { sweepId: first.sweep.id }, orderBy: { index: 'asc' } });
      expect(rows.map((r) => r.id).sort()).toEqual(jobs3);
      expect(rows.every((r) => r.status === 'queued' && r.attempts === 0)).toBe(true);
      const connection = connectRedis({ url: t.env.REDIS_URL });
      const queue = openTrialQueue(connection, t.env);
      const job = await queue.getJob(rows[2].id);
      expect(job?.data).toEqual({ trialId: rows[2].id });
      expect(job?.opts.attempts).toBeGreaterThan(1);
      await queue.close();
      connection.disconnect();
      const sweep = await db.prisma.sweep.findUniqueOrThrow({ where: { id: first.sweep.id } });
      expect(sweep).toMatchObject({ name: 'grid', method: 'grid', metricName: 'val_seq_acc', metricGoal: 'maximize' });
    } finally {
      await db.close();
    }

    // The CLI says the same in JSON.
    const run = await runCli(['launch', file, '--json'], t.env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ trials: 3, new: 0, existing: 3, enqueued: 0 });
  });

  it('sweep cancel: queued trials are cancelled and their jobs removed', async () => {
    const file = writeFile(t.dir, 'cancel.yaml', tinySweep({ name: 'tocancel', dropout: [0.1, 0.2] }));
    const r = await launchSweep({ file, env: t.env });
    const before = (await waitingJobs()).length;
    const run = await runCli(['cancel', 'tocancel', '--json'], t.env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ queued: 2, running: 0, jobsRemoved: 2 });
    expect(await waitingJobs()).toHaveLength(before - 2);
    const status = await runCli(['status', 'tocancel', '--json'], t.env);
    const s = JSON.parse(status.stdout).sweeps[0];
    expect(s).toMatchObject({ id: r.sweep.id, name: 'tocancel', best: null });
    expect(s.counts).toEqual({ queued: 0, running: 0, finished: 0, failed: 0, diverged: 0, stopped: 0, cancelled: 2 });

    // Launching again does not bring cancelled trials back; --retry does.
    expect(await launchSweep({ file, env: t.env })).toMatchObject({ new: 0, queued: 0, enqueued: 0 });
    expect(await launchSweep({ file, env: t.env, retry: true })).toMatchObject({ requeued: 2, queued: 2, enqueued: 2 });
  });
});
