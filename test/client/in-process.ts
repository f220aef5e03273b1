import { main } from '../../client/main.js';

/** What one in-process run of volsd-client produced. */
export interface MainRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs volsd-client's `main` in this process with `env` (the SDK still reads endpoints and keys from
 * `process.env`), collecting stdout and stderr; `now` fixes the clock where output shows ages.
 */
export async function runMain(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  now?: () => number,
): Promise<MainRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env,
    ...(now ? { now } : {}),
  });
  return { code, stdout, stderr };
}
