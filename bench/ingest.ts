/**
 * Metric points into Postgres: Prisma's createMany with skipDuplicates, 1,000 rows a statement
 * (how store.ts's recordMetrics wrote them up to commit a0b6e0c; copied here so the baseline
 * stays put) against upsertMetrics (ingest.ts: INSERT ... SELECT FROM unnest(...) ON CONFLICT
 * DO UPDATE, 5,000 rows a statement), at batches of 1 epoch (what the worker writes after every
 * epoch), 100 and 1,000 epochs (finishTrial's whole history, an import). Goal: >= 20,000
 * points/s batched.
 *
 * A row is what epochRows makes of a realistic EpochMetrics (9 keys; 12 with --test-metrics,
 * as with testEveryEpoch). Every run writes fresh trials into a table that keeps growing, then
 * replays the same rows twice: identical values (finishTrial re-storing the history), then
 * changed values (a resumed trial re-running its epochs). After each replay the rows are read
 * back: their number must not change, and the changed values must have been stored (a replayed
 * epoch overwrites) — the table says what each statement did.
 *
 *   npx tsx bench/ingest.ts [--runs 3] [--epochs 3000] [--single 300] [--test-metrics] [--json]
 *
 * --epochs: epochs written per run at batches of 100 and 1,000; --single: epochs per run at one
 * epoch a call. Each cell is the median of --runs runs. Uses a database of its own on the
 * Postgres at SWEEP_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres), dropped
 * at the end. The table and the raw numbers go to bench/results/ingest.md and .json.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openDatabase, type PrismaClient } from '../src/infra/db.ts';
import { upsertMetrics } from '../src/track/ingest.ts';
import { epochRows, type MetricRow } from '../src/track/metrics.ts';
import type { EpochMetrics } from '../src/train/trainer.ts';
import { createTestDatabase, TEST_PG_URL } from '../support/pg.ts';
import { runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    epochs: { type: 'string', default: '3000' },
    single: { type: 'string', default: '300' },
    'test-metrics': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(a.runs);
const epochsPerRun = Number(a.epochs);
const singlePerRun = Number(a.single);
for (const [k, v] of [['runs', runs], ['epochs', epochsPerRun], ['single', singlePerRun]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${a[k]}`);
}

const EPOCHS_PER_TRIAL = 20; // 10 pretrain + 10 gru, the trainer's defaults
const BATCHES = [1, 100, 1000];

/** recordMetrics as it was at a0b6e0c: a replayed point keeps the value already stored. */
async function createManySkipDuplicates(prisma: PrismaClient, rows: readonly MetricRow[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < rows.length; i += 1000) {
    n += (await prisma.metricPoint.createMany({ data: rows.slice(i, i + 1000) as MetricRow[], skipDuplicates: true })).count;
  }
  return n;
}

type Statement = 'createMany' | 'upsertMetrics';
const STATEMENTS: Record<Statement, { fn: (p: PrismaClient, rows: readonly MetricRow[]) => Promise<number>; sql: string }> = {
  createMany: { fn: createManySkipDuplicates, sql: 'prisma.metricPoint.createMany({ skipDuplicates: true }): INSERT ... VALUES (5 parameters a row) ON CONFLICT DO NOTHING, 1,000 rows/statement (recordMetrics up to a0b6e0c)' },
  upsertMetrics: { fn: upsertMetrics, sql: 'src/track/ingest.ts: INSERT ... SELECT FROM unnest($1..$5) ON CONFLICT DO UPDATE ... WHERE value IS DISTINCT FROM, 5,000 rows/statement' },
};

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (m: string) => process.stderr.write(`${m}\n`);

/** A plausible epoch of a trial (numbers of the size the trainer reports). */
function epochMetrics(e: number, seed: number): EpochMetrics {
  const phase = e < EPOCHS_PER_TRIAL / 2 ? 'pretrain' : 'gru';
  const x = (k: number) => Math.abs(Math.sin(seed * 7.31 + e * 1.7 + k));
  const m: EpochMetrics = {
    phase,
    epoch: e % (EPOCHS_PER_TRIAL / 2),
    loss: 21.5 * x(1),
    char_acc: x(2),
    seq_acc: x(3) ** 6,
    val_loss: 21.5 * x(4),
    val_char_acc: x(5),
    val_seq_acc: x(6) ** 6,
    val_char_acc_by_position: [x(7), x(8), x(9), x(10), x(11), x(12)],
    lr: 1e-3 * 0.9 ** (e % (EPOCHS_PER_TRIAL / 2)),
    images_per_s: 15 + 10 * x(13),
    seconds: 100 + 20 * x(14),
  };
  if (a['test-metrics']) Object.assign(m, { test_loss: 21.5 * x(15), test_char_acc: x(16), test_seq_acc: x(17) ** 6 });
  return m;
}

