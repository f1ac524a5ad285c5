/**
 * A whole sweep through the CLI: `sweep launch --workers 2` as a subprocess, real Redis and
 * Postgres, a temporary SWEEP_HOME, two tiny trials.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/infra/redis.ts';
import { openTrialQueue, pendingJobs } from '../../src/worker/queue.ts';
import { runCli, testEnv, writeFile, type TestEnv } from './helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';

let t: TestEnv;

beforeAll(async () => {
  t = await testEnv('e2e');
});
afterAll(async () => {
  await t?.cleanup();
});

const EPOCH_KEYS = ['loss', 'char_acc', 'seq_acc', 'val_loss', 'val_char_acc', 'val_seq_acc', 'lr', 'images_per_s', 'seconds'];

describe('sweep launch --workers 2', () => {
  it('trains every trial, stores its metrics once per epoch, and a relaunch runs nothing again', async () => {
    const file = writeFile(t.dir, 'tiny.yaml', tinySweep({ name: 'tiny-e2e' }));
    const run = await runCli(['launch', file, '--workers', '2', '--json'], t.env, { timeoutMs: 280_000 });
    if (run.code !== 0) console.error(run.stderr);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ trials: 2, new: 2, enqueued: 2 });
    expect(out.outcome.status.counts).toMatchObject({ finished: 2, queued: 0, running: 0, failed: 0 });
    expect(out.outcome.status.best).toMatchObject({ status: 'finished', valCharAcc: expect.any(Number), valSeqAcc: expect.any(Number) });
    // A worker still starting when the sweep is done is ended by the launcher's SIGTERM before
    // its handler is installed: killed by that signal, marked as stopped by the launcher.
    for (const w of out.outcome.workers as Array<{ exit: { code: number | null; signal: string | null }; stoppedWhenDone: boolean }>) {
      if (w.exit.code !== 0) expect(w).toMatchObject({ exit: { signal: 'SIGTERM' }, stoppedWhenDone: true });
    }
    expect(run.stderr).not.toMatch(/exited with/);
    // Piped: plain lines, one per trial state change.
    expect(run.stderr).toMatch(/#0 \w+ finished val_seq_acc \d\.\d{4} val_char_acc \d\.\d{4} /);
    expect(run.stderr).not.toMatch(/\x1b\[/);

    const db = await t.db();
    try {
      const trials = await db.prisma.trial.findMany({ include: { artifacts: true } });
      expect(trials).toHaveLength(2);
      // A second attempt means the first ended in a way the workers' logs explain: show them.
      if (trials.some((tr) => tr.attempts !== 1)) {
        const logs = (out.outcome.workers as Array<{ log: string }>).map((w) => `--- ${w.log}\n${existsSync(w.log) ? readFileSync(w.log, 'utf8') : '(missing)'}`);
        console.error(`trials made more than one attempt; the launch's log:\n${run.stderr}\nthe workers' logs:\n${logs.join('\n')}`);
      }
      for (const trial of trials) {
        expect(trial).toMatchObject({ status: 'finished', attempts: 1, backend: 'wasm', error: null });
        expect(trial.bestMetric).not.toBeNull();
        expect(trial.finishedAt!.getTime()).toBeGreaterThanOrEqual(trial.startedAt!.getTime());
        expect((trial.summary as { epochs_run: unknown }).epochs_run).toEqual({ pretrain: 1, gru: 1 });
        expect(trial.artifacts.map((a) => a.kind).sort()).toEqual(['checkpoint', 'model', 'predictions']);
        for (const a of trial.artifacts) expect(existsSync(a.path)).toBe(true);
        const points = await db.prisma.metricPoint.findMany({ where: { trialId: trial.id } });
        // One point per (phase, epoch, key): 2 epochs x the 9 epoch keys.
        expect(points).toHaveLength(2 * EPOCH_KEYS.length);
        for (const phase of ['pretrain', 'gru']) {
          expect(points.filter((p) => p.phase === phase && p.epoch === 0).map((p) => p.key).sort()).toEqual([...EPOCH_KEYS].sort());
        }
      }
    } finally {
      await db.close();
    }
    const connection = connectRedis({ url: t.env.REDIS_URL });
    const queue = openTrialQueue(connection, t.env);
    expect(await pendingJobs(queue)).toBe(0);

    // A finished trial is never run twice: launching again enqueues nothing, and a stray job
    // for a finished trial is acknowledged without training.
    const again = await runCli(['launch', file, '--json'], t.env);
    expect(JSON.parse(again.stdout)).toMatchObject({ new: 0, existing: 2, enqueued: 0, queued: 0 });
    const db2 = await t.db();
    const id = (await db2.prisma.trial.findFirstOrThrow()).id;
    await queue.add('tiny-e2e', { trialId: id }, { jobId: id });
    await queue.close();
    connection.disconnect();
    const worker = await runCli(['worker', '--exit-when-idle'], t.env);
    expect(worker.code).toBe(0);
    expect(worker.stderr).toMatch(/already finished; not run again/);
    expect((await db2.prisma.trial.findUniqueOrThrow({ where: { id } })).attempts).toBe(1);

    // status: counts, best, throughput.
    const status = await runCli(['status', '--json'], t.env);
    const s = JSON.parse(status.stdout).sweeps[0];
    expect(s.counts).toEqual({ queued: 0, running: 0, finished: 2, failed: 0, diverged: 0, stopped: 0, cancelled: 0 });
    expect(s.best.params).toHaveProperty('dropout');
    expect(s.throughput.trialsPerHour).toBeGreaterThan(0);
    expect(s.etaSeconds).toBe(0);
    await db2.close();
  });
});
