/**
 * A stand-in W&B server for tests and fault drills: a local node:http server with just enough
 * of the API the SDK (and src/track/wandb/client.ts) uses: GraphQL `Viewer`, `UpsertBucket`,
 * `UpsertSweep` at /graphql, and a run's file stream at
 * /files/<entity>/<project>/<run>/file_stream, where a history line is stored at its offset.
 *
 * It is strict, so a mistake in the client fails a test: each GraphQL request is parsed and
 * validated with the `graphql` package against a schema of the fields the SDK uses, its
 * operation name must be one it knows, and its variables must be the ones the query declares,
 * of their types; a run's config must be in the backend's `{key: {value, desc}}` form. On the
 * file stream, history offsets are contiguous per run: a chunk starts where the last one ended
 * (a chunk it refused counts as sent), and may go back only over lines W&B stored without the
 * client hearing so (an ambiguous failure, which the client resends at the same offsets) or
 * with the very same lines; a line it acknowledged is never rewritten with other content, and a
 * resumed run goes on at its `historyLineCount`.
 * Each line is JSON (NaN / Infinity tokens allowed, as the SDK writes them) with a `_step`
 * above the one before it; the summary is one JSON object; the final request has an integer
 * `exitcode`. A request breaking a rule is answered 400 and recorded in `violations`.
 *
 * It records every request, and can be switched into a `503` phase (every request answered
 * 503) or a `hang` phase (requests are read and never answered). With `storeBeforeFailing`,
 * a failing request is applied first: the ambiguous failure (W&B stored it, the client never
 * heard) that makes resending at fixed offsets necessary.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import YAML from 'yaml';
import { buildSchema, getOperationAST, getVariableValues, parse, validate, type DocumentNode, type GraphQLError } from 'graphql';

/** The part of W&B's GraphQL schema the client uses, with the types the SDK's queries declare. */
const SCHEMA = buildSchema(`
  scalar JSONString
  type Query { viewer: User }
  type Mutation {
    upsertBucket(input: UpsertBucketInput!): UpsertBucketPayload
    upsertSweep(input: UpsertSweepInput!): UpsertSweepPayload
  }
  type User { id: ID! entity: String username: String flags: JSONString teams: EntityConnection }
  type EntityConnection { edges: [EntityEdge!]! }
  type EntityEdge { node: Entity }
  type Entity { id: ID! name: String! }
  type Project { id: ID! name: String! entity: Entity! }
  type Run {
    id: ID! name: String! displayName: String description: String config: JSONString sweepName: String
    project: Project historyLineCount: Int
  }
  input UpsertBucketInput {
    id: String name: String groupName: String modelName: String entityName: String description: String
    displayName: String notes: String config: JSONString commit: String host: String debug: Boolean
    jobProgram: String jobRepo: String jobType: String state: String sweep: String tags: [String!]
    summaryMetrics: JSONString
  }
  type UpsertBucketPayload { bucket: Run inserted: Boolean }
  type Sweep { name: String! project: Project }
  input UpsertSweepInput {
    id: ID config: String description: String entityName: String projectName: String controller: JSONString
    scheduler: JSONString state: String priorRunsFilters: JSONString
  }
  type UpsertSweepPayload { sweep: Sweep configValidationWarnings: [String!]! }
`);
const OPERATIONS = new Set(['Viewer', 'UpsertBucket', 'UpsertSweep']);

