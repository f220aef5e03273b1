import {
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { defaultMaxObjectBytes, parseResults as parseDocumentResults } from './documents.js';
import { CommandFailed, CommandPending, InstanceNotReady, InvalidInput } from './errors.js';

const errorName = (err: unknown) => (err instanceof Error ? err.name : '');

/**
 * The document version every Volsd SendCommand names: the newest, the one the last deploy wrote.
 * CloudFormation updates the documents with `UpdateMethod: NewVersion`, documented to make the new
 * version the default, but reported not to; without a version SendCommand runs the default, which
 * could then stay an older script (docs/decisions.md, "SSM document versions").
 */
export const deployedDocumentVersion = '$LATEST';

/**
 * Volsd-Sync's MaxObjectBytes for a function that sends it: the pool's push object limit
 * (`PUSH_MAX_OBJECT_BYTES`, the variable the fan-out enforces it with), or the document's default when
 * unset. The sync skips larger objects: the fan-out refuses their push, but they stay in the bucket.
 */
export function syncMaxObjectBytes(source: Record<string, string | undefined> = process.env): string {
  const value = source.PUSH_MAX_OBJECT_BYTES;
  if (value === undefined || value === '') return String(defaultMaxObjectBytes);
  if (!/^[1-9][0-9]{0,15}$/.test(value))
    throw new InvalidInput(`PUSH_MAX_OBJECT_BYTES must be a positive integer, not ${JSON.stringify(value)}`);
  return value;
}

/** Sends an SSM document to one instance and returns the command id. */
export async function sendDocument(
  ssm: SSMClient,
  input: {
    documentName: string;
    instanceId: string;
    parameters: Record<string, string>;
    timeoutSeconds?: number;
    comment?: string;
  },
): Promise<string> {
  try {
    const out = await ssm.send(
      new SendCommandCommand({
        DocumentName: input.documentName,
        DocumentVersion: deployedDocumentVersion,
        InstanceIds: [input.instanceId],
        Parameters: Object.fromEntries(Object.entries(input.parameters).map(([k, v]) => [k, [v]])),
        TimeoutSeconds: input.timeoutSeconds ?? 60,
        Comment: input.comment?.slice(0, 100),
      }),
    );
    const id = out.Command?.CommandId;
    if (!id) throw new CommandFailed(`SendCommand ${input.documentName} returned no command id`);
    return id;
  } catch (err) {
    // An instance whose agent has not registered yet (booting) is not a managed instance yet.
    if (errorName(err) === 'InvalidInstanceId') {
      throw new InstanceNotReady(`instance ${input.instanceId} is not reachable by SSM yet`, { cause: err });
    }
    throw err;
  }
}

/** One `VOLSD_RESULT {json}` line printed by a Volsd script. */
export type ScriptResult = Record<string, unknown>;

/** The outcome of a finished command on one instance. */
export interface CommandOutcome {
  status: 'Success';
  results: ScriptResult[];
  stdoutTail: string;
}

const pending = new Set(['Pending', 'InProgress', 'Delayed']);

/**
 * Reads a command's invocation on an instance. Still running: CommandPending (the workflow polls again).
 * Finished without success: CommandFailed naming the status and the end of its error output.
 */
export async function commandOutcome(
  ssm: SSMClient,
  commandId: string,
  instanceId: string,
): Promise<CommandOutcome> {
  let out: GetCommandInvocationCommandOutput;
  try {
    out = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }));
  } catch (err) {
    // Right after SendCommand the invocation may not exist yet.
    if (errorName(err) === 'InvocationDoesNotExist')
      throw new CommandPending(`command ${commandId} not visible yet`);
    throw err;
  }
  const status = out.Status ?? 'Pending';
  if (pending.has(status)) throw new CommandPending(`command ${commandId} on ${instanceId} is ${status}`);
  const stdout = out.StandardOutputContent ?? '';
  if (status !== 'Success') {
    const stderr = (out.StandardErrorContent ?? '').trim().split('\n').slice(-3).join(' | ');
    const failed = new CommandFailed(
      `command ${commandId} on ${instanceId} ended ${status}${out.StatusDetails && out.StatusDetails !== status ? ` (${out.StatusDetails})` : ''} (exit ${out.ResponseCode ?? '?'}): ${stderr || stdout.slice(-300)}`,
    );
    failed.status = status;
    if (out.StatusDetails) failed.statusDetails = out.StatusDetails;
    throw failed;
  }
  return { status: 'Success', results: parseResults(stdout), stdoutTail: stdout.slice(-500) };
}

/** The `VOLSD_RESULT {json}` objects of a script's output (the catalogue's parser, objects only). */
export function parseResults(stdout: string): ScriptResult[] {
  const parsed: unknown[] = parseDocumentResults(stdout);
  return parsed.filter((r): r is ScriptResult => typeof r === 'object' && r !== null);
}
