/**
 * Loads Prisma's schema engine (WebAssembly build) and binds it to a driver adapter, so that
 * migrations run without the native engine binary the Prisma CLI would download.
 *
 * The package's own entry imports the .wasm file as an ES module, which Node only allows
 * behind a flag; instantiating it here from the glue module does the same without one.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import {
  bindMigrationAwareSqlAdapterFactory,
  type ErrorRegistry,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import type { SchemaEngine } from '@prisma/schema-engine-wasm';

export type { SchemaEngine } from '@prisma/schema-engine-wasm';

type Glue = typeof import('@prisma/schema-engine-wasm/schema_engine_bg') & {
  __wbg_set_wasm(exports: WebAssembly.Exports): void;
};

let gluePromise: Promise<Glue> | null = null;

async function loadGlue(): Promise<Glue> {
  const require = createRequire(import.meta.url);
  const gluePath = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
  const glue = (await import(pathToFileURL(gluePath).href)) as Glue;
  const bytes = await readFile(gluePath.replace(/\.js$/, '.wasm'));
  // The engine arms timers (e.g. a 10 s limit on taking its advisory lock) that it never
  // clears; unref them so that they do not keep a finished process alive.
  const imports: Record<string, unknown> = { ...glue };
  for (const name of Object.keys(imports)) {
    if (name.startsWith('__wbg_setTimeout_')) {
      imports[name] = (fn: () => void, ms: number) => {
        const timer = setTimeout(fn, ms >>> 0);
        timer.unref();
        return timer;
      };
    }
  }
  const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': imports as never });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports.__wbindgen_start as () => void)();
  return glue;
}

/**
 * A schema engine working through `adapter`. `log` receives the engine's tracing lines
 * (JSON), useful only when debugging. Free it with `engine.free()`.
 *
 * An error the adapter throws that is not a DriverAdapterError (a connection the driver lost,
 * a bug) reaches the engine as an id in the bound factory's error registry, and comes back out
 * as "External error id#N": every call here, opening included, throws the original instead.
 */
export async function openSchemaEngine(
  adapter: SqlMigrationAwareDriverAdapterFactory,
  opts: { datamodel?: { path: string; content: string }; log?: (line: string) => void } = {},
): Promise<SchemaEngine> {
  gluePromise ??= loadGlue();
  const glue = await gluePromise;
  const bound = bindMigrationAwareSqlAdapterFactory(adapter);
  const original = (err: unknown) => externalError(err, bound.errorRegistry);
  const datamodels: [string, string][] | undefined = opts.datamodel
    ? [[opts.datamodel.path, opts.datamodel.content]]
    : undefined;
  let engine: SchemaEngine;
  try {
    engine = await glue.SchemaEngine.new({ datamodels }, opts.log ?? (() => {}), bound);
  } catch (err) {
    throw original(err);
  }
  return rethrowingOriginals(engine, original);
}

/** The error registered as `id#N` in an engine's "External error id#N", or `err` itself. */
export function externalError(err: unknown, registry: Pick<ErrorRegistry, 'consumeError'>): unknown {
  const id = /External error id#(\d+)/.exec((err as Error)?.message ?? '')?.[1];
  return (id !== undefined && registry.consumeError(Number(id))?.error) || err;
}

/** The engine, with each method's rejection mapped through `original`. */
function rethrowingOriginals(engine: SchemaEngine, original: (err: unknown) => unknown): SchemaEngine {
  return new Proxy(engine, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (typeof value !== 'function' || key === 'free') return typeof value === 'function' ? value.bind(target) : value;
      return (...args: unknown[]) => {
        const out = (value as (...a: unknown[]) => unknown).apply(target, args);
        return out instanceof Promise ? out.catch((err: unknown) => Promise.reject(original(err))) : out;
      };
    },
  });
}
