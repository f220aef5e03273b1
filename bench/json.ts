/**
 * Writes a report's JSON the way `npm test` lints it: `JSON.stringify` lays every array out one item
 * per line, which Biome (run over docs/*.json) rewrites, so the file is then formatted by the repo's own
 * Biome. Without the Biome binary (a partial install) the plain layout is left and `npm test` says so.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const biome = join(repo, 'node_modules', '.bin', 'biome');

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  // Outside the repository (a run kept elsewhere) nothing lints it.
  if (!existsSync(biome) || relative(repo, file).startsWith('..')) return;
  const result = spawnSync(biome, ['format', '--write', file], { cwd: repo, encoding: 'utf8' });
  if (result.status !== 0) console.error(`biome format ${file}: ${result.stderr || result.stdout}`.trim());
}
