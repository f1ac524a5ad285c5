/**
 * `sweep ensemble build|export|backfill|list`: from a finished sweep to a reader on disk.
 */
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { backfillPredictions, type BackfillResult } from '../ensemble/backfill.ts';
import { BUILD_DEFAULTS, buildEnsemble, METHODS, type Accuracy, type EnsembleMethod, type EnsembleSummary, type Gain } from '../ensemble/build.ts';
import { ensemblePlan, writeReader } from '../ensemble/export.ts';
import { findSweep } from '../track/store.ts';
import { UserError } from '../util/errors.ts';
import { readerOutOptions, type ReaderOutArgs } from './export.ts';

interface BuildArgs {
  sweep: string;
  'top-k': number;
  method: EnsembleMethod;
  metric?: string;
  name?: string;
  pool: number;
  rounds: number;
  json: boolean;
}

const pct = (x: number) => x.toFixed(4);
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

function accCells(a: Accuracy | null): string[] {
  return a ? [pct(a.char_acc), pct(a.seq_acc)] : ['-', '-'];
}

function gainLine(what: string, g: Gain): string {
  return `${what} ${signed(g.seq_acc)} sequence (95% interval ${signed(g.seq_lo)} to ${signed(g.seq_hi)}), ${signed(g.char_acc)} character`;
}

/** The build's one table: every member, the ensemble, and the gain over the best member. */
export function formatBuild(s: EnsembleSummary): string {
  const header = ['', 'weight', s.metric, 'val char', 'val seq', 'test char', 'test seq'];
  const rows = s.members.map((m) => [
    `#${m.index} ${m.trialId.slice(0, 10)}`,
    String(m.weight),
    m.metric === null ? '-' : pct(m.metric),
    ...accCells(m.val),
    ...accCells(m.test),
  ]);
  const ens = ['ensemble', String(s.members.reduce((a, m) => a + m.weight, 0)), '', ...accCells(s.ensemble.val), ...accCells(s.ensemble.test)];
  const best = s.members[0];
  const lines = [
    `ensemble ${s.name} of sweep ${s.sweep.name}: ${s.method}${s.method === 'greedy' ? ` (selected from the top ${s.pool})` : ''} over ${s.k} trial(s), ranked by ${s.metric}`,
    table([header, ...rows, ens]),
    `gain over the best single member (#${best.index} ${best.trialId.slice(0, 10)}):`,
    `  ${gainLine('validation', s.gain.val)}${s.method === 'greedy' ? ' (selected on: optimistic)' : ''}`,
    s.gain.test ? `  ${gainLine('test', s.gain.test)}` : '  test: no test set; the validation numbers above are the ones members were chosen on, hence optimistic',
    `next: sweep ensemble export ${s.sweep.name}/${s.name} --out DIR`,
  ];
  return `${lines.join('\n')}\n`;
}

const build: CommandModule<object, BuildArgs> = {
  command: 'build <sweep>',
  describe: 'Combine the top trials of a sweep into an ensemble and measure it',
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', demandOption: true, describe: 'sweep name or id' })
      .option('top-k', { type: 'number', default: BUILD_DEFAULTS.topK, describe: 'members: the top K finished trials (vote, soft)' })
      .option('method', { type: 'string', choices: METHODS, default: BUILD_DEFAULTS.method, describe: 'vote: majority per character; soft: average probabilities; greedy: ensemble selection on validation' })
      .option('metric', { type: 'string', describe: 'rank trials by this result key (default: the sweep metric)' })
      .option('name', { type: 'string', describe: 'ensemble name (default: METHOD-topK or greedy-poolN); the same name is replaced' })
      .option('pool', { type: 'number', default: BUILD_DEFAULTS.pool, describe: 'greedy: candidates, the top N trials' })
      .option('rounds', { type: 'number', default: BUILD_DEFAULTS.rounds, describe: 'greedy: members added (with replacement)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the ensemble, members and accuracies as JSON' }) as unknown as Argv<BuildArgs>,
  handler: async (a) => {
    const db = await openDatabase();
    try {
      const s = await buildEnsemble(db.prisma, { sweep: a.sweep, method: a.method, topK: a['top-k'], pool: a.pool, rounds: a.rounds, metric: a.metric, name: a.name });
      process.stdout.write(a.json ? `${JSON.stringify(s)}\n` : formatBuild(s));
    } finally {
      await db.close();
    }
  },
};

interface ExportArgs extends ReaderOutArgs {
  ensemble: string;
}

