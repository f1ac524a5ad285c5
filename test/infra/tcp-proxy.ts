/**
 * A TCP proxy that can cut its traffic: while cut, open connections are destroyed and new
 * ones are refused (closed at once), as when a server goes down or the network between
 * goes away. Used to take Postgres or Redis away from a worker without touching the server
 * other tests share. `shutDown` answers as a Postgres server that is shutting down does.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  url(target: string): string;
  /** Drop every connection and refuse new ones until `restore`. */
  cut(): void;
  /**
   * Drop every connection and answer new ones as a Postgres server that is shutting down:
   * a FATAL error 57P03 to the startup message, then close.
   */
  shutDown(): void;
  restore(): void;
  readonly connections: number;
  close(): Promise<void>;
}

/** A proxy to targetHost:targetPort, listening on `listenPort` (default: any free port). */
export async function startTcpProxy(targetHost: string, targetPort: number, listenPort = 0): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let down: false | 'refuse' | 'shutting-down' = false;
  const server = net.createServer((client) => {
    if (down === 'refuse') {
      client.destroy();
      return;
    }
    if (down === 'shutting-down') {
      client.on('error', () => {});
      client.once('data', () => client.end(SHUTTING_DOWN));
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url(target: string) {
      const u = new URL(target);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut() {
      down = 'refuse';
      for (const s of open) s.destroy();
      open.clear();
    },
    shutDown() {
      down = 'shutting-down';
      for (const s of open) s.destroy();
      open.clear();
    },
    restore() {
      down = false;
    },
    get connections() {
      return open.size / 2;
    },
    close() {
      down = 'refuse';
      for (const s of open) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A Postgres ErrorResponse message: FATAL 57P03 "the database system is shutting down". */
const SHUTTING_DOWN = (() => {
  const fields = Buffer.from('SFATAL\0VFATAL\0C57P03\0Mthe database system is shutting down\0\0', 'latin1');
  const head = Buffer.alloc(5);
  head.write('E', 0, 'latin1');
  head.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([head, fields]);
})();
