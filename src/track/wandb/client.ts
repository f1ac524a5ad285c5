/**
 * A small client for the HTTP API the W&B Python SDK speaks: GraphQL at `{base}/graphql` and a
 * run's file stream at `{base}/files/{entity}/{project}/{run}/file_stream`, both with basic auth
 * `api:<key>`. Each request is made once, with a timeout; what to do about a failure (retry
 * later, give up, stop for a bad key) is the caller's, from WandbRequestError.kind.
 *
 * Request shapes follow wandb/sdk/internal/internal_api.py and file_stream.py (cited per method).
 */
import { redact, redactError } from './config.ts';

/** What a failed request means for the row it carried. */
export type FailureKind =
  /** 5xx, 408, 429, a timeout or a network error: try again later. */
  | 'retry'
  /** W&B refused the request itself (4xx, a GraphQL error): sending it again changes nothing. */
  | 'permanent'
  /**
   * The key is wrong (a 401, or the Viewer query refused): nothing will get through until it
   * is fixed. A 403 elsewhere is about one run or project, not the key.
   */
  | 'auth'
  /** Our own signal (shutting down) ended it: not a failure of the row. */
  | 'aborted';

export class WandbRequestError extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'WandbRequestError';
  }
}

export interface WandbClientOptions {
  baseUrl: string;
  apiKey: string;
  /** Per request, connection to last byte; default 20 s (the SDK's HTTP_TIMEOUT for GraphQL). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface UpsertRunInput {
  /** The run id (`name` in W&B's API). */
  name: string;
  project: string;
  entity?: string | null;
  groupName?: string | null;
  displayName?: string | null;
  notes?: string | null;
  jobType?: string | null;
  host?: string | null;
  tags?: string[] | null;
  /** Already in the backend's `{key: {desc, value}}` form. */
  config?: Record<string, unknown> | null;
  /** W&B sweep id (UpsertSweep's `sweep.name`). */
  sweep?: string | null;
}

export interface UpsertRunResult {
  id: string;
  name: string;
  sweepName: string | null;
  entity: string;
  project: string;
  inserted: boolean;
  /** Lines the run's history already has on W&B: where a resumed run's history goes on. */
  historyLineCount: number;
}

export interface UpsertSweepInput {
  /** YAML of the sweep configuration, as the SDK sends it. */
  config: string;
  description?: string | null;
  entityName?: string | null;
  projectName: string;
}

export interface UpsertSweepResult {
  /** The sweep's id on W&B. */
  name: string;
  entity: string | null;
  project: string | null;
  warnings: string[];
}

/** Body of a file_stream POST (see FileStreamApi._send / _thread_body, and the preempting notice). */
export type FileStreamBody =
  | { files: Record<string, { offset: number; content: string[] }>; dropped: number }
  | { complete: boolean; failed?: boolean; exitcode?: number; dropped: number; uploaded: string[] }
  | { preempting: true; dropped: number };

// Api.upsert_run: the mutation as the SDK sends it, without the server-settings probe.
const UPSERT_BUCKET = `mutation UpsertBucket(
    $id: String,
    $name: String,
    $project: String,
    $entity: String,
    $groupName: String,
    $description: String,
    $displayName: String,
    $notes: String,
    $commit: String,
    $config: JSONString,
    $host: String,
    $debug: Boolean,
    $program: String,
    $repo: String,
    $jobType: String,
    $state: String,
    $sweep: String,
    $tags: [String!],
    $summaryMetrics: JSONString,
) {
    upsertBucket(input: {
        id: $id,
        name: $name,
        groupName: $groupName,
        modelName: $project,
        entityName: $entity,
        description: $description,
        displayName: $displayName,
        notes: $notes,
        config: $config,
        commit: $commit,
        host: $host,
        debug: $debug,
        jobProgram: $program,
        jobRepo: $repo,
        jobType: $jobType,
        state: $state,
        sweep: $sweep,
        tags: $tags,
        summaryMetrics: $summaryMetrics,
    }) {
        bucket {
            id
            name
            displayName
            description
            config
            sweepName
            project {
                id
                name
                entity {
                    id
                    name
                }
            }
            historyLineCount
        }
        inserted
    }
}`;

