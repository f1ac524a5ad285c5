/**
 * `sweep dashboard`'s server: the report's page served live. GET / is the report page with
 * the data as of the last poll plus a live layer; GET /events is a stream of server-sent
 * events (patches to the page's data, the queue); GET /data.json is the data itself.
 *
 * One poll loop for the whole server, at most one round of queries per `pollMs` however many
 * pages are open, and none while no page is open. Read-only: GET and HEAD only, nothing here
 * writes to the database or the queue. Every patch and page passes through the report's
 * redaction (database password, W&B key, anything named like a credential).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Queue } from 'bullmq';
import type { PrismaClient } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import { UserError } from '../util/errors.ts';
import type { TrialJobData } from '../worker/queue.ts';
import { renderReport, scriptJson } from './html.ts';
import type { LivePatch } from './live.ts';
import { redact, secretValues } from './model.ts';
import { LiveSweep, readQueue, sameQueue, type QueueData } from './watch.ts';
import { echartsSource } from './write.ts';

export interface DashboardOptions {
  prisma: PrismaClient;
  sweep: string;
  host: string;
  port: number;
  env: Env;
  /** The trial queue, or null when there is no Redis to read it from. */
  queue: Queue<TrialJobData> | null;
  /** Names the Redis in messages (its URL without a password). */
  redisLabel?: string;
  pollMs?: number;
}

/** One update as the server made it: its time (poll, queue, patch serialised) and size. */
export interface UpdateTiming {
  ms: number;
  bytes: number;
  kind: 'patch' | 'reload';
}

export interface Dashboard {
  url: string;
  port: number;
  live: LiveSweep;
  /** Server time of the updates sent, in order (the latest KEEP_TIMINGS). */
  updates: UpdateTiming[];
  /** Query rounds made. */
  polls(): number;
  /** Pages connected to /events. */
  clients(): number;
  close(): Promise<void>;
}

/** Patches kept for pages that connect late (they ask for what came after their version). */
const KEEP_PATCHES = 120;
const KEEPALIVE_MS = 15_000;
/** Update timings kept (a server runs for days). */
const KEEP_TIMINGS = 1000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** Whether a request's Host header names this server (a page of another site cannot reach it by a rebound name). */
export function hostAllowed(header: string | undefined, bound: string, port: number): boolean {
  if (!LOOPBACK.has(bound)) return true;
  return !!header && ['127.0.0.1', 'localhost', '[::1]'].some((h) => header === `${h}:${port}`);
}

