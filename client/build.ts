import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** Where `npx tsx client/build.ts` puts the bundle. */
export const defaultBundlePath = resolve(repoRoot, 'dist', 'volsd-client.mjs');

/**
 * Bundles volsd-client (client/bin.ts and everything it imports, the AWS SDK included) into one ESM
 * file that runs with plain `node` (>= 20) and nothing else installed: the file to copy onto hosts.
 * The bundle is written next to its destination and renamed into place, so builds running at the
 * same time (test files in parallel) never leave a half-written file.
 */
export async function buildClient(outfile: string = defaultBundlePath): Promise<string> {
  await mkdir(dirname(outfile), { recursive: true });
  const temporary = `${outfile}.${process.pid}.${Date.now()}.tmp`;
  try {
    await build({
      entryPoints: [resolve(repoRoot, 'client', 'bin.ts')],
      outfile: temporary,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // The SDK's ES module builds tree-shake: the bundle is a quarter of the CommonJS one and starts faster.
      mainFields: ['module', 'main'],
      minify: true,
      // Error classes are matched by name (the SDK's exceptions, Volsd's): keep them.
      keepNames: true,
      sourcemap: false,
      legalComments: 'none',
      logLevel: 'silent',
      // Some SDK dependencies are CommonJS and require() Node built-ins: give the ESM bundle a require.
      banner: {
        js: "import { createRequire as __volsdCreateRequire } from 'node:module'; const require = __volsdCreateRequire(import.meta.url);",
      },
    });
    await rename(temporary, outfile);
  } finally {
    await rm(temporary, { force: true });
  }
  return outfile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildClient(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`volsd-client bundled: ${out}`);
}