let trialCounter = 0;
/** `epochs` epochs over new trials (EPOCHS_PER_TRIAL each), as rows grouped by epoch. */
async function freshEpochs(prisma: PrismaClient, sweepId: string, epochs: number, valueSeed: number): Promise<MetricRow[][]> {
  const trials = Math.ceil(epochs / EPOCHS_PER_TRIAL);
  const ids = Array.from({ length: trials }, () => `bench-trial-${++trialCounter}`);
  await prisma.trial.createMany({ data: ids.map((id, i) => ({ id, sweepId, index: trialCounter * 10 + i, params: {}, seed: 0 })) });
  const out: MetricRow[][] = [];
  for (let i = 0; i < epochs; i++) {
    const id = ids[Math.floor(i / EPOCHS_PER_TRIAL)];
    out.push(epochRows(id, epochMetrics(i % EPOCHS_PER_TRIAL, valueSeed + i)));
  }
  return out;
}

/**
 * CPU seconds used so far by each server process (backend) connected to the database, from
 * /proc (Postgres runs here, on this machine). Wall time on a shared machine says as much about
 * the other jobs as about the statement; CPU time does not.
 */
async function serverCpu(admin: pg.Client, dbName: string): Promise<Map<number, number>> {
  const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [dbName]);
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      // utime and stime are fields 14 and 15, counted from the end of the command name (it may hold spaces).
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(pid, (Number(f[11]) + Number(f[12])) / CLOCK_TICKS);
    } catch {
      /* gone, or not on this machine */
    }
  }
  return out;
}
const CLOCK_TICKS = 100; // USER_HZ on Linux

interface Timing {
  wall: number;
  /** This process (Prisma builds the statements here). */
  clientCpu: number;
  /** The Postgres backends serving it. */
  serverCpu: number;
}

let measureServer: () => Promise<Map<number, number>> = async () => new Map();

/** Writes the epochs `batch` epochs a call. */
async function write(fn: (p: PrismaClient, rows: readonly MetricRow[]) => Promise<number>, prisma: PrismaClient, epochs: MetricRow[][], batch: number): Promise<Timing> {
  const s0 = await measureServer();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < epochs.length; i += batch) await fn(prisma, epochs.slice(i, i + batch).flat());
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const s1 = await measureServer();
  let server = 0;
  for (const [pid, t] of s1) server += t - (s0.get(pid) ?? 0);
  return { wall, clientCpu: (c.user + c.system) / 1e6, serverCpu: server };
}

/** What the table holds for these rows' trials: how many, and how many carry the given values. */
async function check(prisma: PrismaClient, rows: MetricRow[]): Promise<{ count: number; matching: number }> {
  const trialIds = [...new Set(rows.map((r) => r.trialId))];
  const stored = await prisma.metricPoint.findMany({ where: { trialId: { in: trialIds } }, select: { trialId: true, phase: true, epoch: true, key: true, value: true } });
  const want = new Map(rows.map((r) => [`${r.trialId}/${r.phase}/${r.epoch}/${r.key}`, r.value]));
  let matching = 0;
  for (const s of stored) if (want.get(`${s.trialId}/${s.phase}/${s.epoch}/${s.key}`) === s.value) matching++;
  return { count: stored.length, matching };
}

interface Cell {
  statement: Statement;
  batchEpochs: number;
  rowsPerBatch: number;
  calls: number;
  rows: number;
  /** Points per wall second, one per run. */
  fresh: number[];
  replaySame: number[];
  replayChanged: number[];
  /** Microseconds of CPU per fresh point, client and server, one per run. */
  clientUs: number[];
  serverUs: number[];
  /** Rows after the replays, against rows written once. */
  countOk: boolean;
  /** Changed values stored after the changed replay, out of rows. */
  overwritten: number;
}

