/**
 * A worker started before its servers waits for them, says so, and goes on once they answer;
 * at the end of SWEEP_CONNECT_WAIT_S it exits with the server's message (exit 2), no stack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerUnreachable } from '../../src/infra/reachability.ts';
import { connectRetryDelay, untilReachable } from '../../src/worker/connect.ts';
import { runCli, startCli, testEnv, type TestEnv } from '../e2e/helpers.ts';
import { freePort } from '../../support/ports.ts';
import { waitFor } from '../../support/wait.ts';
import { startTcpProxy } from '../infra/tcp-proxy.ts';

describe('connectRetryDelay', () => {
  it.each([
    // n failed, waited, limit -> delay (null: give up)
    [0, 0, 300_000, 1_000],
    [1, 1_000, 300_000, 2_000],
    [3, 7_000, 300_000, 8_000],
    [4, 15_000, 300_000, 15_000],
    [30, 100_000, 300_000, 15_000],
    [5, 299_000, 300_000, 1_000],
    [5, 300_000, 300_000, null],
    [0, 0, 0, null],
    [0, 10, 5, null],
  ])('after %i failures, %i ms into a wait of %i ms: %s', (n, waited, limit, want) => {
    expect(connectRetryDelay(n, waited, limit)).toBe(want);
  });
});

describe('untilReachable', () => {
  const refused = () => new ServerUnreachable('Postgres', 'db:5432', 'connection refused', 'cannot connect to the database at db:5432');

  it('tries again while the server is unreachable, saying what it waits for', async () => {
    const lines: string[] = [];
    const slept: number[] = [];
    let n = 0;
    const v = await untilReachable(async () => {
      if (n++ < 2) throw refused();
      return 'open';
    }, { limitMs: 60_000, log: (l) => lines.push(l), sleep: async (ms) => void slept.push(ms) });
    expect(v).toBe('open');
    expect(slept).toEqual([1_000, 2_000]);
    expect(lines.slice(0, 2)).toEqual([
      'waiting for Postgres at db:5432 (connection refused), retrying in 1 s',
      'waiting for Postgres at db:5432 (connection refused), retrying in 2 s',
    ]);
    expect(lines[2]).toMatch(/^connected after waiting/);
  });

  it('throws any other error at once, and gives up at the limit with the server\'s message', async () => {
    let calls = 0;
    const bad = untilReachable(async () => {
      calls++;
      throw new Error('migration 2_x failed');
    }, { limitMs: 60_000, log: () => {} });
    await expect(bad).rejects.toThrow('migration 2_x failed');
    expect(calls).toBe(1);

    const err = await untilReachable(async () => {
      throw refused();
    }, { limitMs: 0, log: () => {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerUnreachable);
    expect((err as Error).message).toBe('cannot connect to the database at db:5432');
  });
});

describe('sweep worker started before its servers', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await testEnv('connect');
    await (await t.db()).close();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('waits for Postgres (refused, then shutting down) and goes on once it answers', async () => {
    const port = await freePort();
    const target = new URL(t.env.DATABASE_URL);
    const url = new URL(t.env.DATABASE_URL);
    url.port = String(port);
    const worker = startCli(['worker', '--exit-when-idle'], { ...t.env, DATABASE_URL: url.toString(), SWEEP_CONNECT_WAIT_S: '120' });
    const proxy = { current: null as Awaited<ReturnType<typeof startTcpProxy>> | null };
    try {
      await waitFor(async () => worker.stderr().includes(`waiting for Postgres at 127.0.0.1:${port} (`), 'a line saying it waits', 60_000);
      // The server comes up, but is shutting down (a restart): still waiting, with its reason.
      proxy.current = await startTcpProxy('127.0.0.1', Number(target.port || 5432), port);
      proxy.current.shutDown();
      await waitFor(async () => worker.stderr().includes('(the database system is shutting down), retrying'), 'the shutting-down reason', 60_000);
      proxy.current.restore();
      const w = await worker.result;
      expect(w.code, w.stderr).toBe(0);
      expect(w.stderr).toMatch(/connected after waiting/);
      expect(w.stderr).toMatch(/stopped \(idle\)/);
      expect(w.stderr).not.toMatch(/\n\s+at /);
    } finally {
      worker.child.kill('SIGKILL');
      await proxy.current?.close();
    }
  });

  it('gives up at SWEEP_CONNECT_WAIT_S with exit 2 and the server\'s message, for Redis too', async () => {
    const port = await freePort();
    const r = await runCli(['worker'], { ...t.env, REDIS_URL: `redis://127.0.0.1:${port}`, SWEEP_CONNECT_WAIT_S: '2' });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`waiting for Redis at 127.0.0.1:${port} (connection refused), retrying in 1 s`);
    expect(r.stderr).toMatch(/sweep: waited 2 s \(SWEEP_CONNECT_WAIT_S\) for Redis, in vain: no Redis answers at redis:\/\/127\.0\.0\.1:\d+ \(connection refused\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
