/**
 * The scheduler's own costs, against real Postgres and Redis:
 *
 *   1. Launch: a 10,000-trial grid expanded, stored (Sweep + Trial rows) and enqueued (one
 *      job each), broken into its steps; then the same launch again (nothing new). Goal: the
 *      first launch's store + enqueue under 2 s on 2 cores.
 *   2. Dispatch overhead per trial: job picked up -> trainer starts -> result stored, measured
 *      in a worker running a NO-OP TRAINER STAND-IN (the `noop` TrainerKind: it reports one
 *      epoch of made-up metrics and returns, so the worker's own path is all that is timed:
 *      claim, IPC to the kept trial process, one epoch's metric INSERT + heartbeat, result
 *      UPDATE + artifacts, queue acknowledgement). Goal: median under 20 ms.
 *
 *   npx tsx bench/scheduler.ts [--trials 10000] [--dispatch 200]
 *
 * Uses a database of its own on the Postgres at TEST_POSTGRES_URL (default
 * postgresql://postgres@127.0.0.1:5432/postgres) and a queue prefix of its own on
 * REDIS_URL (default redis://127.0.0.1:6379); both are removed at the end. The table goes to
 * bench/results/scheduler.md and .json.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import pg from 'pg';
import { openDatabase } from '../src/infra/db.ts';
import { connectRedis } from '../src/infra/redis.ts';
import { expandSweep } from '../src/scheduler/expand.ts';
import { launchSweep } from '../src/scheduler/launch.ts';
import { enqueueTrials, openTrialQueue } from '../src/worker/queue.ts';
import { loadSweepFile } from '../src/sweep/index.ts';
import { insertTrials, queuedTrialIds, saveSweep } from '../src/track/store.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';
import { withAbsolutePaths } from '../src/sweep/data-plan.ts';
import { startWorker, type TrialTiming } from '../src/worker/worker.ts';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '10000' }, dispatch: { type: 'string', default: '200' } } });
const trials = Number(values.trials);
const dispatchN = Number(values.dispatch);
const side = Math.round(Math.pow(trials, 1 / 4));
if (side ** 4 !== trials) throw new Error(`--trials must be a fourth power (10000 = 10^4), got ${trials}`);

const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const id = `bench_${process.pid}`;
const dbName = `sweep_${id}`;
const dbUrl = new URL(ADMIN_URL);
dbUrl.pathname = `/${dbName}`;
const dir = mkdtempSync(path.join(os.tmpdir(), 'sweep-bench-'));
const env = { DATABASE_URL: dbUrl.toString(), REDIS_URL, SWEEP_HOME: path.join(dir, 'home'), SWEEP_QUEUE_PREFIX: `sweep-${id}`, SWEEP_QUEUE: 'trials' };

const list = (f: (i: number) => number) => `[${Array.from({ length: side }, (_, i) => f(i)).join(', ')}]`;
const gridFile = path.join(dir, 'grid.yaml');
writeFileSync(
  gridFile,
  [
    'name: bench-grid',
    'method: grid',
    'train: {generate: {style: railway, count: 100, seed: 1}}',
    'parameters:',
    `  patience: {values: ${list((i) => i + 1)}}`,
    `  alpha: {values: ${list((i) => +(1e-5 * (i + 1)).toPrecision(3))}}`,
    `  dropout: {values: ${list((i) => +(i / (side + 1)).toFixed(3))}}`,
    `  lr: {values: ${list((i) => +(1e-4 * (i + 1)).toPrecision(3))}}`,
  ].join('\n'),
);
const dispatchFile = path.join(dir, 'dispatch.yaml');
writeFileSync(
  dispatchFile,
  ['name: bench-dispatch', 'method: grid', 'train: {generate: {style: railway, count: 100, seed: 1}}', 'parameters:', `  seed: {values: [${Array.from({ length: dispatchN }, (_, i) => i).join(', ')}]}`].join('\n'),
);

const ms = (t0: number) => performance.now() - t0;
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const rows: Array<[string, string, string]> = [];
/** The numbers behind the rows, in ms, for the JSON file. */
const data: Record<string, unknown> = { trials, dispatchTrials: dispatchN };
const started = runStart();
const row = (what: string, value: string, note = '') => rows.push([what, value, note]);

