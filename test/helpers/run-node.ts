import { spawn } from 'node:child_process';

/** What one Node process produced. */
export interface NodeRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node script ...args` as a separate process with exactly `env` and collects its output.
 * Asynchronous, so servers in the test's own process keep serving while it runs.
 */
export function runNode(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  cwd?: string,
): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      ...(cwd ? { cwd } : {}),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
