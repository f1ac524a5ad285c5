/**
 * Carries out a fault schedule against a running drill: each fault at its time, faults of one
 * kind one after another (a second Postgres stop waits for the first to end), victims picked
 * from what is there at that moment with the schedule's number. Every fault ends in an entry of
 * `done`: injected (with what it hit) or skipped (with why).
 */
import { existsSync, readFileSync, readdirSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import type { ArtifactDisk, PrivatePostgres, PrivateRedis } from './servers.ts';
import type { Fault, FaultKind } from './schedule.ts';
import type { WorkerPool } from './workers.ts';

export interface FaultOutcome {
  fault: Fault;
  /** Seconds after the drill started that it was carried out (or skipped). */
  atS: number;
  injected: boolean;
  /** What it hit, or why it was skipped. */
  detail: string;
  /** truncate: the trial whose checkpoint was cut. */
  trialId?: string;
}

export interface Targets {
  pool: WorkerPool;
  redis: PrivateRedis;
  postgres: PrivatePostgres;
  /** The tmpfs under the trials directory, or why there is none. */
  disk: ArtifactDisk | string;
  /** <SWEEP_HOME>/trials */
  trialsDir: string;
  log: (msg: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Checkpoint directories in the order training writes them: pretrain-e0001, ..., gru-e0001, ... */
function newestCheckpoint(root: string): string | null {
  const dirs = readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^(pretrain|gru)-e\d+$/.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => (a.startsWith('gru') === b.startsWith('gru') ? a.localeCompare(b) : a.startsWith('gru') ? 1 : -1));
  return dirs.at(-1) ?? null;
}

/**
 * Trials in progress on disk (their state says training is not done) and their latest
 * checkpoint directory: the one the state names, or, between phases (when it names none), the
 * newest one there, which holds the pretrained weights the GRU phase starts from.
 */
function trialsWithCheckpoint(trialsDir: string): Array<{ id: string; dir: string }> {
  if (!existsSync(trialsDir)) return [];
  const out: Array<{ id: string; dir: string }> = [];
  for (const id of readdirSync(trialsDir).sort()) {
    const root = path.join(trialsDir, id, 'checkpoints');
    try {
      const state = JSON.parse(readFileSync(path.join(root, 'state.json'), 'utf8')) as { phase: string; checkpoint: string | null };
      const name = state.checkpoint ?? newestCheckpoint(root);
      if (state.phase !== 'done' && name) out.push({ id, dir: path.join(root, name) });
    } catch {
      /* no state yet, or being replaced */
    }
  }
  return out;
}

export class FaultInjector {
  readonly done: FaultOutcome[] = [];
  private stopped = false;
  private chains = new Map<FaultKind, Promise<void>>();
  private timers: NodeJS.Timeout[] = [];
  private releases: Array<() => void> = [];
  private all: Promise<void>[] = [];

  constructor(
    readonly t: Targets,
    readonly t0: number,
  ) {}

  private seconds(): number {
    return (Date.now() - this.t0) / 1000;
  }

  /** Schedules every fault at t0 + at * windowS. */
  run(faults: readonly Fault[], windowS: number): void {
    for (const f of faults) {
      let release!: () => void;
      const due = new Promise<void>((r) => (release = r));
      this.releases.push(release);
      this.timers.push(setTimeout(release, Math.max(0, this.t0 + f.at * windowS * 1000 - Date.now())));
      const prev = this.chains.get(f.kind) ?? Promise.resolve();
      const next = Promise.all([prev, due]).then(() => this.one(f));
      this.chains.set(f.kind, next);
      this.all.push(next);
    }
  }

  /** No new fault starts; resolves when those under way have ended (Postgres started, disk emptied). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const r of this.releases) r();
    await Promise.all(this.all);
  }

  private async one(f: Fault): Promise<void> {
    if (this.stopped) {
      this.done.push({ fault: f, atS: this.seconds(), injected: false, detail: 'the sweep had ended' });
      return;
    }
    const atS = this.seconds();
    try {
      const { at, ...r } = await this.inject(f);
      this.done.push({ fault: f, atS: at ?? atS, ...r });
      this.t.log(`fault ${f.kind} at ${(at ?? atS).toFixed(0)} s: ${r.injected ? '' : 'skipped: '}${r.detail}`);
    } catch (e) {
      const detail = `failed to inject: ${(e as Error).message}`;
      this.done.push({ fault: f, atS, injected: false, detail });
      this.t.log(`fault ${f.kind} at ${atS.toFixed(0)} s: ${detail}`);
    }
  }

  private async inject(f: Fault): Promise<Omit<FaultOutcome, 'fault' | 'atS'> & { at?: number }> {
    const { t } = this;
    switch (f.kind) {
      case 'kill': {
        // Workers may all be between restarts (one that starts while Postgres is down exits at
        // once): wait for a live one, as a truncation waits for a checkpoint.
        const from = this.seconds();
        let live = t.pool.live();
        while (!live.length && !this.stopped && this.seconds() - from < 60) {
          await new Promise((r) => setTimeout(r, 250));
          live = t.pool.live();
        }
        if (!live.length) return { injected: false, detail: 'no worker was running' };
        const waited = this.seconds() - from;
        const w = live[Math.floor(f.pick * live.length)]!;
        t.log(`fault kill: kill -9 of ${w.label}'s process group (pid ${w.proc.pid}); a new worker in ${f.seconds.toFixed(1)} s`);
        const at = this.seconds();
        await t.pool.kill(w, f.seconds);
        return { injected: true, at, detail: `${w.label} (pid ${w.proc.pid}) and its trial process${waited >= 0.5 ? ` (waited ${waited.toFixed(0)} s for a live worker)` : ''}` };
      }
      case 'redis': {
        t.log('fault redis: stopping Redis');
        await t.redis.stop();
        await sleep(1_000);
        await t.redis.start();
        return { injected: true, detail: 'stopped and started again (append-only file kept)' };
      }
      case 'postgres': {
        t.log(`fault postgres: stopping Postgres for ${f.seconds} s`);
        t.postgres.stop();
        await sleep(f.seconds * 1000);
        t.postgres.start();
        return { injected: true, detail: `down ${f.seconds} s` };
      }
      case 'truncate': {
        // The first moment from now on that some trial has a checkpoint to cut.
        const started = this.seconds();
        let found = trialsWithCheckpoint(t.trialsDir);
        while (!found.length && !this.stopped) {
          await sleep(500);
          found = trialsWithCheckpoint(t.trialsDir);
        }
        if (!found.length) return { injected: false, detail: 'the sweep had ended before a trial had a checkpoint' };
        // A trial not cut before, when there is one: two cuts in one directory test nothing more.
        const fresh = found.filter((c) => !this.done.some((d) => d.trialId === c.id));
        if (fresh.length) found = fresh;
        const x = f.pick * found.length;
        const victim = found[Math.floor(x)]!;
        const name = x - Math.floor(x) < 0.5 ? 'weights.bin' : 'model.json';
        const file = path.join(victim.dir, name);
        if (!existsSync(file)) return { injected: false, detail: `${file} was gone (the checkpoint was replaced)` };
        const bytes = statSync(file).size;
        truncateSync(file, Math.floor(bytes / 2));
        const at = this.seconds();
        const waited = at - started > 1 ? ` (waited ${(at - started).toFixed(0)} s for a trial with a checkpoint)` : '';
        return { at, injected: true, detail: `${victim.id.slice(0, 10)} ${path.basename(victim.dir)}/${name} ${bytes} -> ${Math.floor(bytes / 2)} bytes${waited}`, trialId: victim.id };
      }
      case 'disk': {
        if (typeof t.disk === 'string') return { injected: false, detail: `no artifact tmpfs: ${t.disk}` };
        const bytes = t.disk.fill();
        t.log(`fault disk: filled ${(bytes / 2 ** 20).toFixed(1)} MiB; ${t.disk.freeBytes()} bytes free for ${f.seconds} s`);
        await sleep(f.seconds * 1000);
        t.disk.empty();
        return { injected: true, detail: `${(bytes / 2 ** 20).toFixed(1)} MiB filler for ${f.seconds} s` };
      }
    }
  }
}
