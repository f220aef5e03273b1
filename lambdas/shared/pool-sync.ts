/**
 * Volsd-Sync sent to every instance tagged with the pool (sync workers and web hosts alike), by tag: the
 * one command a push's fan-out and a growth's file-system pass both send.
 */
import { SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { deployedDocumentVersion } from './commands.js';
import { commandParameters, DocumentName, getDocument } from './documents.js';
import { poolTag } from './tags.js';

/** Where the content is and how the pool-wide command is paced. */
export interface PoolSyncConfig {
  pool: string;
  bucket: string;
  prefix: string;
  maxObjectBytes: number;
  syncDocument: string;
  maxConcurrency: string;
  maxErrors: string;
  deliveryTimeoutSeconds: number;
}

/** Sends Volsd-Sync to the pool's tag at `generation`; returns the command id. */
export async function sendPoolSync(
  ssm: Pick<SSMClient, 'send'>,
  config: PoolSyncConfig,
  options: { generation: number; comment: string; onlyBehind?: boolean },
): Promise<string> {
  // Validated against the document's own patterns, as SSM would (InvalidParameters).
  const parameters = commandParameters(getDocument(DocumentName.Sync), {
    Bucket: config.bucket,
    Prefix: config.prefix,
    Generation: options.generation,
    // The limit pushes are refused by: the sync must not copy what a push refused.
    MaxObjectBytes: config.maxObjectBytes,
    ...(options.onlyBehind === undefined ? {} : { OnlyBehind: options.onlyBehind ? 'true' : 'false' }),
  });
  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: config.syncDocument,
      DocumentVersion: deployedDocumentVersion,
      Targets: [{ Key: `tag:${poolTag}`, Values: [config.pool] }],
      Parameters: parameters,
      MaxConcurrency: config.maxConcurrency,
      MaxErrors: config.maxErrors,
      TimeoutSeconds: config.deliveryTimeoutSeconds,
      Comment: options.comment.slice(0, 100),
    }),
  );
  const id = out.Command?.CommandId;
  if (!id) throw new Error('SendCommand returned no command id');
  return id;
}
