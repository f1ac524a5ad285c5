/**
 * Faults a sweep must survive, with real processes: a worker killed with SIGKILL mid-epoch,
 * Postgres unreachable while a trial trains, Redis restarted mid-sweep, a worker whose trials
 * keep failing. Each ends with every trial in its right state and exactly one metric point
 * per (trial, phase, epoch, key).
 *
 * The worker's timings are shortened through its environment (worker/policy.ts) so that
 * a dead worker is noticed in seconds rather than minutes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/infra/db.ts';
import { connectRedis } from '../../src/infra/redis.ts';
import { launchSweep } from '../../src/scheduler/launch.ts';
import { openTrialQueue } from '../../src/worker/queue.ts';
import { epochRows } from '../../src/track/metrics.ts';
import type { EpochMetrics } from '../../src/train/trainer.ts';
import { trialDir } from '../../src/infra/artifacts.ts';
import { runCli, startCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';
import { waitFor } from '../../support/wait.ts';
import { freePort, portOpen } from '../../support/ports.ts';
import { startTcpProxy } from '../infra/tcp-proxy.ts';

let t: TestEnv;
let db: Database;

const FAST = { SWEEP_HEARTBEAT_MS: '1000', SWEEP_STALE_MS: '5000', SWEEP_LOCK_MS: '4000' };

beforeAll(async () => {
  t = await testEnv('faults');
  db = await t.db();
});
afterAll(async () => {
  await db?.close();
  await t?.cleanup();
});

const points = (trialId: string) => db.prisma.metricPoint.findMany({ where: { trialId } });

/** Every epoch of the trial's history.json is stored, each key exactly once, nothing else. */
async function expectEveryEpochOnce(trialId: string, env: Record<string, string>): Promise<number> {
  const history = JSON.parse(readFileSync(path.join(trialDir(trialId, env), 'history.json'), 'utf8')) as EpochMetrics[];
  const expected = new Map(history.flatMap((m) => epochRows(trialId, m)).map((r) => [`${r.phase}/${r.epoch}/${r.key}`, r.value]));
  const rows = await points(trialId);
  const stored = new Map(rows.map((p) => [`${p.phase}/${p.epoch}/${p.key}`, p.value]));
  expect(stored.size).toBe(rows.length);
  // The same points with the same values: nothing lost, nothing from another run of an epoch.
  expect(stored).toEqual(expected);
  return rows.length;
}

async function oneTrial(name: string, yaml: string, env = t.env): Promise<string> {
  const file = writeFile(t.dir, `${name}.yaml`, yaml);
  const launched = await launchSweep({ file, env });
  return (await db.prisma.trial.findFirstOrThrow({ where: { sweepId: launched.sweep.id } })).id;
}

