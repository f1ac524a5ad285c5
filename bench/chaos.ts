/**
 * The chaos drill: a sweep of real tiny trials run by `sweep worker` processes, first
 * undisturbed, then again while a seeded schedule injects faults at random times (kill -9 of a
 * worker and its trial process, a Redis restart, Postgres stopped for 10-40 s, a running trial's
 * checkpoint truncated, the artifact disk filled for a minute). Then: faults by kind, trials
 * finished or failed (and why), metric points and W&B lines once each with the undisturbed
 * run's values, final metrics equal, the outbox delivered, wall time against the undisturbed run.
 *
 *   npx tsx bench/chaos.ts [--seed 1] [--trials 50] [--workers 4] [--faults 12 | --faults 2/min]
 *                          [--kinds kill,redis,postgres,truncate,disk] [--pretrain 1] [--gru 2]
 *                          [--images 48] [--pg-down 10-40] [--disk-full 60] [--disk-mib N]
 *                          [--out bench/out/chaos]
 *
 * Everything runs on servers of its own (support/chaos/servers.ts): a private Postgres cluster,
 * a private redis-server and the fake W&B server; the machine's shared Postgres and Redis are
 * never touched. The artifact disk is a tmpfs mounted on the chaos run's trials directory
 * (root only; without it the disk faults are skipped, and the page says so).
 * Writes bench/results/chaos.md and .json.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runChaosDrill } from '../support/chaos/drill.ts';
import { reportMarkdown } from '../support/chaos/report.ts';
import { FAULT_KINDS, type FaultKind } from '../support/chaos/schedule.ts';
import { runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    trials: { type: 'string', default: '50' },
    workers: { type: 'string', default: '4' },
    faults: { type: 'string', default: '12' },
    kinds: { type: 'string', default: FAULT_KINDS.join(',') },
    pretrain: { type: 'string', default: '1' },
    gru: { type: 'string', default: '2' },
    images: { type: 'string', default: '48' },
    'disk-mib': { type: 'string' },
    'pg-down': { type: 'string', default: '10-40' },
    'disk-full': { type: 'string', default: '60' },
    out: { type: 'string', default: 'bench/out/chaos' },
  },
});

const kinds = a.kinds!.split(',').map((s) => s.trim()).filter(Boolean);
for (const k of kinds) if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`--kinds: unknown fault ${JSON.stringify(k)}; expected some of ${FAULT_KINDS.join(', ')}`);
const int = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a whole number, got ${JSON.stringify(v)}`);
  return n;
};

const pgDownParts = a['pg-down']!.split('-').map((x) => int('pg-down', x));
const pgDown: [number, number] = [pgDownParts[0]!, pgDownParts.at(-1)!];
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);
const started = runStart();
const report = await runChaosDrill({
  seed: int('seed', a.seed),
  trials: int('trials', a.trials),
  workers: int('workers', a.workers),
  faults: a.faults!,
  kinds: kinds as FaultKind[],
  pretrain: int('pretrain', a.pretrain),
  gru: int('gru', a.gru),
  images: int('images', a.images),
  diskMiB: a['disk-mib'] === undefined ? undefined : int('disk-mib', a['disk-mib']),
  postgresDownS: pgDown,
  diskFullS: int('disk-full', a['disk-full']),
  outDir: path.resolve(a.out!),
  log,
});
const markdown = reportMarkdown(report);
writeResults({ name: 'chaos', title: 'Chaos drill: a sweep while faults come at random times', ...started, markdown, data: report });
console.log(markdown);
process.exitCode = report.passed ? 0 : 1;
