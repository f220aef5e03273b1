#!/usr/bin/env node
/**
 * The package's `volsd-client` bin, the file `npx volsd-client` runs in a checkout. It is committed,
 * not built: npm links a bin at install time and skips one whose file is missing, so a bin that pointed
 * at the bundle (dist/volsd-client.mjs, written only by client/build.ts) left `npm ci && npx
 * volsd-client` with "command not found" on a fresh clone.
 *
 * It runs the TypeScript sources through tsx (a devDependency) rather than the bundle even when one
 * exists: the bundle is the file to copy onto hosts, rebuilt by hand, and in a checkout it can be older
 * than the sources. Only where tsx is not installed (`npm ci --omit=dev`) does it fall back to the
 * bundle. Plain JavaScript, because Node 20 cannot run TypeScript by itself.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const sources = new URL('../client/bin.ts', import.meta.url);
const bundle = new URL('../dist/volsd-client.mjs', import.meta.url);

/** tsx's in-process loader (no child process: signals, stdio and the exit code stay this process's). */
async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch (err) {
    // Only "tsx is not installed" falls back; any other failure is a real one and is shown as is.
    if (err?.code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

const tsx = await loadTsx();
if (tsx) {
  tsx.register();
  // client/bin.ts reads its arguments from process.argv.slice(2), which are this launcher's.
  await import(sources.href);
} else if (existsSync(bundle)) {
  await import(bundle.href);
} else {
  process.stderr.write(
    `volsd-client: cannot run: tsx is not installed (run 'npm ci' with dev dependencies) and there is no bundle at ${fileURLToPath(bundle)} (build it with 'npx tsx client/build.ts')\n`,
  );
  // ExitCode.Unexpected (client/errors.ts): nothing the command line could fix.
  process.exitCode = 1;
}
