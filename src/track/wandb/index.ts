/**
 * The Weights & Biases mirror: each trial appears on W&B as a run (params as config, the sweep
 * as group and in its tags with the phases it went through, one history line per epoch, a
 * summary and an exit state), under a W&B sweep registered for ours.
 *
 * Postgres stays the source of truth. The worker writes outbox rows (outbox-write.ts) through
 * the mirror, one statement per call and never a network request, so W&B being down, slow or
 * hanging cannot hold training up; in online mode a loop sends them in the background
 * (outbox-deliver.ts). `sweep wandb sync` sends whatever is left (offline mode, or rows given
 * up on).
 */
import type { PrismaClient } from '../../infra/db.ts';
import type { Env } from '../../infra/env.ts';
import type { EpochMetrics, TrialResult } from '../../train/trainer.ts';
import { UserError } from '../../util/errors.ts';
import { redactError, wandbSettings, type WandbMode, type WandbSettings } from './config.ts';
import { OutboxDelivery, WandbAuthError, type DeliveryOptions } from './outbox-deliver.ts';
import { outboxCounts } from './outbox-status.ts';
import { historyPayload, writeEpoch, writeRunEnded, writeRunPreempted, writeRunStarted, type RunStart } from './outbox-write.ts';

export { wandbAppUrl, wandbRunId, wandbRunUrl, wandbSettings, wandbSweepUrl, redact, redactError } from './config.ts';
export type { WandbMode, WandbSettings } from './config.ts';
export { outboxStatus, outboxCounts, type SweepOutboxStatus, type OutboxCounts } from './outbox-status.ts';
export { EXIT_CODES } from './outbox-write.ts';

export interface WandbMirror {
  readonly mode: WandbMode;
  /** Outbox rows for a run (config = params, group/tags = sweep, sweep registration). */
  runStarted(t: RunStart): Promise<void>;
  /** One history line per (phase, epoch), at `step` (the epoch's place in the trial's history); keys as in EpochMetrics plus phase. */
  epoch(trialId: string, m: EpochMetrics, step: number): Promise<void>;
  /** Summary and exit state: status is the trial's final status (finished | failed | diverged | stopped | cancelled). */
  runEnded(trialId: string, status: string, summary: Record<string, unknown>): Promise<void>;
  /** The attempt stopped without finishing and the trial went back to the queue: the run is preempting until an attempt resumes it. */
  runPreempted(trialId: string): Promise<void>;
  /** This worker no longer trains the trial (it ended, or went back to the queue): no more heartbeats for its run from here. */
  forget(trialId: string): void;
  /** Starts the background delivery loop (online mode only); never throws. */
  start(): void;
  /** Stops the loop; waits at most `ms` for an in-flight delivery. */
  close(ms?: number): Promise<void>;
}

/** Timings and hooks; the defaults suit production, tests shorten them. */
export interface MirrorOptions extends Omit<DeliveryOptions, 'settings' | 'log' | 'sweepId'> {
  /** Idle loop looks for due rows this often; default 2 s (a write wakes it at once). */
  pollMs?: number;
  /** File-stream heartbeat of running runs; default 30 s (the SDK's heartbeat_seconds). */
  heartbeatMs?: number;
}

/**
 * The mirror for a worker. Reads WANDB_* from `env` (a bad value throws a UserError naming
 * it). `log` gets one line per notable event (a disabled mirror's reason, a bad key, a row
 * given up on, a database error), never the key.
 */
export function openWandbMirror(prisma: PrismaClient, env: Env = process.env, log: (line: string) => void = () => {}, opts: MirrorOptions = {}): WandbMirror {
  const settings = wandbSettings(env);
  if (settings.notice) log(settings.notice);
  if (settings.mode === 'disabled') return disabledMirror();

  const started = new Map<string, number>();
  let loop: Promise<void> | null = null;
  let stopping = false;
  const abort = new AbortController();
  let wake: (() => void) | null = null;
  const kick = () => wake?.();

  const mirror: WandbMirror = {
    mode: settings.mode,
    async runStarted(t) {
      const now = Date.now();
      await writeRunStarted(prisma, t, now);
      started.set(t.trialId, now);
      kick();
    },
    async epoch(trialId, m, step) {
      await writeEpoch(prisma, trialId, historyPayload(m, Date.now(), started.get(trialId)), step);
      kick();
    },
    async runEnded(trialId, status, summary) {
      const at = started.get(trialId);
      await writeRunEnded(prisma, trialId, status, at !== undefined ? { ...summary, _runtime: Math.max(0, (Date.now() - at) / 1000) } : summary);
      started.delete(trialId);
      kick();
    },
    async runPreempted(trialId) {
      await writeRunPreempted(prisma, trialId);
      started.delete(trialId);
      kick();
    },
    forget(trialId) {
      started.delete(trialId);
    },
    start() {
      if (settings.mode !== 'online' || loop || stopping) return;
      loop = run().catch((err) => log(`W&B: delivery loop stopped: ${redactError(err, settings.apiKey)}`));
    },
    async close(ms = 5_000) {
      stopping = true;
      kick();
      if (!loop) return;
      let timer: NodeJS.Timeout | undefined;
      const waited = await Promise.race([loop.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
      clearTimeout(timer);
      if (!waited) {
        // The in-flight request is abandoned; its rows stay pending and are sent again later.
        abort.abort();
        await loop;
      }
    },
  };

  async function run(): Promise<void> {
    const delivery = new OutboxDelivery(prisma, { ...opts, settings: settings as WandbSettings & { apiKey: string }, log });
    const pollMs = opts.pollMs ?? 2_000;
    const heartbeatMs = opts.heartbeatMs ?? 30_000;
    let lastBeat = Date.now();
    let lastDbError = '';
    while (!stopping) {
      let busy = false;
      try {
        const r = await delivery.pass(abort.signal);
        busy = r.attempted > 0 && r.delivered > 0;
        if (Date.now() - lastBeat >= heartbeatMs) {
          lastBeat = Date.now();
          await delivery.heartbeat([...started.keys()], abort.signal);
        }
        lastDbError = '';
      } catch (err) {
        if (err instanceof WandbAuthError) {
          log(err.message);
          return;
        }
        // Postgres unreachable, most likely: say so once, keep trying.
        const msg = redactError(err, settings.apiKey);
        if (msg !== lastDbError) log(`W&B: delivery paused: ${msg}`);
        lastDbError = msg;
      }
      if (stopping) break;
      if (!busy) {
        let wait = pollMs;
        try {
          const due = await delivery.nextDueMs();
          // A floor, so a row that is due but cannot go yet does not make this loop spin.
          if (due !== null) wait = Math.min(pollMs, Math.max(due, Math.min(pollMs, 100)));
        } catch {
          // The pass will say what is wrong.
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, wait);
          function done() {
            clearTimeout(timer);
            wake = null;
            resolve();
          }
          wake = done;
        });
      }
    }
  }

  return mirror;
}

