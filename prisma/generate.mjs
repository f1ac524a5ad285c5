// Generates the Prisma client into src/infra/generated/prisma from prisma/schema.prisma.
// Runs after `npm install` / `npm ci` (postinstall) and as `npm run prisma:generate` after a
// schema change. Works offline.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);

let cli;
try {
  cli = path.join(path.dirname(require.resolve('prisma/package.json')), 'build', 'index.js');
} catch {
  // An install without dev dependencies: nothing to generate with. The client must then
  // come from a build that had them.
  console.warn('prisma/generate.mjs: the prisma CLI is not installed; Prisma client not generated.');
  process.exit(0);
}

const env = {
  ...process.env,
  CHECKPOINT_DISABLE: '1',
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
};
// The CLI downloads a native schema engine before every command, though `generate` never
// runs it, and fails where nothing can be downloaded; naming any existing file skips that.
env.PRISMA_SCHEMA_ENGINE_BINARY ||= process.execPath;

const result = spawnSync(
  process.execPath,
  [cli, 'generate', '--schema', path.join(root, 'prisma', 'schema.prisma')],
  { cwd: root, env, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
