import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PGliteWireServer } from '../../src/infra/pglite-server.ts';

/** A bare protocol client, to pause in the middle of an extended-protocol sequence. */
class RawClient {
  private socket!: net.Socket;
  private buf = Buffer.alloc(0);
  readonly replies: Array<{ type: string; body: Buffer }> = [];

  async connect(host: string, port: number): Promise<void> {
    this.socket = net.connect(port, host);
    this.socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1)) {
        const len = 1 + this.buf.readInt32BE(1);
        this.replies.push({ type: String.fromCharCode(this.buf[0]!), body: this.buf.subarray(5, len) });
        this.buf = this.buf.subarray(len);
      }
    });
    await new Promise((r) => this.socket.once('connect', r));
    const params = Buffer.from('user\0postgres\0database\0postgres\0\0');
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + params.length, 0);
    head.writeInt32BE(196608, 4);
    this.socket.write(Buffer.concat([head, params]));
    await this.until('Z');
  }

  send(type: string, body: Buffer): void {
    const head = Buffer.alloc(5);
    head.write(type, 0);
    head.writeInt32BE(4 + body.length, 1);
    this.socket.write(Buffer.concat([head, body]));
  }

  parse(sql: string): void {
    this.send('P', Buffer.concat([Buffer.from(`\0${sql}\0`), Buffer.from([0, 0])]));
  }
  bind(): void {
    this.send('B', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
  }
  execute(): void {
    this.send('E', Buffer.from([0, 0, 0, 0, 0]));
  }
  sync(): void {
    this.send('S', Buffer.alloc(0));
  }

  async until(type: string): Promise<void> {
    const start = this.replies.length;
    while (!this.replies.slice(start).some((r) => r.type === type)) await new Promise((r) => setTimeout(r, 5));
  }

  /** Text of the first column of each DataRow received, and error messages. */
  results(): string[] {
    return this.replies.flatMap((r) => {
      if (r.type === 'D') return [r.body.subarray(6, 6 + r.body.readInt32BE(2)).toString()];
      if (r.type === 'E') return [`error: ${r.body.toString().replace(/\0/g, ' ')}`];
      return [];
    });
  }

  end(): void {
    this.socket.end();
  }
}

describe('PGliteWireServer', () => {
  let db: PGlite;
  let server: PGliteWireServer;
  let config: pg.PoolConfig;

  beforeAll(async () => {
    db = await PGlite.create();
    server = new PGliteWireServer(db);
    const [host, port] = (await server.listen({ host: '127.0.0.1', port: 0 })).split(':');
    config = { host, port: Number(port), user: 'postgres', database: 'postgres' };
    await db.exec('CREATE TABLE t (id serial PRIMARY KEY, who text NOT NULL, n int NOT NULL)');
  });
  afterAll(async () => {
    await server?.close();
    await db?.close();
  });

  it('serves a Parse/Bind ... Sync sequence whole, even when its client pauses in the middle', async () => {
    const x = new RawClient();
    await x.connect(String(config.host), Number(config.port));
    const y = new pg.Client(config);
    await y.connect();
    x.parse("SELECT 'from x'::text");
    x.bind();
    await new Promise((r) => setTimeout(r, 100));
    // Another client's unnamed statement and portal would replace x's if it were served now.
    let yDone = false;
    const yQuery = y.query('SELECT $1::text AS v', ['from y']).then((r) => {
      yDone = true;
      return r.rows[0].v as string;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(yDone).toBe(false);
    x.execute();
    x.sync();
    await x.until('Z');
    expect(x.results()).toEqual(['from x']);
    expect(await yQuery).toBe('from y');
    x.end();
    await y.end();
  });

  it('keeps concurrent clients’ extended-protocol queries apart', async () => {
    // Each client's statement has its own shape: a reply meant for another would show.
    const clients = Array.from({ length: 4 }, () => new pg.Pool({ ...config, max: 3 }));
    try {
      let wrong = 0;
      await Promise.all(
        clients.flatMap((pool, k) =>
          Array.from({ length: 60 }, async (_, i) => {
            const cols = Array.from({ length: k + 1 }, (_, j) => `$${j + 1}::text AS c${j}`).join(', ');
            const params = Array.from({ length: k + 1 }, (_, j) => `${k}:${i}:${j}`);
            const { rows } = await pool.query(`SELECT ${cols}`, params);
            if (Object.keys(rows[0]).length !== k + 1 || rows[0].c0 !== params[0]) wrong++;
            await pool.query('INSERT INTO t (who, n) VALUES ($1, $2)', [`client${k}`, i]);
          }),
        ),
      );
      expect(wrong).toBe(0);
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t');
      expect(rows[0]!.n).toBe(240);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('gives a transaction the database until it ends: others neither see nor interleave', async () => {
    const a = new pg.Client(config);
    const b = new pg.Client(config);
    await a.connect();
    await b.connect();
    try {
      await a.query('BEGIN');
      await a.query("INSERT INTO t (who, n) VALUES ('tx', 1)");
      let bDone = false;
      const bQuery = b.query("SELECT count(*)::int AS n FROM t WHERE who = 'tx'").then((r) => {
        bDone = true;
        return r.rows[0].n as number;
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(bDone).toBe(false); // waits for a's transaction
      await a.query("INSERT INTO t (who, n) VALUES ('tx', 2)");
      await a.query('COMMIT');
      expect(await bQuery).toBe(2);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('rolls back the transaction of a client that disconnects in the middle of it', async () => {
    const a = new pg.Client(config);
    await a.connect();
    await a.query('BEGIN');
    await a.query("INSERT INTO t (who, n) VALUES ('gone', 1)");
    // Drop the socket without COMMIT or Terminate, as a killed process would.
    (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    a.on('error', () => {});
    const b = new pg.Client(config);
    await b.connect();
    try {
      const { rows } = await b.query("SELECT count(*)::int AS n FROM t WHERE who = 'gone'");
      expect(rows[0].n).toBe(0);
    } finally {
      await b.end();
    }
  });

  it('delivers replies larger than the socket buffers intact, inside a transaction and after it', async () => {
    // A reply of a few hundred KB waits in the socket's queue while PGlite writes the next one;
    // each chunk must reach the client as it was.
    // Over a unix socket, as the embedded database serves (its buffers are smaller than TCP's).
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pglite-sock-'));
    const unixServer = new PGliteWireServer(db);
    await unixServer.listen(path.join(dir, '.s.PGSQL.5432'));
    const a = new pg.Client({ host: dir, port: 5432, user: 'postgres', database: 'postgres' });
    await a.connect();
    try {
      const big = Buffer.alloc(300_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
      await a.query('BEGIN');
      const { rows } = await a.query('SELECT $1::bytea AS d', [big]);
      expect(Buffer.compare(rows[0].d, big)).toBe(0);
      await a.query('COMMIT');
      const again = await a.query('SELECT $1::bytea AS d, 42 AS n', [big]);
      expect(again.rows[0].n).toBe(42);
      expect(Buffer.compare(again.rows[0].d, big)).toBe(0);
    } finally {
      await a.end();
      await unixServer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 15_000);
});
