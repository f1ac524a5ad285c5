/**
 * `sweep report SWEEP [--out FILE] [--json]`: one self-contained HTML page about a sweep (its
 * definition, parameters against the metric, learning curves, accuracy by position, every
 * trial, failures, ensembles, validation CAPTCHAs read by the best model). Reads only.
 */
import type { Argv, CommandModule } from 'yargs';
import { UserError } from '../util/errors.ts';

interface ReportArgs {
  sweep?: string;
  out?: string;
  json: boolean;
}

const command: CommandModule<object, ReportArgs> = {
  command: 'report <sweep>',
  describe: 'Write one self-contained HTML report of a sweep: parameters, learning curves, trials, failures, ensembles',
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', describe: 'sweep name or id' })
      .option('out', { type: 'string', describe: 'HTML file to write (default: <sweep>-report.html)' })
      .option('json', { type: 'boolean', default: false, describe: 'print { out, bytes, trials } as JSON' }) as unknown as Argv<ReportArgs>,
  handler: async (args) => {
    if (!args.sweep) throw new UserError('name a sweep: `sweep status` lists them');
    // Loaded here so that `sweep report --help` stays quick.
    const { openDatabase } = await import('../infra/db.ts');
    const { writeSweepReport } = await import('../report/write.ts');
    const db = await openDatabase();
    try {
      const r = await writeSweepReport(db.prisma, String(args.sweep), { out: args.out });
      process.stdout.write(args.json ? `${JSON.stringify(r)}\n` : `wrote ${r.out} (${(r.bytes / 1024 ** 2).toFixed(1)} MB, ${r.trials} trial(s)); open it in a browser\n`);
    } finally {
      await db.close();
    }
  },
};

export default command;
