/**
 * volsd-client's exit codes. A script can rely on them: they are documented in `--help` and
 * client/README.md, and the end-to-end tests check each one.
 */
export const ExitCode = {
  /** Done. */
  Ok: 0,
  /** Something unexpected (a bug, an endpoint that does not answer, a malformed reply). */
  Unexpected: 1,
  /** Bad command line: unknown command or option, bad value, missing pool or Region. */
  Usage: 2,
  /** acquire/release/status need an EC2 host, and the instance metadata service did not answer. */
  NotOnEc2: 3,
  /** AWS refused a call (the message names the action), or there are no credentials. */
  PermissionDenied: 4,
  /** No pool of that name in this Region (no parameters under /volsd/<pool>). */
  UnknownPool: 5,
  /** The workflow did not finish within --timeout (it goes on running). */
  Timeout: 6,
  /** This host already holds a volume, or another acquire is in flight for it. */
  Conflict: 7,
  /** The workflow failed; the message carries its error and cause. */
  WorkflowFailed: 8,
  /** The pool does not deploy what the command needs (e.g. no snapshot workflow). */
  NotDeployed: 9,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** One line per exit code, for `--help` and the README. */
export const exitCodeHelp: readonly [ExitCode, string][] = [
  [ExitCode.Ok, 'ok'],
  [ExitCode.Unexpected, 'unexpected error'],
  [ExitCode.Usage, 'usage error (unknown command or option, bad value, no pool or Region)'],
  [ExitCode.NotOnEc2, 'not on EC2 (the instance metadata service did not answer)'],
  [ExitCode.PermissionDenied, 'permission denied (names the missing action) or no credentials'],
  [ExitCode.UnknownPool, 'unknown pool (nothing under /volsd/<pool> in this Region)'],
  [ExitCode.Timeout, 'timeout: the workflow goes on, check with `status`'],
  [ExitCode.Conflict, 'this host already holds a volume, or an acquire is in flight'],
  [ExitCode.WorkflowFailed, 'the workflow failed (its error and cause are printed)'],
  [ExitCode.NotDeployed, 'not deployed in this pool (e.g. no snapshot workflow)'],
];

/**
 * An error the client reports and exits with: a stable `code` (in JSON output), the exit code, a
 * one-line message, and optional details (JSON output only).
 */
export class ClientError extends Error {
  override name = 'ClientError';
  constructor(
    readonly exitCode: ExitCode,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A bad command line; `hint` tells where to look (`volsd-client acquire --help`). */
export class UsageError extends ClientError {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(ExitCode.Usage, 'UsageError', message);
  }
}
