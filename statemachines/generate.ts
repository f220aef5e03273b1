/**
 * Writes `statemachines/<name>.asl.json` from `statemachines/definitions/`: the Tasks' Retry and
 * Catch come from the named profiles of `definitions/profiles.ts`, so the committed files stay plain
 * ASL (Workflow Studio, the sandbox and CDK read them as they are) without copied retriers.
 *
 *   npm run generate:asl            write every file
 *   npm run generate:asl -- --check exit 1 when a committed file differs from the output
 *
 * The output is formatted by the repository's Biome (as `biome format` formats the file), so
 * `biome check .` passes on it and `test/infra/asl-generated.test.ts` can compare byte for byte.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { definitions } from './definitions/index.js';

/** The repository root. */
const root = fileURLToPath(new URL('..', import.meta.url));

/** Path of a state machine's ASL file, relative to the repository root. */
export function aslFile(name: string): string {
  return `statemachines/${name}.asl.json`;
}

/** The names of the generated state machines (`acquire`, ...). */
export const stateMachineNames: readonly string[] = Object.keys(definitions);

/** Formats JSON text as `biome format` does for `file` (its configuration and overrides apply). */
function biomeFormat(text: string, file: string): string {
  const biome = join(root, 'node_modules', '.bin', 'biome');
  const result = spawnSync(biome, ['format', `--stdin-file-path=${file}`], {
    cwd: root,
    input: text,
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`biome format ${file} failed: ${result.stderr || result.error}`);
  return result.stdout;
}

/** The generated, formatted text of `statemachines/<name>.asl.json`. */
export function renderStateMachine(name: string): string {
  const definition = definitions[name];
  if (!definition) throw new Error(`no state machine definition named ${name}`);
  return biomeFormat(`${JSON.stringify(definition, null, 2)}\n`, aslFile(name));
}

function main(args: readonly string[]): number {
  const check = args.includes('--check');
  let stale = 0;
  for (const name of stateMachineNames) {
    const path = join(root, aslFile(name));
    const text = renderStateMachine(name);
    const committed = readFileSync(path, 'utf8');
    if (committed === text) continue;
    if (check) {
      console.error(`${aslFile(name)} differs from the generator's output: run npm run generate:asl`);
      stale++;
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${aslFile(name)}`);
    }
  }
  return stale > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