describe('faults', () => {
  it('kill -9 of a worker mid-trial: another worker resumes it from the last checkpoint and finishes it', async () => {
    const trialId = await oneTrial('killed', tinySweep({ name: 'killed', dropout: [0.1], pretrain: 4, gru: 1 }));
    const env = { ...t.env, ...FAST };
    const first = startCli(['worker'], env);
    await waitFor(async () => (await points(trialId)).length > 0, 'the first epoch');
    first.child.kill('SIGKILL');
    expect((await first.result).signal).toBe('SIGKILL');
    const orphan = await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } });
    expect(orphan.status).toBe('running');

    const second = await runCli(['worker', '--exit-when-idle'], env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/resuming from pretrain epoch/);
    const done = await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } });
    expect(done).toMatchObject({ status: 'finished', attempts: 2 });
    expect(done.worker).not.toBe(orphan.worker);
    await expectEveryEpochOnce(trialId, env);
    const summary = done.summary as { epochs_run: { pretrain: number; gru: number } };
    expect(summary.epochs_run).toEqual({ pretrain: 4, gru: 1 });
  });

  it('Postgres unreachable mid-trial: training goes on, the epochs wait, and all are stored when it returns', async () => {
    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(t.env.DATABASE_URL).port || 5432));
    try {
      const env = { ...t.env, DATABASE_URL: proxy.url(t.env.DATABASE_URL) };
      const trialId = await oneTrial('pg-outage', tinySweep({ name: 'pg-outage', dropout: [0.1], pretrain: 4, gru: 1 }));
      const worker = startCli(['worker', '--exit-when-idle'], env);
      await waitFor(async () => (await points(trialId)).length > 0, 'the first epoch');
      proxy.cut();
      // Training reaches its last epoch while the database is away...
      await waitFor(async () => /gru 1: loss/.test(worker.stderr()), 'the last epoch during the outage', 120_000);
      expect(worker.stderr()).toMatch(/database unreachable/);
      // ...and the worker keeps the result until the database is back.
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } })).status).toBe('running');
      proxy.restore();
      const w = await worker.result;
      expect(w.code, w.stderr).toBe(0);
      expect(w.stderr).toMatch(/database reachable again/);
      const done = await db.prisma.trial.findUniqueOrThrow({ where: { id: trialId } });
      expect(done, w.stderr).toMatchObject({ status: 'finished', attempts: 1 });
      expect(await expectEveryEpochOnce(trialId, env)).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });

  it('Redis restarted mid-sweep (append-only): the sweep completes, each trial once', async () => {
    const port = await freePort();
    const dir = path.join(t.dir, 'redis');
    mkdirSync(dir, { recursive: true });
    const start = () =>
      spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--dir', dir, '--save', ''], { stdio: 'ignore' });
    let redis: ChildProcess = start();
    try {
      const env = { ...t.env, REDIS_URL: `redis://127.0.0.1:${port}` };
      await waitForPort(port);
      const file = writeFile(t.dir, 'redis-restart.yaml', tinySweep({ name: 'redis-restart', dropout: [0.1, 0.2], pretrain: 3, gru: 1 }));
      const launched = await launchSweep({ file, env });
      const trials = await db.prisma.trial.findMany({ where: { sweepId: launched.sweep.id } });
      expect(trials).toHaveLength(2);
      const worker = startCli(['worker', '--exit-when-idle'], env);
      await waitFor(async () => (await db.prisma.metricPoint.count({ where: { trialId: { in: trials.map((x) => x.id) } } })) > 0, 'the first epoch');
      const exited = new Promise((r) => redis.once('exit', r));
      redis.kill('SIGTERM');
      await exited;
      await new Promise((r) => setTimeout(r, 2_000));
      redis = start();
      const w = await worker.result;
      if (w.code !== 0) {
        // Once seen under load in CI: both trials finished, but the worker never called the queue idle. Say where the jobs were.
        const connection = connectRedis({ url: env.REDIS_URL });
        const queue = openTrialQueue(connection, env);
        const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'waiting-children', 'failed', 'completed');
        const rows = await db.prisma.trial.findMany({ where: { sweepId: launched.sweep.id }, select: { id: true, status: true, attempts: true, worker: true } });
        console.error(`worker exit ${w.code} (${w.signal ?? 'no signal'}); jobs ${JSON.stringify(counts)}; trials ${JSON.stringify(rows)}`);
        await queue.close();
        connection.disconnect();
      }
      expect(w.code, w.stderr).toBe(0);
      for (const trial of trials) {
        const done = await db.prisma.trial.findUniqueOrThrow({ where: { id: trial.id } });
        expect(done.status, `${trial.id}: ${done.error}`).toBe('finished');
        expect(done.attempts).toBe(1);
        await expectEveryEpochOnce(trial.id, env);
      }
    } finally {
      redis.kill('SIGKILL');
    }
  });

  it('a worker whose trials keep failing stops taking work, says why and exits 1', async () => {
    const file = writeFile(
      t.dir,
      'broken.yaml',
      tinySweep({ name: 'broken', dropout: [0.1, 0.2, 0.3] }).replace(/ {2}generate: .*\n/, '  data: does-not-exist\n'),
    );
    const launched = await launchSweep({ file, env: t.env });
    const w = await runCli(['worker', '--exit-when-idle', '--max-consecutive-failures', '2'], t.env);
    expect(w.code, w.stderr).toBe(1);
    expect(w.stderr).toMatch(/2 trial attempts failed in a row \(limit 2/);
    const trials = await db.prisma.trial.findMany({ where: { sweepId: launched.sweep.id } });
    expect(trials.filter((x) => x.status === 'failed')).toHaveLength(2);
    expect(trials.filter((x) => x.status === 'queued')).toHaveLength(1);
  });
});

async function waitForPort(port: number): Promise<void> {
  await waitFor(() => portOpen(port), `redis on port ${port}`, 20_000);
}