/** The events a page that has `since` needs: the patches after it, or null (it must load again). */
export function catchUp(patches: readonly LivePatch[], since: number, version: number): LivePatch[] | null {
  if (since === version) return [];
  const after = patches.filter((p) => p.version > since);
  return after.length === version - since && after[0]?.version === since + 1 ? after : null;
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new UserError(`port ${port} on ${host} is already in use (another dashboard?); choose another with --port, or --port 0 for any free one`));
      else if (err.code === 'EACCES') reject(new UserError(`not allowed to listen on port ${port}; ports below 1024 need privileges: choose another with --port`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new UserError(`cannot listen on --host ${host}: it is not an address of this machine`));
      else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/**
 * The poll loop and the pages it feeds: one round at a time, at most one per `pollMs`, only
 * while a page is connected (or when a page is asked for after a quiet spell).
 */
class LiveHub {
  readonly clients = new Set<http.ServerResponse>();
  readonly updates: UpdateTiming[] = [];
  private readonly patches: LivePatch[] = [];
  polls = 0;
  private lastPoll = Date.now();
  private ticking: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly o: DashboardOptions,
    readonly live: LiveSweep,
    public queue: QueueData,
    private readonly secrets: readonly string[],
    private readonly pollMs: number,
  ) {}

  private send(res: http.ServerResponse, event: string, data: string): void {
    res.write(`event: ${event}\ndata: ${data}\n\n`);
  }

  private broadcast(event: string, data: string): void {
    for (const res of this.clients) this.send(res, event, data);
  }

  private record(u: UpdateTiming): void {
    this.updates.push(u);
    if (this.updates.length > KEEP_TIMINGS) this.updates.splice(0, this.updates.length - KEEP_TIMINGS);
  }

  private async round(): Promise<void> {
    const t0 = performance.now();
    this.polls++;
    this.lastPoll = Date.now();
    const [r, q0] = await Promise.all([this.live.poll(), readQueue(this.o.prisma, this.o.queue, new Date(), this.o.redisLabel)]);
    const q = redact(q0, this.secrets);
    if (!sameQueue(this.queue, q)) {
      this.queue = q;
      this.broadcast('queue', scriptJson(q));
    }
    if (r.kind === 'patch') {
      this.patches.push(r.patch);
      if (this.patches.length > KEEP_PATCHES) this.patches.shift();
      const json = scriptJson(r.patch);
      this.broadcast('patch', json);
      this.record({ ms: performance.now() - t0, bytes: json.length, kind: 'patch' });
    } else if (r.kind === 'reload') {
      this.patches.length = 0;
      this.broadcast('reload', String(r.version));
      this.record({ ms: performance.now() - t0, bytes: 0, kind: 'reload' });
    }
  }

  /** One round at a time; a caller arriving during one waits for it. */
  tick(): Promise<void> {
    this.ticking ??= this.round()
      .catch((err) => this.broadcast('problem', scriptJson(redact({ message: String((err as Error).message ?? err).split('\n')[0] }, this.secrets))))
      .finally(() => (this.ticking = null));
    return this.ticking;
  }

  /** Data at most one poll interval old for a page asked for while none is open. */
  async fresh(): Promise<void> {
    if (this.clients.size === 0 && Date.now() - this.lastPoll >= this.pollMs) await this.tick();
  }

  private schedule(): void {
    if (this.closed || this.timer || this.clients.size === 0) return;
    this.timer = setTimeout(
      async () => {
        await this.tick();
        this.timer = null;
        this.schedule();
      },
      Math.max(0, this.lastPoll + this.pollMs - Date.now()),
    );
  }

  /** GET /events?since=VERSION: what the page missed, then every change as it comes. */
  events(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    const since = Number(url.searchParams.get('since'));
    const missed = Number.isInteger(since) ? catchUp(this.patches, since, this.live.state.version) : null;
    if (missed === null) this.send(res, 'reload', String(this.live.state.version));
    else for (const p of missed) this.send(res, 'patch', scriptJson(p));
    this.send(res, 'queue', scriptJson(this.queue));
    this.clients.add(res);
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    req.on('close', () => {
      clearInterval(keepalive);
      this.clients.delete(res);
    });
    this.schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const res of this.clients) res.end();
    this.clients.clear();
    await this.ticking;
  }
}

const HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' };

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const secrets = secretValues(o.env);
  const live = await LiveSweep.open(o.prisma, o.sweep, { env: o.env, secrets });
  const hub = new LiveHub(o, live, redact(await readQueue(o.prisma, o.queue, new Date(), o.redisLabel), secrets), secrets, o.pollMs ?? 1000);
  const echarts = echartsSource();
  let page: { version: number; html: string } | null = null;
  let port = o.port;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(HEADERS)) res.setHeader(k, v);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('read-only: GET and HEAD only\n');
      return;
    }
    if (!hostAllowed(req.headers.host, o.host, port)) {
      res.writeHead(421, { 'Content-Type': 'text/plain' }).end('unknown Host\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (url.pathname === '/events') return hub.events(req, res, url);
    if (url.pathname !== '/' && url.pathname !== '/data.json') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the dashboard is at /\n');
      return;
    }
    await hub.fresh();
    const state = live.state;
    const body = (text: string) => (req.method === 'HEAD' ? undefined : text);
    if (url.pathname === '/data.json') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(body(JSON.stringify({ version: state.version, data: state.data, queue: hub.queue })));
      return;
    }
    if (page?.version !== state.version) page = { version: state.version, html: renderReport(state.data, echarts, { live: { version: state.version, queue: hub.queue } }) };
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(body(page.html));
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`${redact(String((err as Error).message ?? err).split('\n')[0], secrets)}\n`);
    });
  });
  await listen(server, o.port, o.host);
  port = (server.address() as AddressInfo).port;
  const shownHost = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    live,
    updates: hub.updates,
    polls: () => hub.polls,
    clients: () => hub.clients.size,
    async close() {
      await hub.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
