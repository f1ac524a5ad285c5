/**
 * Registers tfjs-core's chained tensor methods (`t.flatten()`, `t.reshape()`, ...).
 *
 * tfjs-core's Node (CommonJS) bundle leaves them out, and their ES module files cannot be
 * imported by Node (extensionless, directory imports). tfjs-layers calls some of them (its
 * orthogonal initializer uses `flatten`), so we evaluate the installed files' method bodies
 * against the one tfjs-core instance we use. Reading them from the installed package keeps
 * the methods exactly those of the pinned version.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as core from '@tensorflow/tfjs-core';

const IMPORT = /^import\s*\{([^}]*)\}\s*from\s*'[^']*';\s*$/gm;

export function registerChainedOps(): number {
  const proto = core.Tensor.prototype as unknown as Record<string, unknown>;
  if (typeof proto.flatten === 'function') return 0;
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('@tensorflow/tfjs-core/package.json')), 'dist/public/chained_ops');
  const scope: Record<string, unknown> = {
    ...(core as unknown as Record<string, unknown>),
    getGlobalTensorClass: () => core.Tensor,
    Tensor: core.Tensor,
    assert: core.util.assert,
    // ops that live under a namespace in the public API
    resizeBilinear: core.image.resizeBilinear,
    resizeNearestNeighbor: core.image.resizeNearestNeighbor,
  };
  let registered = 0;
  for (const file of readdirSync(dir)) {
    if (!file.endsWith('.js') || file.endsWith('_test.js') || file.startsWith('register_all')) continue;
    const text = readFileSync(join(dir, file), 'utf8');
    const names: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      for (const n of m[1].split(',')) if (n.trim()) names.push(n.trim());
    }
    const body = text.replace(IMPORT, '').replace(/\/\/# sourceMappingURL=.*$/m, '');
    const missing = names.filter((n) => scope[n] === undefined);
    if (missing.length) throw new Error(`chained op ${file}: tfjs-core does not export ${missing.join(', ')}`);
    new Function(...names, body)(...names.map((n) => scope[n]));
    registered++;
  }
  return registered;
}
