/**
 * A chaos drill's fault schedule: a pure function of a seed. Each fault has a time (a fraction
 * of the drill's window, so the same seed gives the same schedule whatever the machine's speed),
 * a kind, and a number in [0, 1) that picks its victim among those present at that moment (a
 * worker, a trial, a file), so nothing random is drawn while the drill runs.
 */
import { Rng } from '../../src/util/rng.ts';

export const FAULT_KINDS = ['kill', 'redis', 'postgres', 'truncate', 'disk'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const FAULT_DESCRIPTIONS: Record<FaultKind, string> = {
  kill: 'kill -9 of a worker and its trial process (the process group); a new worker 1-3 s later',
  redis: "the queue's Redis (append-only) stopped and started again",
  postgres: 'Postgres stopped for 10-40 s, then started',
  truncate: "a running trial's latest checkpoint: weights.bin or model.json cut to half its length",
  disk: 'the artifact disk (a tmpfs holding SWEEP_HOME/trials) filled for a minute, then emptied',
};

export interface Fault {
  /** When, as a fraction of the window (0..1). */
  at: number;
  kind: FaultKind;
  /** Picks the victim: index floor(pick * n) among the n candidates at that moment. */
  pick: number;
  /** kill: seconds until the new worker starts; postgres: seconds down; disk: seconds full. */
  seconds: number;
}

export interface ScheduleOptions {
  seed: number;
  /** How many faults. */
  count: number;
  /** Kinds to draw from; each appears at least once when count allows. */
  kinds?: readonly FaultKind[];
  /** Seconds Postgres stays down: [min, max]. */
  postgresDownS?: [number, number];
  /** Seconds the artifact disk stays full. */
  diskFullS?: number;
  /** The part of the window faults fall in. */
  span?: [number, number];
}

export function makeSchedule(o: ScheduleOptions): Fault[] {
  const rng = new Rng(`chaos-schedule/${o.seed}`);
  const kinds = o.kinds?.length ? [...o.kinds] : [...FAULT_KINDS];
  const [lo, hi] = o.span ?? [0.05, 0.85];
  const [pgMin, pgMax] = o.postgresDownS ?? [10, 40];
  // Every kind once (as far as count goes), the rest drawn; then shuffled into time order.
  const drawn: FaultKind[] = [];
  for (let i = 0; i < o.count; i++) drawn.push(i < kinds.length ? kinds[i]! : kinds[Math.floor(rng.next() * kinds.length)]!);
  for (let i = drawn.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [drawn[i], drawn[j]] = [drawn[j]!, drawn[i]!];
  }
  const times = drawn.map(() => lo + rng.next() * (hi - lo)).sort((a, b) => a - b);
  return drawn.map((kind, i) => {
    const pick = rng.next();
    const u = rng.next();
    const seconds = kind === 'kill' ? 1 + 2 * u : kind === 'postgres' ? Math.round(pgMin + (pgMax - pgMin) * u) : kind === 'disk' ? (o.diskFullS ?? 60) : 0;
    return { at: round3(times[i]!), kind, pick: round3(pick), seconds: round3(seconds) };
  });
}

/** `--faults 12` (a count) or `--faults 2/min` (a rate over the window). */
export function faultCount(spec: string, windowS: number): number {
  const rate = /^(\d+(?:\.\d+)?)\s*\/\s*min$/.exec(spec.trim());
  if (rate) return Math.max(1, Math.round((Number(rate[1]) * windowS) / 60));
  const n = Number(spec);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--faults: expected a count (12) or a rate (2/min), got ${JSON.stringify(spec)}`);
  return n;
}

/** One line per fault, with its time in seconds for a window of `windowS`. */
export function formatSchedule(faults: readonly Fault[], windowS: number): string[] {
  return faults.map((f, i) => {
    const what = f.kind === 'kill' ? `new worker after ${f.seconds.toFixed(1)} s` : f.kind === 'postgres' ? `down ${f.seconds} s` : f.kind === 'disk' ? `full ${f.seconds} s` : '';
    return `${String(i + 1).padStart(2)}. t=${(f.at * windowS).toFixed(0).padStart(4)} s (${(f.at * 100).toFixed(1)}%)  ${f.kind.padEnd(8)} pick ${f.pick.toFixed(3)}${what ? `  ${what}` : ''}`;
  });
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
