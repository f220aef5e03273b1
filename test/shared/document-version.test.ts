import { SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deployedDocumentVersion, sendDocument } from '../../lambdas/shared/commands.js';
import type { StepDeps } from '../../lambdas/shared/steps.js';
import { loadWorkflowConfig } from '../../lambdas/shared/workflow-config.js';
import { syncAllSteps } from '../../lambdas/syncall/steps.js';

expect.extend(allCustomMatcher);

// CloudFormation updates the documents with UpdateMethod NewVersion; whether that version becomes the
// default is not to be relied on (docs/decisions.md, "SSM document versions"), so every SendCommand
// names the newest version itself. The fan-out's push is pinned in test/push/fanout.test.ts.
const ssmMock = mockClient(SSMClient);
const ssm = new SSMClient({ region: 'us-east-1' });

beforeEach(() => {
  ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
});

afterEach(() => {
  ssmMock.reset();
});

describe('the SSM document version commands run', () => {
  it('is $LATEST, the version the last deploy wrote', () => {
    expect(deployedDocumentVersion).toBe('$LATEST');
  });

  it('is named by every command sent to one instance (mount, unmount, format, sync, freeze)', async () => {
    await sendDocument(ssm, {
      documentName: 'Volsd-Mount-web',
      instanceId: 'i-0123456789abcdef0',
      parameters: { VolumeId: 'vol-0123456789abcdef0' },
    });

    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, {
      DocumentName: 'Volsd-Mount-web',
      DocumentVersion: '$LATEST',
    });
  });

  it("is named by sync-all's Volsd-Sync to the whole pool", async () => {
    const config = loadWorkflowConfig({
      TABLE_NAME: 'volsd-web',
      POOL_NAME: 'web',
      PUSH_BUCKET: 'volsd-web-push',
      SYNC_DOCUMENT: 'Volsd-Sync-web',
    });
    const repo = { getPool: async () => ({ generation: 4 }) } as unknown as StepDeps['repo'];
    const deps = { repo, ssm, config } as unknown as StepDeps;

    const send = syncAllSteps.send;
    if (!send) throw new Error('sync-all has no send step');
    await send({ pool: 'web' }, deps);

    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, {
      DocumentName: 'Volsd-Sync-web',
      DocumentVersion: '$LATEST',
    });
  });
});