async function main() {
  const started = runStart();
  const startLoad = loadavg();
  const startedAt = started.startedAt;
  const tdb = await createTestDatabase('sweep_bench_ingest');
  const db = await openDatabase({ env: { DATABASE_URL: tdb.url }, migrate: true });
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  measureServer = () => serverCpu(admin, tdb.name);
  const { prisma } = db;
  const cells: Cell[] = [];
  let pgVersion = '';
  let keys = 0;
  try {
    pgVersion = (await prisma.$queryRaw<{ v: string }[]>`SELECT current_setting('server_version') AS v`)[0].v;
    const sweep = await prisma.sweep.create({ data: { name: 'bench-ingest', method: 'grid', spec: {}, metricName: 'val_seq_acc', metricGoal: 'maximize' }, select: { id: true } });
    keys = epochRows('x', epochMetrics(0, 0)).length;
    log(`ingest bench: ${keys} points per epoch, ${runs} runs, load ${startLoad}`);

    // Warm-up: connections, Prisma's query plans, Postgres' catalog caches.
    for (const s of Object.keys(STATEMENTS) as Statement[]) {
      const w = await freshEpochs(prisma, sweep.id, 40, 0);
      await write(STATEMENTS[s].fn, prisma, w, 1);
      await write(STATEMENTS[s].fn, prisma, w, 40);
    }

    for (const batch of BATCHES) {
      for (const statement of Object.keys(STATEMENTS) as Statement[]) {
        const fn = STATEMENTS[statement].fn;
        const epochs = batch === 1 ? singlePerRun : Math.max(batch, epochsPerRun);
        const cell: Cell = { statement, batchEpochs: batch, rowsPerBatch: batch * keys, calls: Math.ceil(epochs / batch), rows: epochs * keys, fresh: [], replaySame: [], replayChanged: [], clientUs: [], serverUs: [], countOk: true, overwritten: Number.POSITIVE_INFINITY };
        for (let r = 0; r < runs; r++) {
          const data = await freshEpochs(prisma, sweep.id, epochs, 1000 * (r + 1));
          const rows = data.flat();
          const fresh = await write(fn, prisma, data, batch);
          cell.fresh.push(rows.length / fresh.wall);
          cell.clientUs.push((1e6 * fresh.clientCpu) / rows.length);
          cell.serverUs.push((1e6 * fresh.serverCpu) / rows.length);
          cell.replaySame.push(rows.length / (await write(fn, prisma, data, batch)).wall);
          const changed = data.map((ep) => ep.map((row) => ({ ...row, value: row.value + 1 })));
          cell.replayChanged.push(rows.length / (await write(fn, prisma, changed, batch)).wall);
          const c = await check(prisma, changed.flat());
          if (c.count !== rows.length) {
            cell.countOk = false;
            log(`  ${statement} batch ${batch}: ${c.count} rows stored for ${rows.length} points`);
          }
          cell.overwritten = Math.min(cell.overwritten, c.matching);
          log(`  ${statement} x${batch} run ${r + 1}: fresh ${cell.fresh.at(-1)!.toFixed(0)}/s (CPU ${cell.clientUs.at(-1)!.toFixed(0)} + ${cell.serverUs.at(-1)!.toFixed(0)} us/point), replay ${cell.replaySame.at(-1)!.toFixed(0)}/s, changed ${cell.replayChanged.at(-1)!.toFixed(0)}/s, ${c.count} rows, ${c.matching} with the new value (load ${loadavg()})`);
        }
        cells.push(cell);
      }
    }
  } finally {
    await admin.end();
    await db.close();
    await tdb.drop();
  }
  const endLoad = loadavg();

  const cpu = os.cpus();
  const machine = `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL ${pgVersion} on 127.0.0.1`;
  const report = {
    machine,
    startedAt: startedAt.toISOString(),
    loadAverage: { start: startLoad, end: endLoad },
    command: `npx tsx bench/ingest.ts ${process.argv.slice(2).join(' ')}`.trim(),
    cells: cells.map((c) => ({
      ...c,
      median: { fresh: median(c.fresh), replaySame: median(c.replaySame), replayChanged: median(c.replayChanged), clientUs: median(c.clientUs), serverUs: median(c.serverUs) },
    })),
  };
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const table = [
    '| statement | batch (epochs) | rows/call | calls/run | fresh points/s | ms/call | CPU µs/point (client + server) | points per CPU-s | replay, same values, points/s | replay, new values, points/s | rows after replays | replayed epoch |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of cells) {
    const fresh = median(c.fresh);
    const replayed = c.overwritten === c.rows ? 'overwritten' : c.overwritten === 0 ? 'old value kept' : `${c.overwritten}/${c.rows} overwritten`;
    table.push(
      `| ${c.statement} | ${c.batchEpochs} | ${n(c.rowsPerBatch)} | ${c.calls} | ${n(fresh)} | ${((1000 * c.rowsPerBatch) / fresh).toFixed(1)} | ` +
        `${median(c.clientUs).toFixed(0)} + ${median(c.serverUs).toFixed(0)} | ${n(1e6 / median(c.clientUs.map((u, i) => u + c.serverUs[i])))} | ` +
        `${n(median(c.replaySame))} | ${n(median(c.replayChanged))} | ${c.countOk ? 'unchanged (no duplicates)' : 'CHANGED'} | ${replayed} |`,
    );
  }
  const statements = Object.entries(STATEMENTS).map(([s, v]) => `${s}: ${v.sql}`);
  writeResults({
    name: 'ingest',
    title: 'Metric points into Postgres: createMany against upsertMetrics',
    ...started,
    markdown: [
      `${keys} points an epoch (${a['test-metrics'] ? 'with' : 'without'} test metrics); points/s are the median of ${runs} run(s) on PostgreSQL ${pgVersion} on 127.0.0.1. ` +
        `Fresh rows first, then the same rows replayed with the same values and with changed values; the last two columns say what the table held afterwards. Goal: >= 20,000 points/s batched.`,
      '',
      ...table,
      '',
      ...statements.map((x) => `- ${x}`),
    ].join('\n'),
    data: report,
  });
  if (a.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  console.log(`\nmachine: ${machine}`);
  console.log(`load average (1, 5, 15 min): ${startLoad} at start, ${endLoad} at end`);
  console.log(`points/s, median of ${runs} runs; ${report.command}\n`);
  for (const line of table) console.log(line);
  console.log('');
  for (const line of statements) console.log(line);
}

await main();
