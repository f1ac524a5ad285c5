/**
 * Telling "the server is not there (yet)" from every other failure: the first is waited out
 * (a worker started before Postgres or Redis, a server restarting), the others are reported.
 */
import { UserError } from '../util/errors.ts';

/** Codes and messages of a database that cannot be reached, rather than a query it refused. */
const CONNECTION_CODE = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|P1001|P1002|P1017|57P0[123]|08\d\d\d)$/;
const CONNECTION_KIND = /^(DatabaseNotReachable|ConnectionClosed|SocketTimeout)$/;
const CONNECTION_MESSAGE = /Connection terminated|connect ECONNREFUSED|ECONNRESET|timeout exceeded when trying to connect|Connection ended unexpectedly|terminating connection|the database system is (starting up|shutting down|in recovery mode)|Can't reach database server|Client has encountered a connection error|server closed the connection|Server has closed the connection|Query read timeout/i;

/**
 * Whether an error means the database could not be reached (as opposed to a query it
 * refused): these are waited out, the others are real failures. Follows `cause` (Prisma and
 * its driver adapters wrap the driver's error).
 */
export function isConnectionError(err: unknown): boolean {
  type Link = { message?: string; code?: unknown; kind?: unknown; cause?: unknown } | undefined;
  for (let e = err as Link, depth = 0; e && depth < 5; e = e.cause as Link, depth++) {
    if (typeof e.code === 'string' && CONNECTION_CODE.test(e.code)) return true;
    if (typeof e.kind === 'string' && CONNECTION_KIND.test(e.kind)) return true;
    if (CONNECTION_MESSAGE.test(e.message ?? '')) return true;
  }
  return false;
}

export type Service = 'Postgres' | 'Redis';

/**
 * A server that did not answer (refused, timed out, shutting down). A UserError, since the
 * user fixes it (start the server, fix the URL); a worker waits for it first (worker/connect.ts).
 */
export class ServerUnreachable extends UserError {
  constructor(
    readonly service: Service,
    /** host:port, for messages. */
    readonly address: string,
    /** Why, in a few words: "connection refused", "the database system is shutting down". */
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'ServerUnreachable';
  }
}

/** host:port of a URL (default port given), for messages; the URL itself when it does not parse. */
export function hostPort(url: string, defaultPort: number): string {
  try {
    const u = new URL(url);
    const socketDir = u.searchParams.get('host');
    return `${socketDir ?? (u.hostname || '127.0.0.1')}:${u.port || defaultPort}`;
  } catch {
    return url;
  }
}
