/**
 * A starting worker waits for its servers. Started before Postgres or Redis (a machine
 * booting, `docker compose up` starting everything at once) or while one restarts, it says
 * what it waits for and tries again with backoff, for up to SWEEP_CONNECT_WAIT_S; then it
 * exits with the server's own message, so a supervisor that restarts it only a few times
 * does not spend those restarts on a server that is merely slow to come up.
 */
import { ServerUnreachable } from '../infra/reachability.ts';
import { UserError } from '../util/errors.ts';

/** Retry delays: 1 s, 2 s, 4 s ... capped at this. */
export const CONNECT_RETRY_CAP_MS = 15_000;

/**
 * How long to wait before try number `n + 1` (n >= 0 failed so far), `waitedMs` into a wait
 * of at most `limitMs`; null: give up. The last delay is cut to end at the limit.
 */
export function connectRetryDelay(n: number, waitedMs: number, limitMs: number): number | null {
  const left = limitMs - waitedMs;
  if (left <= 0) return null;
  return Math.min(CONNECT_RETRY_CAP_MS, 1_000 * 2 ** Math.min(n, 20), left);
}

export interface ConnectWaitOptions {
  /** Give up this long after `since` (0: at the first failure). */
  limitMs: number;
  /** When the wait started (Date.now()); default now. Several servers share one wait. */
  since?: number;
  log: (line: string) => void;
  sleep?: (ms: number) => Promise<void>;
}

/** `open()`, tried again while it throws ServerUnreachable, until it succeeds or the wait is over. */
export async function untilReachable<T>(open: () => Promise<T>, opts: ConnectWaitOptions): Promise<T> {
  const since = opts.since ?? Date.now();
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let n = 0; ; n++) {
    try {
      const value = await open();
      if (n > 0) opts.log(`connected after waiting ${seconds(Date.now() - since)}`);
      return value;
    } catch (err) {
      if (!(err instanceof ServerUnreachable)) throw err;
      const delay = connectRetryDelay(n, Date.now() - since, opts.limitMs);
      if (delay === null) throw gaveUp(err, opts.limitMs);
      opts.log(`waiting for ${err.service} at ${err.address} (${err.reason}), retrying in ${seconds(delay)}`);
      await sleep(delay);
    }
  }
}

function gaveUp(err: ServerUnreachable, limitMs: number): UserError {
  if (limitMs <= 0) return err;
  return new ServerUnreachable(err.service, err.address, err.reason, `waited ${seconds(limitMs)} (SWEEP_CONNECT_WAIT_S) for ${err.service}, in vain: ${err.message}`);
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`.replace('.0 s', ' s');
}