/** JSON.parse that reads the NaN / Infinity / -Infinity tokens Python's json.dumps writes. */
export function parseSdkJson(text: string): any {
  const tag = '__fake_nonfinite__';
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) => (m.startsWith('"') ? m : `{"${tag}":"${m}"}`));
  return JSON.parse(marked, (_k, v) => (v && typeof v === 'object' && typeof v[tag] === 'string' ? Number(v[tag]) : v));
}

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
  /** Why the strict checks refused it, if they did. */
  violation?: string;
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
  /** The next history offset: a chunk starts here, or goes back only over `unacked` lines. */
  nextOffset: number;
  /** Offsets stored by a request that was then answered with a failure (the client never heard). */
  unacked: Set<number>;
  /** Offsets of chunks refused (failWhen): sent, so counted, but nothing stored. */
  refused: Set<number>;
  summary: string | null;
  complete: boolean;
  exitcode: number | null;
  heartbeats: number;
  upserts: number;
  /** A preempting notice came and no upsert (resume) since. */
  preempting: boolean;
  preemptings: number;
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
  /** Requests the strict checks refused, with why. Tests expect none. */
  violations: string[];
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
  const violations: string[] = [];
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();
  let failTest: ((r: FakeRequest) => boolean) | null = null;
  let failStatus = 400;
  let failBody = '{"error":"bad request"}';
  let seq = 0;

  const fake: FakeWandb = {
    url: '',
    requests,
    violations,
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
      return Array.from({ length: n }, (_, i) => (run.lines.has(i) ? parseSdkJson(run.lines.get(i)!) : undefined));
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

  // -- strict checks ---------------------------------------------------------------------------

  const parsedQueries = new Map<string, DocumentNode>();

  /** Why a GraphQL request is not one the client should send; null when it is fine. */
  function checkGraphql(rec: FakeRequest): string | null {
    const body = rec.body;
    if (!body || typeof body !== 'object' || typeof body.query !== 'string') return 'GraphQL body without a query';
    const extra = Object.keys(body).filter((k) => !['query', 'variables', 'operationName'].includes(k));
    if (extra.length > 0) return `GraphQL body with unknown keys ${extra.join(', ')}`;
    let doc = parsedQueries.get(body.query);
    if (!doc) {
      try {
        doc = parse(body.query);
      } catch (err) {
        return `GraphQL syntax: ${(err as Error).message}`;
      }
      const errors: readonly GraphQLError[] = validate(SCHEMA, doc);
      if (errors.length > 0) return `GraphQL validation: ${errors.map((e) => e.message).join('; ')}`;
      parsedQueries.set(body.query, doc);
    }
    const op = getOperationAST(doc);
    if (!op) return 'GraphQL document without exactly one operation';
    const name = op.name?.value ?? null;
    if (!name || !OPERATIONS.has(name)) return `GraphQL operation ${name ?? '(anonymous)'} is not one W&B's client sends`;
    if (rec.operation !== name) return `GraphQL operation ${name} recorded as ${rec.operation}`;
    const vars = body.variables ?? {};
    if (typeof vars !== 'object' || Array.isArray(vars)) return `${name}: variables are not an object`;
    const declared = new Set(op.variableDefinitions?.map((d) => d.variable.name.value) ?? []);
    const undeclared = Object.keys(vars).filter((k) => !declared.has(k));
    if (undeclared.length > 0) return `${name}: variables not declared by the query: ${undeclared.join(', ')}`;
    const coerced = getVariableValues(SCHEMA, op.variableDefinitions ?? [], vars);
    if (coerced.errors) return `${name}: ${coerced.errors.map((e) => e.message).join('; ')}`;
    for (const d of op.variableDefinitions ?? []) {
      const v = vars[d.variable.name.value];
      if (d.type.kind === 'NamedType' && d.type.name.value === 'JSONString' && v !== null && v !== undefined) {
        try {
          JSON.parse(v);
        } catch {
          return `${name}: $${d.variable.name.value} is not a JSON string`;
        }
      }
    }
    if (name === 'UpsertBucket' && typeof vars.config === 'string') {
      const config = JSON.parse(vars.config);
      if (!config || typeof config !== 'object' || Array.isArray(config)) return 'UpsertBucket: config is not an object';
      for (const [k, entry] of Object.entries<any>(config)) {
        const keys = entry && typeof entry === 'object' && !Array.isArray(entry) ? Object.keys(entry) : null;
        if (!keys || !keys.includes('value') || keys.some((x) => x !== 'value' && x !== 'desc')) {
          return `UpsertBucket: config key ${k} is not in the backend's {value, desc} form`;
        }
      }
    }
    return null;
  }

  /** Why a file-stream request is not one the client should send to `run`; null when it is fine. */
  function checkFileStream(run: FakeRun, b: any): string | null {
    if (!b || typeof b !== 'object' || Array.isArray(b)) return 'file_stream body is not an object';
    const known = ['files', 'complete', 'failed', 'exitcode', 'preempting', 'dropped', 'uploaded'];
    const extra = Object.keys(b).filter((k) => !known.includes(k));
    if (extra.length > 0) return `file_stream body with unknown keys ${extra.join(', ')}`;
    if (b.dropped !== undefined && !Number.isInteger(b.dropped)) return 'file_stream: dropped is not an integer';
    if (b.complete === true && !Number.isInteger(b.exitcode)) return 'file_stream: the final request has no integer exitcode';
    if (b.files === undefined) {
      if (b.complete === undefined && b.preempting !== true) return 'file_stream: neither files, complete nor preempting';
      return null;
    }
    if (!b.files || typeof b.files !== 'object') return 'file_stream: files is not an object';
    for (const [file, chunk] of Object.entries<any>(b.files)) {
      if (!chunk || !Number.isInteger(chunk.offset) || chunk.offset < 0 || !Array.isArray(chunk.content) || chunk.content.some((l: unknown) => typeof l !== 'string')) {
        return `file_stream: ${file} is not {offset, content: string[]}`;
      }
      if (file === 'wandb-summary.json') {
        if (chunk.offset !== 0 || chunk.content.length !== 1) return 'file_stream: the summary is not one line at offset 0';
        let summary: unknown;
        try {
          summary = parseSdkJson(chunk.content[0]);
        } catch {
          return `file_stream: the summary is not JSON: ${chunk.content[0].slice(0, 120)}`;
        }
        if (!summary || typeof summary !== 'object' || Array.isArray(summary)) return 'file_stream: the summary is not an object';
      } else if (file === 'wandb-history.jsonl') {
        const why = checkHistory(run, chunk.offset, chunk.content);
        if (why) return why;
      } else {
        return `file_stream: unexpected file ${file}`;
      }
    }
    return null;
  }

  function stepAt(run: FakeRun, offset: number): number | undefined {
    const line = run.lines.get(offset);
    return line === undefined ? undefined : parseSdkJson(line)._step;
  }

  function checkHistory(run: FakeRun, offset: number, content: string[]): string | null {
    if (offset > run.nextOffset) return `file_stream: history chunk at offset ${offset} leaves a gap (next is ${run.nextOffset})`;
    for (let i = offset; i < Math.min(offset + content.length, run.nextOffset); i++) {
      // The same line again is harmless (the client lost its note that it was sent); other
      // content over a line W&B acknowledged is a rewrite.
      if (!run.unacked.has(i) && !run.refused.has(i) && run.lines.get(i) !== content[i - offset]) {
        return `file_stream: history offset ${i} rewritten: W&B acknowledged another line there`;
      }
    }
    let prev: number | undefined;
    for (let k = offset - 1; k >= 0 && prev === undefined; k--) prev = stepAt(run, k);
    for (let i = 0; i < content.length; i++) {
      let line: any;
      try {
        line = parseSdkJson(content[i]);
      } catch {
        return `file_stream: history line at offset ${offset + i} is not JSON: ${content[i].slice(0, 120)}`;
      }
      if (!line || typeof line !== 'object' || Array.isArray(line)) return `file_stream: history line at offset ${offset + i} is not an object`;
      if (!Number.isInteger(line._step)) return `file_stream: history line at offset ${offset + i} has no integer _step`;
      if (prev !== undefined && line._step <= prev) return `file_stream: history _step ${line._step} at offset ${offset + i} does not increase (${prev} before it)`;
      prev = line._step;
    }
    for (let k = offset + content.length; k < run.nextOffset; k++) {
      const next = stepAt(run, k);
      if (next !== undefined && prev !== undefined && next <= prev) return `file_stream: history _step ${prev} is not below the ${next} stored after it`;
      if (next !== undefined) break;
    }
    return null;
  }

  /** Applies a request; returns [status, body]. */
  function apply(rec: FakeRequest): [number, unknown] {
    if (rec.path === '/graphql') {
      const v: Record<string, any> = rec.body?.variables ?? {};
      if (rec.operation === 'Viewer') {
        return [200, { data: { viewer: { id: 'VXNlcjox', entity: defaultEntity, username: defaultEntity, flags: '{}', teams: { edges: [] } } } }];
      }
      if (rec.operation === 'UpsertBucket') {
        const entity = v.entity ?? defaultEntity;
        const project = v.project ?? 'uncategorized';
        const key = `${entity}/${project}/${v.name}`;
        let run = runs.get(key);
        const inserted = !run;
        if (!run) {
          run = {
            entity, project, name: v.name, storageId: `run-${++seq}`, groupName: null, displayName: null, notes: null, jobType: null,
            tags: [], config: null, sweep: null, lines: new Map(), nextOffset: 0, unacked: new Set(), refused: new Set(), summary: null,
            complete: false, exitcode: null, heartbeats: 0, upserts: 0, preempting: false, preemptings: 0,
          };
          runs.set(key, run);
        }
        run.upserts++;
        run.preempting = false;
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
                  historyLineCount: run.nextOffset,
                },
                inserted,
              },
            },
          },
        ];
      }
      if (rec.operation === 'UpsertSweep') {
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
    const run = fileStreamRun(rec);
    if (run === null) return [404, { error: 'not found' }];
    if (!run) return [404, { error: `run ${rec.path} not found` }];
    const b = rec.body ?? {};
    if (b.files) {
      for (const [file, chunk] of Object.entries<any>(b.files)) {
        if (file === 'wandb-history.jsonl') {
          chunk.content.forEach((line: string, i: number) => {
            run.lines.set(chunk.offset + i, line);
            run.unacked.delete(chunk.offset + i);
            run.refused.delete(chunk.offset + i);
          });
          run.nextOffset = Math.max(run.nextOffset, chunk.offset + chunk.content.length);
        } else if (file === 'wandb-summary.json') {
          run.summary = chunk.content[chunk.content.length - 1];
        }
      }
    } else if (b.complete === true) {
      run.complete = true;
      run.exitcode = b.exitcode;
    } else if (b.preempting === true) {
      run.preempting = true;
      run.preemptings++;
    } else if (b.complete === false) {
      run.heartbeats++;
    }
    return [200, { limits: {} }];
  }

  /** The run a file-stream request is for: undefined if unknown, null if the path is not a file stream. */
  function fileStreamRun(rec: FakeRequest): FakeRun | undefined | null {
    const m = /^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/.exec(rec.path);
    if (!m) return null;
    const [entity, project, name] = m.slice(1).map(decodeURIComponent);
    return runs.get(`${entity}/${project}/${name}`);
  }

  /** Why the request breaks a rule; null when it does not. */
  function strictCheck(rec: FakeRequest): string | null {
    if (rec.method !== 'POST') return `${rec.method} ${rec.path}: the client only POSTs`;
    if (rec.path === '/graphql') return checkGraphql(rec);
    const run = fileStreamRun(rec);
    return run ? checkFileStream(run, rec.body) : null;
  }

  /** Offsets a request stored are unacknowledged until a later request storing them is answered 200. */
  function markUnacked(rec: FakeRequest): void {
    const run = fileStreamRun(rec);
    const chunk = rec.body?.files?.['wandb-history.jsonl'];
    if (run && chunk) for (let i = 0; i < chunk.content.length; i++) run.unacked.add(chunk.offset + i);
  }

  /** A refused chunk was sent all the same: the client goes on after it. */
  function markRefused(rec: FakeRequest): void {
    const run = fileStreamRun(rec);
    const chunk = rec.body?.files?.['wandb-history.jsonl'];
    if (!run || !chunk || chunk.offset > run.nextOffset) return;
    for (let i = 0; i < chunk.content.length; i++) if (!run.lines.has(chunk.offset + i)) run.refused.add(chunk.offset + i);
    run.nextOffset = Math.max(run.nextOffset, chunk.offset + chunk.content.length);
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
    const violation = strictCheck(rec);
    if (violation) {
      rec.answer = 400;
      rec.violation = violation;
      violations.push(violation);
      return send(res, 400, { errors: [{ message: violation }] });
    }
    if (failTest?.(rec)) {
      rec.answer = failStatus;
      if (failStatus >= 400 && failStatus < 500) markRefused(rec);
      return send(res, failStatus, failBody);
    }
    if (fake.mode === 'hang') {
      if (fake.storeBeforeFailing) {
        apply(rec);
        markUnacked(rec);
      }
      rec.answer = 'hung';
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (fake.mode === '503') {
      if (fake.storeBeforeFailing) {
        apply(rec);
        markUnacked(rec);
      }
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
