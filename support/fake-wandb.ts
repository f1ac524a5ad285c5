/**
 * A stand-in W&B server for tests and fault drills: a local node:http server with just enough
 * of the API the SDK (and src/track/wandb/client.ts) uses: GraphQL `Viewer`, `UpsertBucket`,
 * `UpsertSweep` at /graphql, and a run's file stream at
 * /files/<entity>/<project>/<run>/file_stream, where a history line is stored at its offset (a
 * line sent again to the same offset replaces it, as on W&B).
 *
 * It records every request, and can be switched into a `503` phase (every request answered
 * 503) or a `hang` phase (requests are read and never answered). With `storeBeforeFailing`,
 * a failing request is applied first: the ambiguous failure (W&B stored it, the client never
 * heard) that makes resending at fixed offsets necessary.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import YAML from 'yaml';

export type FakeMode = 'ok' | '503' | 'hang';

export interface FakeRequest {
  method: string;
  path: string;
  /** The Authorization header as received. */
  authorization: string | null;
  body: any;
  /** GraphQL operation name (UpsertBucket, ...), for /graphql. */
  operation: string | null;
  /** Status answered, or 'hung'. */
  answer: number | 'hung';
}

export interface FakeRun {
  entity: string;
  project: string;
  name: string;
  storageId: string;
  groupName: string | null;
  displayName: string | null;
  notes: string | null;
  jobType: string | null;
  tags: string[];
  config: Record<string, unknown> | null;
  sweep: string | null;
  /** History lines by offset, as sent (JSON text). */
  lines: Map<number, string>;
  summary: string | null;
  complete: boolean;
  exitcode: number | null;
  heartbeats: number;
  upserts: number;
}

export interface FakeSweep {
  name: string;
  entity: string;
  project: string;
  config: Record<string, unknown>;
}

export interface FakeWandbOptions {
  /** Only this key is accepted (else 401); default: any key. */
  apiKey?: string;
  /** The entity a key belongs to (Viewer, and runs upserted without one). */
  defaultEntity?: string;
  /** Apply a request before failing it in the 503 and hang phases. */
  storeBeforeFailing?: boolean;
}

export interface FakeWandb {
  /** http://127.0.0.1:<port> */
  url: string;
  requests: FakeRequest[];
  runs: Map<string, FakeRun>;
  sweeps: Map<string, FakeSweep>;
  mode: FakeMode;
  setMode(mode: FakeMode): void;
  /** Answer requests matching this with `status` (and `body`), whatever the mode. */
  failWhen(test: ((r: FakeRequest) => boolean) | null, status?: number, body?: string): void;
  storeBeforeFailing: boolean;
  run(entity: string, project: string, name: string): FakeRun | undefined;
  /** A run's history lines parsed, by offset (undefined where no line was sent). */
  history(entity: string, project: string, name: string): Array<Record<string, unknown> | undefined>;
  /** Requests that are hanging now. */
  hanging(): number;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (data += c));
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

