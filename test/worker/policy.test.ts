import { describe, expect, it } from 'vitest';
import { DatabaseUnreachable, isConnectionError, maxConsecutiveFailures, persistently, shortError, workerTimings } from '../../src/worker/policy.ts';
import { UserError } from '../../src/util/errors.ts';

describe('worker policy', () => {
  it('timings: defaults, overrides, and refusals that name the variable', () => {
    expect(workerTimings({})).toMatchObject({ heartbeatMs: 10_000, staleMs: 90_000, lockMs: 60_000, stalledMs: 60_000, connectWaitMs: 300_000 });
    expect(workerTimings({ SWEEP_CONNECT_WAIT_S: '0' }).connectWaitMs).toBe(0);
    expect(() => workerTimings({ SWEEP_CONNECT_WAIT_S: '-1' })).toThrow(/SWEEP_CONNECT_WAIT_S must be a whole number >= 0, got "-1"/);
    expect(workerTimings({ SWEEP_HEARTBEAT_MS: '1000', SWEEP_STALE_MS: '5000', SWEEP_LOCK_MS: '4000' })).toMatchObject({ heartbeatMs: 1000, staleMs: 5000, lockMs: 4000, stalledMs: 4000 });
    expect(() => workerTimings({ SWEEP_LOCK_MS: 'soon' })).toThrow(/SWEEP_LOCK_MS must be a whole number >= 1, got "soon"/);
    expect(() => workerTimings({ SWEEP_HEARTBEAT_MS: '5000', SWEEP_STALE_MS: '8000' })).toThrow(UserError);
    expect(maxConsecutiveFailures({})).toBe(5);
    expect(maxConsecutiveFailures({ SWEEP_MAX_CONSECUTIVE_FAILURES: '2' })).toBe(2);
    expect(maxConsecutiveFailures({ SWEEP_MAX_CONSECUTIVE_FAILURES: '2' }, 7)).toBe(7);
    expect(() => maxConsecutiveFailures({}, 0)).toThrow(/--max-consecutive-failures/);
  });

  it('tells an unreachable database from a refused query', () => {
    expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionError(Object.assign(new Error('x'), { cause: { code: 'ECONNREFUSED' } }))).toBe(true);
    expect(isConnectionError(new Error("Raw query failed. Code: `N/A`. Message: `Can't reach database server at 127.0.0.1:5432`"))).toBe(true);
    expect(isConnectionError(new Error('Database error. Code: `57P03`. Message: `the database system is shutting down`'))).toBe(true);
    expect(isConnectionError(new Error('Server has closed the connection.'))).toBe(true);
    expect(isConnectionError(new Error('Query read timeout'))).toBe(true);
    // A driver adapter's error says what happened in its cause's kind.
    expect(isConnectionError(Object.assign(new Error('DatabaseNotReachable'), { cause: { kind: 'DatabaseNotReachable', host: 'db', port: 5432 } }))).toBe(true);
    expect(isConnectionError(Object.assign(new Error('ConnectionClosed'), { cause: { kind: 'ConnectionClosed' } }))).toBe(true);
    expect(isConnectionError(Object.assign(new Error('UniqueConstraintViolation'), { cause: { kind: 'UniqueConstraintViolation' } }))).toBe(false);
    expect(isConnectionError(Object.assign(new Error('Unique constraint failed'), { code: 'P2002' }))).toBe(false);
    expect(isConnectionError(new Error('relation "Trial" does not exist'))).toBe(false);
    expect(shortError(new Error('Invalid `prisma.x()` invocation in\nfile.ts:1\nDatabase error. Code: `57P03`. Message: `the database system is shutting down`'))).toBe('the database system is shutting down');
  });

  it('persistently: waits out connection errors, throws others at once, gives up after the outage limit', async () => {
    let n = 0;
    const states: string[] = [];
    const v = await persistently('storing', async () => {
      if (n++ < 2) throw new Error('Connection terminated unexpectedly');
      return 42;
    }, { outageMs: 60_000, onOutage: (s) => states.push(s) });
    expect(v).toBe(42);
    expect(n).toBe(3);
    expect(states).toEqual(['down', 'up']);

    let calls = 0;
    await expect(persistently('storing', async () => {
      calls++;
      throw new Error('syntax error at or near "SELEC"');
    }, { outageMs: 60_000 })).rejects.toThrow(/syntax error/);
    expect(calls).toBe(1);

    await expect(persistently('storing a result', async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    }, { outageMs: 50 })).rejects.toBeInstanceOf(DatabaseUnreachable);
  }, 30_000);
});
