/** `sweep export TRIAL --out DIR`: one finished trial as a reader, in the ensemble's format. */
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { trialPlan, writeReader } from '../ensemble/export.ts';
import { resolveTrialRef } from '../track/trial-view.ts';

interface ExportArgs extends ReaderOutArgs {
  trial: string;
}

/** What both export commands take: where to write the reader, and how to report it. */
export interface ReaderOutArgs {
  out: string;
  force: boolean;
  json: boolean;
}

export function readerOutOptions<T>(y: Argv<T>): Argv<T & ReaderOutArgs> {
  return y
    .option('out', { type: 'string', demandOption: true, describe: 'directory to write (must be empty or absent)' })
    .option('force', { type: 'boolean', default: false, describe: 'replace a non-empty --out' })
    .option('json', { type: 'boolean', default: false, describe: 'print the manifest as JSON' }) as unknown as Argv<T & ReaderOutArgs>;
}

const command: CommandModule<object, ExportArgs> = {
  command: 'export <trial>',
  describe: 'Write one finished trial as a self-contained reader directory',
  builder: (y: Argv) =>
    readerOutOptions(y.positional('trial', { type: 'string', demandOption: true, describe: 'trial id, id prefix (6+) or SWEEP#INDEX' })) as unknown as Argv<ExportArgs>,
  handler: async (a) => {
    const db = await openDatabase();
    try {
      const plan = await trialPlan(db.prisma, await resolveTrialRef(db.prisma, a.trial));
      const manifest = writeReader(plan, a.out, { force: a.force });
      process.stdout.write(a.json ? `${JSON.stringify(manifest)}\n` : `wrote ${a.out}: reader of trial ${plan.members[0].trialId}\nnext: sweep predict ${a.out} IMAGE...\n`);
    } finally {
      await db.close();
    }
  },
};

export default command;
