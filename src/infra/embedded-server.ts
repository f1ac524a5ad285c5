/**
 * The embedded database's server process (see embedded.ts for the contract). Started
 * detached by a client as `node [--import tsx] embedded-server.{js,ts} <SWEEP_HOME>`; logs to
 * $SWEEP_HOME/db.log.
 */
import { embeddedPaths, IDLE_EXIT_MS, serveEmbedded, type LockInfo } from './embedded.ts';
import { tryAcquire } from './lockfile.ts';

const home = process.argv[2];
if (!home) {
  console.error('usage: embedded-server.ts <SWEEP_HOME>');
  process.exit(2);
}
const paths = embeddedPaths({ SWEEP_HOME: home });
const log = (msg: string) => console.log(`${new Date().toISOString()} [${process.pid}] ${msg}`);

if (!(await tryAcquire(paths.lock, { pid: process.pid, url: null } satisfies LockInfo))) process.exit(0);

let stopping = false;
let server: Awaited<ReturnType<typeof serveEmbedded>> | null = null;
const stop = async (why: string) => {
  if (stopping) return;
  stopping = true;
  log(`stopping: ${why}`);
  await server?.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));

try {
  server = await serveEmbedded(paths, log);
} catch (err) {
  log(`failed to start: ${(err as Error).stack ?? err}`);
  process.exit(1);
}

let idleSince = Date.now();
setInterval(() => {
  if (server!.connections() > 0) idleSince = Date.now();
  else if (Date.now() - idleSince > IDLE_EXIT_MS) void stop('idle');
}, 1_000);
