/**
 * Weights & Biases settings from the environment, the run id and dashboard links, and the
 * redaction that keeps the API key out of every log line, error and stored row.
 *
 *   WANDB_API_KEY   the key (sent as basic auth `api:<key>`, as the Python SDK does)
 *   WANDB_BASE_URL  API server, default https://api.wandb.ai
 *   WANDB_PROJECT   project, default `sweep`
 *   WANDB_ENTITY    entity (user or team); unset: the key's default entity, as W&B returns it
 *   WANDB_MODE      online | offline | disabled. online (the default) delivers as training
 *                   goes; offline only writes the outbox (`sweep wandb sync` delivers it);
 *                   disabled writes nothing. online without a key behaves as disabled.
 */
import { UserError } from '../../util/errors.ts';
import type { Env } from '../../infra/env.ts';

export type WandbMode = 'online' | 'offline' | 'disabled';
export const WANDB_MODES: readonly WandbMode[] = ['online', 'offline', 'disabled'];

export const DEFAULT_BASE_URL = 'https://api.wandb.ai';
export const DEFAULT_PROJECT = 'sweep';

export interface WandbSettings {
  mode: WandbMode;
  /** Undefined when unset; never print it (see redact()). */
  apiKey?: string;
  /** Without a trailing slash. */
  baseUrl: string;
  project: string;
  entity?: string;
  /** Why the mode is not what was asked for (online without a key), to be said once. */
  notice?: string;
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

/** Reads the W&B variables; a value that cannot be used is a UserError naming it. */
export function wandbSettings(env: Env = process.env): WandbSettings {
  const rawMode = nonEmpty(env.WANDB_MODE)?.toLowerCase();
  if (rawMode !== undefined && !WANDB_MODES.includes(rawMode as WandbMode)) {
    throw new UserError(`WANDB_MODE must be one of ${WANDB_MODES.join(', ')} (got ${JSON.stringify(env.WANDB_MODE)})`);
  }
  const rawBase = nonEmpty(env.WANDB_BASE_URL) ?? DEFAULT_BASE_URL;
  let base: URL;
  try {
    base = new URL(rawBase);
  } catch {
    throw new UserError(`WANDB_BASE_URL must be an http(s) URL such as ${DEFAULT_BASE_URL} (got ${JSON.stringify(rawBase)})`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new UserError(`WANDB_BASE_URL must be an http(s) URL such as ${DEFAULT_BASE_URL} (got ${JSON.stringify(rawBase)})`);
  }
  const apiKey = nonEmpty(env.WANDB_API_KEY);
  const project = nonEmpty(env.WANDB_PROJECT) ?? DEFAULT_PROJECT;
  if (/[/\\#?%]/.test(project)) {
    throw new UserError(`WANDB_PROJECT cannot contain / \\ # ? or % (got ${JSON.stringify(project)})`);
  }
  const entity = nonEmpty(env.WANDB_ENTITY);
  if (entity && /[/\\#?%]/.test(entity)) {
    throw new UserError(`WANDB_ENTITY cannot contain / \\ # ? or % (got ${JSON.stringify(entity)})`);
  }
  let mode: WandbMode = (rawMode as WandbMode | undefined) ?? 'online';
  let notice: string | undefined;
  if (mode === 'online' && !apiKey) {
    mode = 'disabled';
    notice =
      rawMode === 'online'
        ? 'W&B: WANDB_MODE=online but WANDB_API_KEY is not set; nothing is sent to W&B (set the key, or WANDB_MODE=offline to keep rows for `sweep wandb sync`)'
        : 'W&B: WANDB_API_KEY is not set; runs are not mirrored to W&B';
  }
  return {
    mode,
    ...(apiKey ? { apiKey } : {}),
    baseUrl: base.toString().replace(/\/+$/, ''),
    project,
    ...(entity ? { entity } : {}),
    ...(notice ? { notice } : {}),
  };
}

/** W&B run id of a trial: the first 16 characters of its (hex) id. */
export function wandbRunId(trialId: string): string {
  return trialId.slice(0, 16);
}

/**
 * The web app for an API server, as the SDK's `util.app_url` derives it: the default
 * https://api.wandb.ai is https://wandb.ai; any other `api.` host loses the `api.`; a server
 * without one (a local W&B server) serves both from the same address.
 */
export function wandbAppUrl(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace('://api.', '://');
}

export interface RunLocation {
  baseUrl: string;
  entity: string;
  project: string;
  runId: string;
}

/** Dashboard link of a run: https://wandb.ai/<entity>/<project>/runs/<id> for the default server. */
export function wandbRunUrl(r: RunLocation): string {
  const e = encodeURIComponent;
  return `${wandbAppUrl(r.baseUrl)}/${e(r.entity)}/${e(r.project)}/runs/${e(r.runId)}`;
}

/** Dashboard link of a sweep, as the SDK's `_get_sweep_url` builds it. */
export function wandbSweepUrl(s: { baseUrl: string; entity: string; project: string; sweepId: string }): string {
  const e = encodeURIComponent;
  return `${wandbAppUrl(s.baseUrl)}/${e(s.entity)}/${e(s.project)}/sweeps/${e(s.sweepId)}`;
}

/**
 * `text` with the API key taken out in every form it travels in: as is, URL-encoded, inside
 * the basic-auth header (base64 of `api:<key>`), and as a URL's password. Also drops any
 * Authorization header value, key or not.
 */
export function redact(text: string, apiKey?: string): string {
  let out = text;
  if (apiKey) {
    const forms = new Set([
      apiKey,
      encodeURIComponent(apiKey),
      Buffer.from(`api:${apiKey}`).toString('base64'),
      Buffer.from(`api:${apiKey}`).toString('base64').replace(/=+$/, ''),
    ]);
    for (const f of [...forms].sort((a, b) => b.length - a.length)) out = out.split(f).join('***');
  }
  out = out.replace(/(authorization["']?\s*[:=]\s*["']?)(basic|bearer)\s+[^\s"',}]+/gi, '$1$2 ***');
  out = out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, '$1***@');
  return out;
}

/** The message of an error (and its causes), redacted, on one line. */
export function redactError(err: unknown, apiKey?: string): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    const code = (e as { code?: unknown }).code;
    const piece = typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg;
    if (piece && !parts.includes(piece)) parts.push(piece);
    e = e instanceof Error ? (e as Error & { cause?: unknown }).cause : undefined;
  }
  return redact(parts.join(': ').replace(/\s+/g, ' ').trim(), apiKey);
}