// Api.upsert_sweep: the SDK's "mutation_3" form (the project query and validation warnings,
// without the launch-scheduler fields newer servers add).
const UPSERT_SWEEP = `mutation UpsertSweep(
    $id: ID,
    $config: String,
    $description: String,
    $entityName: String,
    $projectName: String,
    $controller: JSONString,
    $scheduler: JSONString,
    $state: String,
    $priorRunsFilters: JSONString,
) {
    upsertSweep(input: {
        id: $id,
        config: $config,
        description: $description,
        entityName: $entityName,
        projectName: $projectName,
        controller: $controller,
        scheduler: $scheduler,
        state: $state,
        priorRunsFilters: $priorRunsFilters,
    }) {
        sweep {
            name
            project {
                id
                name
                entity {
                    id
                    name
                }
            }
        }
        configValidationWarnings
    }
}`;

// Api.viewer: the key's user and default entity.
const VIEWER = `query Viewer{
    viewer {
        id
        entity
        username
        flags
        teams {
            edges {
                node {
                    name
                }
            }
        }
    }
}`;

export class WandbClient {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly auth: string;

  constructor(opts: WandbClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.timeoutMs ?? 20_000;
    this.fetchImpl = opts.fetch ?? fetch;
    this.auth = `Basic ${Buffer.from(`api:${opts.apiKey}`).toString('base64')}`;
  }

  /** Api.viewer: `{ entity, username }` of the key. */
  async viewer(signal?: AbortSignal): Promise<{ entity: string | null; username: string | null }> {
    const data = await this.graphql<{ viewer: { entity?: string | null; username?: string | null } | null }>(VIEWER, {}, signal, true);
    return { entity: data.viewer?.entity ?? null, username: data.viewer?.username ?? null };
  }

  /** Api.upsert_run (UpsertBucket): creates the run or updates it (same name = same run). */
  async upsertRun(input: UpsertRunInput, signal?: AbortSignal): Promise<UpsertRunResult> {
    const variables = {
      id: null,
      entity: input.entity ?? null,
      name: input.name,
      project: input.project,
      groupName: input.groupName ?? null,
      tags: input.tags ?? null,
      description: null,
      config: input.config ? JSON.stringify(input.config) : null,
      commit: null,
      displayName: input.displayName ?? null,
      notes: input.notes ?? null,
      host: input.host ?? null,
      debug: false,
      repo: null,
      program: null,
      jobType: input.jobType ?? null,
      state: null,
      sweep: input.sweep ?? null,
      summaryMetrics: null,
    };
    type Bucket = { id: string; name: string; sweepName?: string | null; historyLineCount?: number | null; project?: { name?: string; entity?: { name?: string } } };
    const data = await this.graphql<{ upsertBucket: { bucket: Bucket; inserted: boolean } | null }>(UPSERT_BUCKET, variables, signal);
    const bucket = data.upsertBucket?.bucket;
    const entity = bucket?.project?.entity?.name ?? input.entity;
    const project = bucket?.project?.name ?? input.project;
    if (!bucket || !entity) {
      throw new WandbRequestError('UpsertBucket answered without the run or its entity', 'permanent');
    }
    return {
      id: bucket.id,
      name: bucket.name,
      sweepName: bucket.sweepName ?? null,
      entity,
      project,
      inserted: Boolean(data.upsertBucket?.inserted),
      historyLineCount: Math.max(0, Math.trunc(Number(bucket.historyLineCount ?? 0)) || 0),
    };
  }

  /**
   * Api.upsert_sweep (UpsertSweep) with no id: registers a new sweep. The sweep's own search
   * stays ours: the config says `controller: {type: local}`, so W&B proposes no runs.
   */
  async upsertSweep(input: UpsertSweepInput, signal?: AbortSignal): Promise<UpsertSweepResult> {
    const variables = {
      id: null,
      config: input.config,
      description: input.description ?? null,
      entityName: input.entityName ?? null,
      projectName: input.projectName,
      controller: null,
      scheduler: null,
      priorRunsFilters: null,
    };
    type Sweep = { name: string; project?: { name?: string; entity?: { name?: string } } | null };
    const data = await this.graphql<{ upsertSweep: { sweep: Sweep; configValidationWarnings?: string[] | null } | null }>(UPSERT_SWEEP, variables, signal);
    const sweep = data.upsertSweep?.sweep;
    if (!sweep?.name) throw new WandbRequestError('UpsertSweep answered without the sweep', 'permanent');
    return {
      name: sweep.name,
      entity: sweep.project?.entity?.name ?? null,
      project: sweep.project?.name ?? null,
      warnings: data.upsertSweep?.configValidationWarnings ?? [],
    };
  }