export async function startFakeWandb(opts: FakeWandbOptions = {}): Promise<FakeWandb> {
  const defaultEntity = opts.defaultEntity ?? 'fake-user';
  const runs = new Map<string, FakeRun>();
  const sweeps = new Map<string, FakeSweep>();
  const requests: FakeRequest[] = [];
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();
  let failTest: ((r: FakeRequest) => boolean) | null = null;
  let failStatus = 400;
  let failBody = '{"error":"bad request"}';
  let seq = 0;

  const fake: FakeWandb = {
    url: '',
    requests,
    runs,
    sweeps,
    mode: 'ok',
    storeBeforeFailing: opts.storeBeforeFailing ?? false,
    setMode(mode) {
      fake.mode = mode;
    },
    failWhen(test, status = 400, body = '{"error":"bad request"}') {
      failTest = test;
      failStatus = status;
      failBody = body;
    },
    run: (entity, project, name) => runs.get(`${entity}/${project}/${name}`),
    history(entity, project, name) {
      const run = runs.get(`${entity}/${project}/${name}`);
      if (!run) return [];
      const n = run.lines.size === 0 ? 0 : Math.max(...run.lines.keys()) + 1;
      return Array.from({ length: n }, (_, i) => (run.lines.has(i) ? JSON.parse(run.lines.get(i)!) : undefined));
    },
    hanging: () => hung.size,
    async close() {
      for (const r of hung) r.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  function send(res: ServerResponse, status: number, body: unknown) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(text);
  }

  /** Applies a request; returns [status, body]. */
  function apply(rec: FakeRequest): [number, unknown] {
    if (rec.path === '/graphql') {
      const q: string = rec.body?.query ?? '';
      const v: Record<string, any> = rec.body?.variables ?? {};
      if (rec.operation === 'Viewer') {
        return [200, { data: { viewer: { id: 'VXNlcjox', entity: defaultEntity, username: defaultEntity, flags: '{}', teams: { edges: [] } } } }];
      }
      if (rec.operation === 'UpsertBucket') {
        if (!q.includes('upsertBucket(input:') || !q.includes('modelName: $project')) return [400, { errors: [{ message: 'unexpected UpsertBucket' }] }];
        const entity = v.entity ?? defaultEntity;
        const project = v.project ?? 'uncategorized';
        const key = `${entity}/${project}/${v.name}`;
        let run = runs.get(key);
        const inserted = !run;
        if (!run) {
          run = {
            entity, project, name: v.name, storageId: `run-${++seq}`, groupName: null, displayName: null, notes: null, jobType: null,
            tags: [], config: null, sweep: null, lines: new Map(), summary: null, complete: false, exitcode: null, heartbeats: 0, upserts: 0,
          };
          runs.set(key, run);
        }
        run.upserts++;
        if (v.groupName !== undefined && v.groupName !== null) run.groupName = v.groupName;
        if (v.displayName) run.displayName = v.displayName;
        if (v.notes) run.notes = v.notes;
        if (v.jobType) run.jobType = v.jobType;
        if (v.tags) run.tags = v.tags;
        if (v.config) run.config = JSON.parse(v.config);
        if (v.sweep) {
          if (!sweeps.has(v.sweep)) return [200, { errors: [{ message: `sweep ${v.sweep} not found` }], data: null }];
          run.sweep = v.sweep;
        }
        return [
          200,
          {
            data: {
              upsertBucket: {
                bucket: {
                  id: run.storageId, name: run.name, displayName: run.displayName, description: null, config: JSON.stringify(run.config),
                  sweepName: run.sweep, project: { id: `p-${project}`, name: project, entity: { id: `e-${entity}`, name: entity } },
                  historyLineCount: run.lines.size,
                },
                inserted,
              },
            },
          },
        ];
      }
      if (rec.operation === 'UpsertSweep') {
        if (!q.includes('upsertSweep(input:')) return [400, { errors: [{ message: 'unexpected UpsertSweep' }] }];
        const entity = v.entityName ?? defaultEntity;
        const project = v.projectName ?? 'uncategorized';
        let config: Record<string, unknown>;
        try {
          config = YAML.parse(v.config);
        } catch {
          return [200, { errors: [{ message: 'config is not YAML' }], data: null }];
        }
        const name = `sw${(++seq).toString(36).padStart(6, '0')}`;
        sweeps.set(name, { name, entity, project, config });
        return [200, { data: { upsertSweep: { sweep: { name, project: { id: `p-${project}`, name: project, entity: { id: `e-${entity}`, name: entity } } }, configValidationWarnings: [] } } }];
      }
      return [400, { errors: [{ message: `unknown operation ${rec.operation}` }] }];
    }
    const m = /^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/.exec(rec.path);
    if (m) {
      const [entity, project, name] = m.slice(1).map(decodeURIComponent);
      const run = runs.get(`${entity}/${project}/${name}`);
      if (!run) return [404, { error: `run ${entity}/${project}/${name} not found` }];
      const b = rec.body ?? {};
      if (b.files) {
        for (const [file, chunk] of Object.entries<any>(b.files)) {
          if (file === 'wandb-history.jsonl') {
            chunk.content.forEach((line: string, i: number) => run.lines.set(chunk.offset + i, line));
          } else if (file === 'wandb-summary.json') {
            run.summary = chunk.content[chunk.content.length - 1];
          }
        }
      } else if (b.complete === true) {
        run.complete = true;
        run.exitcode = b.exitcode;
      } else if (b.complete === false) {
        run.heartbeats++;
      }
      return [200, { limits: {} }];
    }
    return [404, { error: 'not found' }];
  }

  const server = createServer(async (req, res) => {
    const text = await readBody(req);
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    const path = (req.url ?? '/').split('?')[0];
    const operation = path === '/graphql' ? (/^\s*(?:mutation|query)\s+(\w+)/.exec(body?.query ?? '')?.[1] ?? null) : null;
    const rec: FakeRequest = { method: req.method ?? 'GET', path, authorization: req.headers.authorization ?? null, body, operation, answer: 200 };
    requests.push(rec);

    const auth = rec.authorization ?? '';
    const decoded = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : '';
    if (!decoded.startsWith('api:') || decoded.length <= 4 || (opts.apiKey !== undefined && decoded !== `api:${opts.apiKey}`)) {
      rec.answer = 401;
      return send(res, 401, { errors: [{ message: 'user is not logged in' }] });
    }
    if (failTest?.(rec)) {
      rec.answer = failStatus;
      return send(res, failStatus, failBody);
    }
    if (fake.mode === 'hang') {
      if (fake.storeBeforeFailing) apply(rec);
      rec.answer = 'hung';
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (fake.mode === '503') {
      if (fake.storeBeforeFailing) apply(rec);
      rec.answer = 503;
      return send(res, 503, '<html>503 Service Unavailable</html>');
    }
    const [status, out] = apply(rec);
    rec.answer = status;
    send(res, status, out);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