const exportCmd: CommandModule<object, ExportArgs> = {
  command: 'export <ensemble>',
  describe: 'Write an ensemble as a self-contained reader directory',
  builder: (y: Argv) =>
    readerOutOptions(y.positional('ensemble', { type: 'string', demandOption: true, describe: 'SWEEP/NAME, a name (unique across sweeps) or an id' })) as unknown as Argv<ExportArgs>,
  handler: async (a) => {
    const db = await openDatabase();
    try {
      const { id, plan } = await ensemblePlan(db.prisma, a.ensemble);
      const manifest = writeReader(plan, a.out, { force: a.force });
      await db.prisma.ensemble.update({ where: { id }, data: { path: a.out } });
      process.stdout.write(
        a.json ? `${JSON.stringify(manifest)}\n` : `wrote ${a.out}: ${plan.method} reader of ${plan.members.length} member(s), ${Object.keys(manifest.files).length + 1} files\nnext: sweep predict ${a.out} IMAGE...\n`,
      );
    } finally {
      await db.close();
    }
  },
};

interface SweepArgs {
  sweep: string;
  json: boolean;
}

export function formatBackfill(r: BackfillResult): string {
  const lines = [`${r.sweep}: ${r.finished} finished trial(s), ${r.alreadyStored} already had stored predictions, ${r.stored.length} stored now, ${r.missing.length} not found`];
  for (const s of r.stored) lines.push(`  stored #${s.index} ${s.trialId} (${s.splits.join(', ')}) from ${s.from}`);
  for (const m of r.missing) lines.push(`  missing #${m.index} ${m.trialId}: ${m.problem} (looked at ${m.lookedAt.join(', ')})`);
  return `${lines.join('\n')}\n`;
}

const backfill: CommandModule<object, SweepArgs> = {
  command: 'backfill <sweep>',
  describe: "Store finished trials' predictions from their artifact directories",
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', demandOption: true, describe: 'sweep name or id' })
      .option('json', { type: 'boolean', default: false, describe: 'print what was stored and what was not found as JSON' }) as unknown as Argv<SweepArgs>,
  handler: async (a) => {
    const db = await openDatabase();
    try {
      const r = await backfillPredictions(db.prisma, a.sweep);
      process.stdout.write(a.json ? `${JSON.stringify(r)}\n` : formatBackfill(r));
      if (r.missing.length > 0) process.exitCode = 1;
    } finally {
      await db.close();
    }
  },
};

const list: CommandModule<object, { sweep?: string; json: boolean }> = {
  command: 'list [sweep]',
  describe: 'List the ensembles built (of one sweep, or all)',
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', describe: 'sweep name or id' })
      .option('json', { type: 'boolean', default: false, describe: 'print as JSON' }) as unknown as Argv<{ sweep?: string; json: boolean }>,
  handler: async (a) => {
    const db = await openDatabase();
    try {
      let sweepId: string | undefined;
      if (a.sweep) {
        const s = await findSweep(db.prisma, a.sweep);
        if (!s) throw new UserError(`no sweep named ${JSON.stringify(a.sweep)}; \`sweep status\` lists them`);
        sweepId = s.id;
      }
      const rows = await db.prisma.ensemble.findMany({ where: sweepId ? { sweepId } : {}, include: { sweep: { select: { name: true } } }, orderBy: { createdAt: 'asc' } });
      const out = rows.map((e) => {
        const s = e.summary as unknown as EnsembleSummary | null;
        return { id: e.id, sweep: e.sweep.name, name: e.name, method: e.method, k: e.k, metric: e.metric, path: e.path, createdAt: e.createdAt.toISOString(), ensemble: s?.ensemble ?? null, gain: s?.gain ?? null };
      });
      if (a.json) process.stdout.write(`${JSON.stringify(out)}\n`);
      else if (out.length === 0) process.stdout.write('no ensembles yet; `sweep ensemble build SWEEP` makes one\n');
      else {
        const head = ['ensemble', 'method', 'k', 'val seq', 'test seq', 'gain (test seq)', 'exported to'];
        const cells = out.map((e) => [
          `${e.sweep}/${e.name}`,
          e.method,
          String(e.k),
          e.ensemble ? pct(e.ensemble.val.seq_acc) : '-',
          e.ensemble?.test ? pct(e.ensemble.test.seq_acc) : '-',
          e.gain?.test ? signed(e.gain.test.seq_acc) : '-',
          e.path ?? '-',
        ]);
        process.stdout.write(`${table([head, ...cells])}\n`);
      }
    } finally {
      await db.close();
    }
  },
};

const command: CommandModule<object, object> = {
  command: 'ensemble <command>',
  describe: 'Build, export and list voting ensembles of a sweep\'s best trials',
  builder: (y: Argv) =>
    y
      .command(build as unknown as CommandModule<object, object>)
      .command(exportCmd as unknown as CommandModule<object, object>)
      .command(backfill as unknown as CommandModule<object, object>)
      .command(list as unknown as CommandModule<object, object>)
      .demandCommand(1, 'Name an ensemble command: build, export, backfill or list'),
  handler: () => {},
};

export default command;
