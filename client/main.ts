import packageJson from '../package.json' with { type: 'json' };
import { type CommandName, helpText, parseCommandLine } from './cli.js';
import type { CommandContext, CommandResult } from './context.js';
import { ClientError, ExitCode, UsageError } from './errors.js';
import type { ProgressMode } from './progress.js';

/** The client's version (the package's). */
export const version: string = packageJson.version;

/** A stream the client writes to; `isTTY` decides the progress display. */
export interface OutputStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** The process around the client: its streams, environment and clock (tests pass their own). */
export interface ClientIo {
  stdout: OutputStream;
  stderr: OutputStream;
  env: Record<string, string | undefined>;
  now?: () => number;
}

// Loaded on demand: help, --version and usage errors then never evaluate the AWS SDK, which is most
// of the bundle's start-up time.
const hostCommands = () => import('./commands/host.js');
const adminCommands = () => import('./commands/admin.js');

const handlers: Record<CommandName, (ctx: CommandContext) => Promise<CommandResult>> = {
  acquire: async (ctx) => (await hostCommands()).acquire(ctx),
  release: async (ctx) => (await hostCommands()).release(ctx),
  status: async (ctx) => (await hostCommands()).status(ctx),
  volumes: async (ctx) => (await adminCommands()).volumes(ctx),
  pool: async (ctx) => (await adminCommands()).pool(ctx),
  pushes: async (ctx) => (await adminCommands()).pushes(ctx),
  replenish: async (ctx) => (await adminCommands()).replenish(ctx),
  snapshot: async (ctx) => (await adminCommands()).snapshot(ctx),
  sync: async (ctx) => (await adminCommands()).sync(ctx),
};

/**
 * Runs volsd-client with `argv` (no node/script prefix) and returns the exit code. Results go to
 * stdout (a table, or one JSON document with --output json); progress, notes and error messages go
 * to stderr; with --output json an error is also printed to stdout as `{"error": {...}}`.
 */
export async function main(argv: readonly string[], io: ClientIo): Promise<ExitCode> {
  let json = argv.some((a, i) => a === '--output=json' || (a === '--output' && argv[i + 1] === 'json'));
  let ctx: CommandContext | undefined;
  try {
    const invocation = parseCommandLine(argv);
    if (invocation.kind === 'help') {
      io.stdout.write(helpText(invocation.command));
      return ExitCode.Ok;
    }
    if (invocation.kind === 'version') {
      io.stdout.write(`volsd-client ${version}\n`);
      return ExitCode.Ok;
    }
    json = invocation.globals.output === 'json';
    const progressMode: ProgressMode =
      json || invocation.globals.quiet ? 'silent' : io.stderr.isTTY ? 'tty' : 'plain';
    ctx = {
      command: invocation.command,
      globals: invocation.globals,
      args: invocation.args,
      env: io.env,
      progressMode,
      progressSink: io.stderr,
      now: io.now ?? Date.now,
    };
    const result = await handlers[invocation.command](ctx);
    io.stdout.write(json ? `${JSON.stringify(result.data, null, 2)}\n` : result.text);
    return ExitCode.Ok;
  } catch (err) {
    return report(err, io, json);
  } finally {
    if (ctx?.clients) (await import('./aws.js')).destroyClients(ctx.clients);
  }
}

function report(err: unknown, io: ClientIo, json: boolean): ExitCode {
  const error =
    err instanceof ClientError
      ? err
      : new ClientError(
          ExitCode.Unexpected,
          'Unexpected',
          `unexpected error: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
        );
  // A usage error found once the command line parsed (no pool, no Region) is an error like any other:
  // with --output json, a script reads it on stdout too.
  const hint = err instanceof UsageError ? err.hint : undefined;
  if (json) {
    const body = { code: error.code, exitCode: error.exitCode, message: error.message, ...error.details };
    io.stdout.write(`${JSON.stringify({ error: { ...body, ...(hint ? { hint } : {}) } }, null, 2)}\n`);
  }
  io.stderr.write(`volsd-client: ${error.message}${hint ? ` (see '${hint}')` : ''}\n`);
  if (io.env.VOLSD_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
  return error.exitCode;
}
