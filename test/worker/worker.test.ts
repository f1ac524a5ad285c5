/**
 * The worker as a process: stopping it mid-trial gives the trial back, cancelling stops a
 * running trial, bad input fails at once. Real Redis and Postgres; tiny trials.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/infra/redis.ts';
import { launchSweep } from '../../src/scheduler/launch.ts';
import { openTrialQueue, pendingJobs } from '../../src/worker/queue.ts';
import type { Database } from '../../src/infra/db.ts';
import { cancelSweep } from '../../src/track/store.ts';
import { runCli, startCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';
import { waitFor } from '../../support/wait.ts';

let t: TestEnv;
let db: Database;

beforeAll(async () => {
  t = await testEnv('worker');
  db = await t.db();
});
afterAll(async () => {
  await db?.close();
  await t?.cleanup();
});

const EPOCH_KEYS = 9; // loss, char_acc, seq_acc, val_loss, val_char_acc, val_seq_acc, lr, images_per_s, seconds

async function jobState(id: string): Promise<string> {
  const connection = connectRedis({ url: t.env.REDIS_URL });
  const queue = openTrialQueue(connection, t.env);
  try {
    return await queue.getJobState(id);
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

const points = (trialId: string) => db.prisma.metricPoint.findMany({ where: { trialId }, orderBy: [{ phase: 'desc' }, { epoch: 'asc' }, { key: 'asc' }] });

describe('sweep worker', () => {
  it('SIGTERM mid-trial: the epoch is checkpointed, the job goes back, a second worker resumes and finishes it', async () => {
    const file = writeFile(t.dir, 'stop.yaml', tinySweep({ name: 'stop', dropout: [0.1], pretrain: 3, gru: 1 }));
    const launched = await launchSweep({ file, env: t.env });
    const trialId = (await db.prisma.trial.findFirstOrThrow({ where: { sweepId: launched.sweep.id } })).id;

    const first = startCli(['worker'], t.env);
    // Wait for the first epoch's metrics: the trial is then mid-training.
    await waitFor(async () => (await points(trialId)).length >= EPOCH_KEYS, 'the first epoch');
    const running = await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } });
    expect(running.status).toBe('running');
    expect(running.worker).toMatch(/:\d+$/);
    expect(running.heartbeatAt).not.toBeNull();
    first.child.kill('SIGTERM');
    const stopped = await first.result;
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toMatch(/given back to the queue/);

    const given = await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } });
    expect(given).toMatchObject({ status: 'queued', worker: null, attempts: 1 });
    expect(await jobState(trialId)).toBe('waiting');
    const before = await points(trialId);
    expect(before.length % EPOCH_KEYS).toBe(0);
    const epochsBefore = before.length / EPOCH_KEYS;
    expect(epochsBefore).toBeGreaterThanOrEqual(1);
    expect(epochsBefore).toBeLessThan(4);

    const second = await runCli(['worker', '--exit-when-idle'], t.env);
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/resuming from/);
    const done = await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } });
    expect(done).toMatchObject({ status: 'finished', attempts: 2 });
    expect(done.worker).not.toBe(running.worker);

    // Every epoch stored once: 3 pretrain + 1 gru, no duplicates from the replay.
    const after = await points(trialId);
    expect(after).toHaveLength(4 * EPOCH_KEYS);
    const keys = after.map((p) => `${p.phase}/${p.epoch}/${p.key}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect([...new Set(after.map((p) => `${p.phase}/${p.epoch}`))]).toEqual(['pretrain/0', 'pretrain/1', 'pretrain/2', 'gru/0']);
    // Rows stored before the stop are the ones kept.
    for (const p of before) expect(after.find((q) => q.phase === p.phase && q.epoch === p.epoch && q.key === p.key)?.value).toBe(p.value);
  });

  it('sweep cancel stops a running trial after its epoch and leaves it cancelled', async () => {
    const file = writeFile(t.dir, 'cancel.yaml', tinySweep({ name: 'cancel-running', dropout: [0.1], pretrain: 6, gru: 0 }));
    const launched = await launchSweep({ file, env: t.env });
    const trialId = (await db.prisma.trial.findFirstOrThrow({ where: { sweepId: launched.sweep.id } })).id;
    const worker = startCli(['worker', '--exit-when-idle'], t.env);
    await waitFor(async () => (await points(trialId)).length >= EPOCH_KEYS, 'the first epoch');
    // (The CLI's cancel is tested in launch.test.ts; in-process here, so it lands mid-trial.)
    expect(await cancelSweep(db.prisma, launched.sweep)).toMatchObject({ queued: [], running: 1 });
    const w = await worker.result;
    expect(w.code).toBe(0);
    expect(w.stderr).toMatch(/cancelled: stopped after a checkpoint/);
    const trial = await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } });
    expect(trial.status).toBe('cancelled');
    expect(trial.finishedAt).not.toBeNull();
    expect((await points(trialId)).length).toBeLessThan(6 * EPOCH_KEYS);
    const connection = connectRedis({ url: t.env.REDIS_URL });
    const queue = openTrialQueue(connection, t.env);
    expect(await pendingJobs(queue)).toBe(0);
    await queue.close();
    connection.disconnect();
  });

  it('a trial whose data cannot be read fails at once, without retries', async () => {
    const file = writeFile(
      t.dir,
      'nodata.yaml',
      tinySweep({ name: 'missing-data', dropout: [0.1] }).replace(/ {2}generate: .*\n/, '  data: does-not-exist\n'),
    );
    const launched = await launchSweep({ file, env: t.env });
    expect(launched.warnings[0]).toMatch(/does-not-exist does not exist on this machine/);
    const w = await runCli(['worker', '--exit-when-idle'], t.env);
    expect(w.code).toBe(0);
    const trial = await db.prisma.trial.findFirstOrThrow({ where: { sweepId: launched.sweep.id } });
    expect(trial).toMatchObject({ status: 'failed', attempts: 1 });
    expect(trial.error).toMatch(/does-not-exist cannot be read/);
  });
});