async function main() {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const db = await openDatabase({ env, migrate: true });
  const redis = connectRedis({ url: REDIS_URL });
  const queue = openTrialQueue(redis, env);
  try {
    // 1. Launch, step by step.
    let t0 = performance.now();
    const spec = await loadSweepFile(gridFile, { trainer: true });
    const expanded = expandSweep(spec);
    const tExpand = ms(t0);
    t0 = performance.now();
    const sweep = await saveSweep(db.prisma, spec, withAbsolutePaths(spec));
    const created = await insertTrials(db.prisma, sweep.id, expanded);
    const tStore = ms(t0);
    t0 = performance.now();
    const queued = await queuedTrialIds(db.prisma, sweep.id);
    const tRead = ms(t0);
    t0 = performance.now();
    const enqueued = await enqueueTrials(queue, redis, spec.name, queued);
    const tEnqueue = ms(t0);
    if (created !== trials || enqueued !== trials) throw new Error(`expected ${trials} new trials and jobs, got ${created} and ${enqueued}`);
    row(`parse + expand ${trials} trials`, `${tExpand.toFixed(0)} ms`);
    row(`store: Sweep + ${trials} Trial rows`, `${tStore.toFixed(0)} ms`, 'INSERT ... unnest, 1000 rows a statement');
    row('read back the queued ids', `${tRead.toFixed(0)} ms`);
    row(`enqueue ${trials} jobs`, `${tEnqueue.toFixed(0)} ms`, 'EXISTS pipeline + addBulk, 1000 a chunk');
    Object.assign(data, { expandMs: tExpand, storeMs: tStore, readMs: tRead, enqueueMs: tEnqueue, launchMs: tExpand + tStore + tRead + tEnqueue });
    row('launch total (expand + store + enqueue)', `${(tExpand + tStore + tRead + tEnqueue).toFixed(0)} ms`, 'goal <= 2000 ms');
    t0 = performance.now();
    const again = await launchSweep({ file: gridFile, env });
    data.launchAgainMs = ms(t0);
    row('launch again, in-process (nothing new)', `${ms(t0).toFixed(0)} ms`, `new ${again.new}, enqueued ${again.enqueued}; includes connecting and the migration check`);
    await queue.obliterate({ force: true });

    // 2. Dispatch overhead with the no-op trainer stand-in.
    const d = await launchSweep({ file: dispatchFile, env });
    const timings: TrialTiming[] = [];
    const worker = await startWorker({ env, trainer: 'noop', exitWhenIdle: true, idlePollMs: 500, log: () => {}, onTrial: (t) => void timings.push(t) });
    await worker.done;
    const ok = timings.filter((t) => t.outcome === 'finished' && t.startedAt !== null && t.trainedAt !== null);
    if (ok.length !== d.trials) throw new Error(`expected ${d.trials} finished no-op trials, got ${ok.length}`);
    // The first trial also starts the kept trial process; it is reported apart.
    const [first, ...rest] = [...ok].sort((a, b) => a.pickedAt - b.pickedAt);
    const toStart = rest.map((t) => t.startedAt! - t.pickedAt);
    const toStore = rest.map((t) => t.storedAt - t.trainedAt!);
    const total = rest.map((t) => t.storedAt - t.pickedAt);
    const gaps = rest.map((t, i) => t.pickedAt - (i === 0 ? first : rest[i - 1]).storedAt);
    const q = (xs: number[]) => ({ median: quantile(xs, 0.5), p90: quantile(xs, 0.9) });
    data.dispatch = {
      trials: rest.length,
      pickedToStartMs: q(toStart),
      noopTrainerMs: q(rest.map((t) => t.trainedAt! - t.startedAt!)),
      trainedToStoredMs: q(toStore),
      pickedToStoredMs: q(total),
      storedToNextPickedMs: q(gaps),
      firstTrialMs: first.storedAt - first.pickedAt,
    };
    const f = (xs: number[]) => `${quantile(xs, 0.5).toFixed(1)} ms (p90 ${quantile(xs, 0.9).toFixed(1)})`;
    row('dispatch: picked up -> trainer starts', f(toStart), 'claim (UPDATE ... RETURNING), sweep read, IPC');
    row('dispatch: no-op trainer (one epoch stored)', f(rest.map((t) => t.trainedAt! - t.startedAt!)), 'metric INSERT + heartbeat, IPC round trip');
    row('dispatch: trainer done -> result stored', f(toStore), 'result UPDATE in a transaction');
    row('dispatch: picked up -> result stored', f(total), `NO-OP TRAINER STAND-IN; ${rest.length} trials; goal median <= 20 ms`);
    row('queue: result stored -> next job picked up', f(gaps), 'job acknowledged, next fetched');
    row('first trial (starts the trial process)', `${(first.storedAt - first.pickedAt).toFixed(0)} ms`);
    const cpu = os.cpus();
    console.log(`\nmachine: ${cpu[0]?.model ?? 'unknown'}, ${cpu.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c].length), ['step', 'time', 'note'][c].length));
    const fmt = (r: string[]) => `| ${r.map((x, c) => x.padEnd(widths[c])).join(' | ')} |`;
    console.log(fmt(['step', 'time', 'note']));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of rows) console.log(fmt(r));
    writeResults({
      name: 'scheduler',
      title: "The scheduler's own costs: launch and per-trial dispatch",
      ...started,
      markdown: [
        `Against the real Postgres and Redis on this machine. Launch: a ${trials.toLocaleString('en-US')}-trial grid expanded, stored and enqueued, step by step; then launched again (nothing new). ` +
          `Dispatch: ${dispatchN} trials through a worker running the NO-OP TRAINER STAND-IN (one epoch of made-up metrics), so only the worker's own path is timed; the first trial, which starts the trial process, is reported apart.`,
        '',
        markdownTable(['step', 'time', 'note'], rows),
      ].join('\n'),
      data,
    });
  } finally {
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    redis.disconnect();
    await db.close();
    const a = new pg.Client({ connectionString: ADMIN_URL });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await a.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

