/**
 * Serves one PGlite instance to many Postgres-protocol connections (a unix socket or TCP).
 *
 * PGlite has a single session, so connections take turns. A turn is a whole protocol
 * exchange: a connection keeps the database from its first message until the database answers
 * ReadyForQuery with status idle. That covers an extended-protocol sequence
 * (Parse/Bind/Describe/Execute ... Sync), whose unnamed statement and portal would otherwise be
 * clobbered by another connection's, and a whole transaction (BEGIN ... COMMIT), which would
 * otherwise see and be seen by the others' statements. Waiting connections are served in
 * arrival order.
 *
 * A connection that goes away during its turn has its sequence ended (Sync) and its
 * transaction rolled back before the next one is served.
 *
 * The upstream PGLiteSocketServer queues single messages instead, which lets two clients'
 * extended-protocol sequences interleave ('portal "" does not exist') under concurrency.
 */
import net from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]);
/** ReadyForQuery, idle: 'Z', length 5, 'I'. */
const READY_IDLE = [0x5a, 0, 0, 0, 5, 0x49];

class TurnQueue {
  private holder: object | null = null;
  private waiting: Array<{ who: object; go: () => void }> = [];

  async take(who: object): Promise<void> {
    if (this.holder === who) return;
    if (this.holder === null) {
      this.holder = who;
      return;
    }
    await new Promise<void>((go) => this.waiting.push({ who, go }));
  }

  give(who: object): void {
    if (this.holder !== who) return;
    const next = this.waiting.shift();
    this.holder = next?.who ?? null;
    next?.go();
  }

  holds(who: object): boolean {
    return this.holder === who;
  }

  /** Drop a waiter that went away before its turn. */
  forget(who: object): void {
    this.waiting = this.waiting.filter((w) => w.who !== who);
  }
}

type Message = { bytes: Uint8Array; type: string } | { special: 'ssl' | 'cancel' };

class Connection {
  private buf: Buffer = Buffer.alloc(0);
  private started = false;
  private pumping: Promise<void> | null = null;
  private closed = false;
  /** The last bytes sent to the client, to recognise ReadyForQuery(idle). */
  private tail: number[] = [];

  constructor(
    private readonly db: PGlite,
    private readonly turns: TurnQueue,
    private readonly socket: net.Socket,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.pump();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => void this.onClose());
  }

  private nextMessage(): Message | null {
    const b = this.buf;
    if (!this.started) {
      if (b.length < 8) return null;
      const len = b.readInt32BE(0);
      if (b.length < len) return null;
      const code = b.readInt32BE(4);
      this.buf = b.subarray(len);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) return { special: 'ssl' };
      if (code === CANCEL_REQUEST) return { special: 'cancel' };
      this.started = true;
      return { bytes: new Uint8Array(b.subarray(0, len)), type: 'startup' };
    }
    if (b.length < 5) return null;
    const len = 1 + b.readInt32BE(1);
    if (b.length < len) return null;
    this.buf = b.subarray(len);
    return { bytes: new Uint8Array(b.subarray(0, len)), type: String.fromCharCode(b[0]!) };
  }

  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = this.run().finally(() => {
      this.pumping = null;
    });
  }

  private async run(): Promise<void> {
    for (let msg = this.nextMessage(); msg && !this.closed; msg = this.nextMessage()) {
      if ('special' in msg) {
        // No TLS, and nothing to cancel: PGlite runs one statement at a time in process.
        if (msg.special === 'ssl') this.socket.write('N');
        else this.socket.end();
        continue;
      }
      if (msg.type === 'X') {
        this.socket.end();
        return;
      }
      await this.turns.take(this);
      if (this.closed) return;
      this.tail = [];
      try {
        await this.db.runExclusive(() =>
          this.db.execProtocolRawStream(msg.bytes, { onRawData: (data) => this.send(data) }),
        );
      } catch (err) {
        // The database itself failed (not a SQL error, which is an ordinary reply).
        this.socket.destroy(err as Error);
        return;
      }
      if (this.tail.length === READY_IDLE.length && this.tail.every((v, i) => v === READY_IDLE[i])) {
        this.turns.give(this);
      }
    }
  }

  private send(data: Uint8Array): void {
    if (data.length === 0) return;
    this.tail = [...this.tail, ...data.subarray(Math.max(0, data.length - READY_IDLE.length))].slice(
      -READY_IDLE.length,
    );
    // A copy: PGlite may hand out a view of its own memory, which it reuses for the next reply
    // while a large write still waits in the socket's queue (the client then reads garbage).
    if (!this.closed && this.socket.writable) this.socket.write(Buffer.from(data));
  }

  private async onClose(): Promise<void> {
    this.closed = true;
    await this.pumping;
    this.turns.forget(this);
    if (!this.turns.holds(this)) return;
    // Leave the session as the next client expects it: no half sequence, no open transaction.
    try {
      await this.db.runExclusive(() => this.db.execProtocolRaw(SYNC));
      if (this.db.isInTransaction()) await this.db.exec('ROLLBACK');
    } catch {
      // Nothing more can be done for this session; the next client will see the error.
    }
    this.turns.give(this);
  }

  close(): void {
    this.socket.destroy();
  }
}

export class PGliteWireServer {
  private server: net.Server | null = null;
  private readonly turns = new TurnQueue();
  private readonly connections = new Set<Connection>();

  constructor(private readonly db: PGlite) {}

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Listen on a unix socket path, or on TCP `{ host, port }` (port 0: any free port). */
  async listen(where: string | { host: string; port: number }): Promise<string> {
    await this.db.waitReady;
    const server = net.createServer((socket) => {
      const conn = new Connection(this.db, this.turns, socket);
      this.connections.add(conn);
      socket.on('close', () => this.connections.delete(conn));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (typeof where === 'string') server.listen(where, resolve);
      else server.listen(where.port, where.host, resolve);
    });
    const addr = server.address();
    return typeof addr === 'string' ? addr : `${addr?.address}:${addr?.port}`;
  }

  /** Stop accepting, drop every connection, and wait until the last turn is cleaned up. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const conn of this.connections) conn.close();
    await closed;
    // A dropped connection that held a turn rolls back first; take a turn to wait for it.
    const me = {};
    await this.turns.take(me);
    this.turns.give(me);
  }
}