function disabledMirror(): WandbMirror {
  return {
    mode: 'disabled',
    async runStarted() {},
    async epoch() {},
    async runEnded() {},
    async runPreempted() {},
    forget() {},
    start() {},
    async close() {},
  };
}

/** A trial's W&B dashboard link, as recorded when its run was delivered; null before that. */
export async function wandbRunLink(prisma: PrismaClient, trialId: string): Promise<string | null> {
  return (await prisma.wandbRun.findUnique({ where: { trialId }, select: { url: true } }))?.url ?? null;
}

/** The summary W&B shows for a finished trial: best and final validation, test metrics, cost. */
export function wandbSummary(result: TrialResult): Record<string, unknown> {
  const bests = Object.values(result.best).map((b) => b?.val_seq_acc).filter((v): v is number => typeof v === 'number');
  return {
    best_val_seq_acc: bests.length > 0 ? Math.max(...bests) : result.val_seq_acc,
    val_seq_acc: result.val_seq_acc,
    val_char_acc: result.val_char_acc,
    val_loss: result.val_loss,
    test_seq_acc: result.test_seq_acc,
    test_char_acc: result.test_char_acc,
    test_loss: result.test_loss,
    parameter_count: result.parameter_count,
    images_per_s: result.images_per_s,
    seconds: result.seconds,
    backend: result.backend,
    best: result.best,
    epochs_run: result.epochs_run,
  };
}

export interface SyncProgress {
  delivered: number;
  pending: number;
  undeliverable: number;
}

export interface SyncOptions extends Omit<DeliveryOptions, 'settings' | 'sweepId' | 'log'> {
  sweepId?: string;
  onProgress?: (p: SyncProgress) => void;
  /** Lines worth showing the user (a row given up on, a sweep's warnings). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SyncResult {
  /** Rows delivered by this sync. */
  delivered: number;
  /** Rows left undeliverable. */
  failed: number;
  /** Rows left to send (behind an undeliverable one, or interrupted). */
  pending: number;
  /** Why rows were left: the key refused, or the last errors of undeliverable rows. */
  errors: string[];
}

/**
 * Sends the pending and undeliverable rows of one sweep (or all) now: undeliverable rows get a
 * fresh set of attempts (default 4, backoff from 1 s), waiting rows lose their wait. Returns
 * when everything is sent or nothing more can be.
 */
export async function syncOutbox(prisma: PrismaClient, env: Env, opts: SyncOptions = {}): Promise<SyncResult> {
  const settings = wandbSettings(env);
  if (!settings.apiKey) {
    throw new UserError('WANDB_API_KEY is not set: `sweep wandb sync` needs it to send the outbox to W&B');
  }
  const scope = opts.sweepId ? { sweepId: opts.sweepId } : {};
  await prisma.wandbOutbox.updateMany({
    where: { ...scope, deliveredAt: null },
    data: { failedAt: null, droppedAt: null, attempts: 0, nextAttemptAt: new Date(0) },
  });
  const errors: string[] = [];
  const delivery = new OutboxDelivery(prisma, {
    maxAttempts: 4,
    backoffBaseMs: 1_000,
    ...opts,
    settings: settings as WandbSettings & { apiKey: string },
    log: opts.log,
  });
  let delivered = 0;
  const progress = async () => {
    const c = await outboxCounts(prisma, opts.sweepId);
    opts.onProgress?.({ delivered, pending: c.pending, undeliverable: c.undeliverable });
  };
  try {
    while (!opts.signal?.aborted) {
      const r = await delivery.pass(opts.signal);
      delivered += r.delivered;
      if (r.attempted > 0) await progress();
      if (r.delivered > 0) continue;
      const due = await delivery.nextDueMs();
      if (due === null) break;
      await sleep(Math.min(Math.max(due, 50), 1_000), opts.signal);
    }
  } catch (err) {
    if (!(err instanceof WandbAuthError)) throw err;
    errors.push(err.message);
  } finally {
    // Leases are released per run; nothing else to undo.
  }
  const c = await outboxCounts(prisma, opts.sweepId);
  if (c.undeliverable > 0) {
    const rows = await prisma.wandbOutbox.findMany({
      where: { ...scope, deliveredAt: null, failedAt: { not: null } },
      select: { key: true, lastError: true },
      orderBy: { updatedAt: 'desc' },
      take: 3,
    });
    for (const r of rows) errors.push(`${r.key}: ${r.lastError ?? 'no reason recorded'}`);
  }
  return { delivered, failed: c.undeliverable, pending: c.pending, errors };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
