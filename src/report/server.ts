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

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const secrets = secretValues(o.env);
  const pollMs = o.pollMs ?? 1000;
  const live = await LiveSweep.open(o.prisma, o.sweep, { env: o.env, secrets });
  let queue: QueueData = redact(await readQueue(o.prisma, o.queue, new Date(), o.redisLabel), secrets);
  const echarts = echartsSource();
  const clients = new Set<http.ServerResponse>();
  const patches: LivePatch[] = [];
  const updates: UpdateTiming[] = [];
  let page: { version: number; html: string } | null = null;
  let polls = 0;
  let lastPoll = Date.now();
  let ticking: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let port = o.port;

  const send = (res: http.ServerResponse, event: string, data: string) => res.write(`event: ${event}\ndata: ${data}\n\n`);
  const broadcast = (event: string, data: string) => {
    for (const res of clients) send(res, event, data);
  };

  const record = (u: UpdateTiming) => {
    updates.push(u);
    if (updates.length > KEEP_TIMINGS) updates.splice(0, updates.length - KEEP_TIMINGS);
  };

  async function round(): Promise<void> {
    const t0 = performance.now();
    polls++;
    lastPoll = Date.now();
    const [r, q0] = await Promise.all([live.poll(), readQueue(o.prisma, o.queue, new Date(), o.redisLabel)]);
    const q = redact(q0, secrets);
    if (!sameQueue(queue, q)) {
      queue = q;
      broadcast('queue', scriptJson(q));
    }
    if (r.kind === 'patch') {
      patches.push(r.patch);
      if (patches.length > KEEP_PATCHES) patches.shift();
      const json = scriptJson(r.patch);
      broadcast('patch', json);
      record({ ms: performance.now() - t0, bytes: json.length, kind: 'patch' });
    } else if (r.kind === 'reload') {
      patches.length = 0;
      broadcast('reload', String(r.version));
      record({ ms: performance.now() - t0, bytes: 0, kind: 'reload' });
    }
  }

  /** One round at a time; a caller arriving during one waits for it. */
  function tick(): Promise<void> {
    ticking ??= round()
      .catch((err) => broadcast('problem', scriptJson(redact({ message: String((err as Error).message ?? err).split('\n')[0] }, secrets))))
      .finally(() => (ticking = null));
    return ticking;
  }

  function schedule(): void {
    if (closed || timer || clients.size === 0) return;
    timer = setTimeout(async () => {
      await tick();
      timer = null;
      schedule();
    }, Math.max(0, lastPoll + pollMs - Date.now()));
  }

  function events(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    const since = Number(url.searchParams.get('since'));
    const missed = Number.isInteger(since) ? catchUp(patches, since, live.state.version) : null;
    if (missed === null) send(res, 'reload', String(live.state.version));
    else for (const p of missed) send(res, 'patch', scriptJson(p));
    send(res, 'queue', scriptJson(queue));
    clients.add(res);
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    req.on('close', () => {
      clearInterval(keepalive);
      clients.delete(res);
    });
    schedule();
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const headers = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' };
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('read-only: GET and HEAD only\n');
      return;
    }
    if (!hostAllowed(req.headers.host, o.host, port)) {
      res.writeHead(421, { 'Content-Type': 'text/plain' }).end('unknown Host\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (url.pathname === '/events') return events(req, res, url);
    if (url.pathname !== '/' && url.pathname !== '/data.json') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the dashboard is at /\n');
      return;
    }
    // A page opened while none is watching gets data at most one poll interval old.
    if (clients.size === 0 && Date.now() - lastPoll >= pollMs) await tick();
    const state = live.state;
    if (url.pathname === '/data.json') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(req.method === 'HEAD' ? undefined : JSON.stringify({ version: state.version, data: state.data, queue }));
      return;
    }
    if (page?.version !== state.version) page = { version: state.version, html: renderReport(state.data, echarts, { live: { version: state.version, queue } }) };
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : page.html);
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
    updates,
    polls: () => polls,
    clients: () => clients.size,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const res of clients) res.end();
      clients.clear();
      await ticking;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