  /** One POST to a run's file stream (FileStreamApi._send, its heartbeat and its finish). */
  async fileStream(run: { entity: string; project: string; runId: string }, body: FileStreamBody, signal?: AbortSignal): Promise<void> {
    const e = encodeURIComponent;
    const url = `${this.baseUrl}/files/${e(run.entity)}/${e(run.project)}/${e(run.runId)}/file_stream`;
    await this.post(url, body, signal, { retryConflict: false, keyCheck: false });
  }

  /** `keyCheck`: the query says whether the key is good (Viewer); its refusal is the key's. */
  private async graphql<T>(query: string, variables: Record<string, unknown>, signal?: AbortSignal, keyCheck = false): Promise<T> {
    const text = await this.post(`${this.baseUrl}/graphql`, { query, variables }, signal, { retryConflict: true, keyCheck });
    let parsed: { data?: T; errors?: Array<{ message?: string }> };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new WandbRequestError(`POST ${this.baseUrl}/graphql answered with something other than JSON: ${this.clip(text)}`, 'retry');
    }
    if (parsed.errors && parsed.errors.length > 0) {
      const msg = parsed.errors.map((x) => x.message ?? JSON.stringify(x)).join('; ');
      // W&B answers some key problems as GraphQL errors with status 200; "permission denied"
      // is the key's only for Viewer (elsewhere it is about one entity or project).
      const badKey = /\b(unauthori[sz]ed|not logged in|invalid api key)\b/i.test(msg) || (keyCheck && /\bpermission denied\b/i.test(msg));
      const kind: FailureKind = badKey ? 'auth' : 'permanent';
      throw new WandbRequestError(`W&B GraphQL error: ${this.clip(msg)}`, kind);
    }
    if (!parsed.data) throw new WandbRequestError('W&B GraphQL answer has no data', 'permanent');
    return parsed.data;
  }

  /** POSTs JSON; returns the body text of a 2xx answer, throws WandbRequestError otherwise. */
  private async post(url: string, body: unknown, signal: AbortSignal | undefined, how: { retryConflict: boolean; keyCheck: boolean }): Promise<string> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([timeout, signal]) : timeout;
    const where = `POST ${redact(url, this.apiKey)}`;
    let res: Response;
    let text: string;
    try {
      res = await this.fetchImpl(url, {
        method: 'POST',
        headers: { Authorization: this.auth, 'Content-Type': 'application/json', 'User-Agent': 'sweep (W&B mirror)' },
        body: JSON.stringify(body),
        signal: combined,
      });
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw new WandbRequestError(`${where}: stopped`, 'aborted');
      if (timeout.aborted) throw new WandbRequestError(`${where}: no answer within ${(this.timeoutMs / 1000).toFixed(1)} s`, 'retry');
      throw new WandbRequestError(`${where}: ${redactError(err, this.apiKey)}`, 'retry');
    }
    if (res.ok) return text;
    const status = res.status;
    const msg = `${where}: HTTP ${status}${text ? ` ${this.clip(text)}` : ''}`;
    // A 403 on one run's file stream (or an upsert) is that run's problem; only a 401, or the
    // Viewer query refused, says the key is wrong.
    if (status === 401 || (status === 403 && how.keyCheck)) throw new WandbRequestError(msg, 'auth', status);
    // The SDK retries a 409 on upserts (check_retry_conflict_or_gone) but drops a file-stream
    // chunk answered with 400, 403, 404 or 409 (request_with_retry).
    if (status >= 500 || status === 408 || status === 429 || (status === 409 && how.retryConflict)) throw new WandbRequestError(msg, 'retry', status);
    throw new WandbRequestError(msg, 'permanent', status);
  }

  private clip(text: string): string {
    const one = text.replace(/\s+/g, ' ').trim();
    return redact(one.length > 300 ? `${one.slice(0, 300)}...` : one, this.apiKey);
  }
}
