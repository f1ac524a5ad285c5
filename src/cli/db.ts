import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { stopEmbedded } from '../infra/embedded.ts';
import { redactUrl } from '../infra/env.ts';
import { readMigrations } from '../infra/migrate.ts';

interface MigrateArgs {
  json: boolean;
}

const migrate: CommandModule<object, MigrateArgs> = {
  command: 'migrate',
  describe:
    'Apply pending migrations (prisma/migrations) to the database: DATABASE_URL, or the embedded one under SWEEP_HOME',
  builder: (y) =>
    y.option('json', {
      type: 'boolean',
      default: false,
      describe: 'Print { kind, url, applied, migrations } as JSON on stdout',
    }) as unknown as Argv<MigrateArgs>,
  handler: async (args) => {
    const log = args.json ? undefined : (msg: string) => process.stderr.write(`${msg}\n`);
    const db = await openDatabase({ migrate: true, log });
    try {
      const migrations = (await readMigrations()).migrationDirectories.map((d) => d.path);
      if (args.json) {
        const out = { kind: db.kind, url: redactUrl(db.url), applied: db.applied, migrations };
        process.stdout.write(`${JSON.stringify(out)}\n`);
      } else if (db.applied.length === 0) {
        process.stdout.write(`${db.label} is up to date (${migrations.length} migration(s)).\n`);
      } else {
        process.stdout.write(`applied ${db.applied.length} migration(s) to ${db.label}:\n`);
        for (const name of db.applied) process.stdout.write(`  ${name}\n`);
      }
    } finally {
      await db.close();
    }
  },
};

const stop: CommandModule = {
  command: 'stop',
  describe: "Stop the embedded database's background server (it also stops by itself when idle)",
  handler: async () => {
    const stopped = await stopEmbedded();
    process.stdout.write(stopped ? 'stopped the embedded database server.\n' : 'no embedded database server is running.\n');
  },
};

const db: CommandModule = {
  command: 'db <command>',
  describe: 'Database: apply migrations, stop the embedded server',
  builder: (y) => y.command(migrate).command(stop).demandCommand(1, 'Name a db command: migrate, stop'),
  handler: () => {},
};

export default db;
