import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DocumentName, documents, ExitCode, readScript } from '../../lambdas/shared/documents.js';
import { InvalidInput } from '../../lambdas/shared/errors.js';
import {
  type DocumentHost,
  registerVolsdDocuments,
  renderRunCommand,
  type ScriptRunner,
  scriptRunner,
  ToolMissing,
} from '../../sandbox/agent/runner.js';
import { decodeKeyPath, encodeKeyPath } from '../../sandbox/agent/s3-fidelity.js';
import type { DocumentRunner } from '../../sandbox/sim/ssm.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, instanceId, type TestHost, withResults } from './host.js';

const vol = volumeId(0xa);
let host: TestHost;

beforeEach(async () => {
  host = await createHost();
});

afterEach(async () => {
  await host.cleanup();
});

const context = (parameters: Record<string, string[]>) => ({
  instanceId,
  hostRoot: host.hostRoot,
  rootDir: host.rootDir,
  parameters,
  devices: [],
});

describe('scriptRunner', () => {
  it("runs the SSM document's own shell wrapper under /bin/sh", async () => {
    // Prepare
    const runner = scriptRunner(DocumentName.Unmount, { via: 'document' });

    // Act
    const out = withResults(await runner(context({ VolumeId: [vol] })));

    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
    expect(out.result).toMatchObject({ op: 'unmount', volumeId: vol, status: 'not-mounted' });
  });

  it('substitutes the parameters into the document as the SSM agent does', () => {
    // Act
    const text = renderRunCommand(
      documents[DocumentName.Unmount],
      readScript(documents[DocumentName.Unmount]),
      {
        VolumeId: [vol],
      },
    );

    // Assess
    expect(text.split('\n').slice(0, 2)).toEqual([
      `export VOLSD_VOLUME_ID='${vol}'`,
      "export VOLSD_BUSY_WAIT_SECONDS='5'",
    ]);
  });

  it('refuses parameters that would break out of their quotes before running anything', () => {
    // Prepare
    const runner = scriptRunner(DocumentName.Unmount, { via: 'document' });

    // Act
    const run = runner(context({ VolumeId: [`${vol}'; touch /tmp/pwned; '`] }));

    // Assess
    return expect(run).rejects.toThrow(InvalidInput);
  });

  it('kills a script that outlives its timeout', async () => {
    // Prepare: the device never appears and the script would wait 300 s for it.
    const runner = scriptRunner(DocumentName.Mount, { timeoutMs: 300 });

    // Act
    const out = await runner(
      context({ VolumeId: [vol], MountPath: ['/srv/www'], DeviceWaitSeconds: ['300'] }),
    );

    // Assess
    expect(out).toMatchObject({ exitCode: 124, timedOut: true });
  });

  it('kills a script when the simulator aborts the invocation', async () => {
    // Prepare
    const runner = scriptRunner(DocumentName.Mount);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);

    // Act
    const out = await runner({
      ...context({ VolumeId: [vol], MountPath: ['/srv/www'], DeviceWaitSeconds: ['300'] }),
      signal: abort.signal,
    });

    // Assess
    expect(out.timedOut).toBe(true);
  });

  it('names the Debian package when the AWS CLI is missing', async () => {
    // Prepare
    const runner = scriptRunner(DocumentName.Sync, { awsCli: '/nonexistent/aws' });

    // Act
    const run = runner(context({ Bucket: ['volsd-push'], Generation: ['1'] }));

    // Assess
    await expect(run).rejects.toThrow(ToolMissing);
    await expect(run).rejects.toThrow(/apt-get install awscli/);
  });

  it('reports the script failure through the exit code and the last result', async () => {
    // Prepare
    const runner = scriptRunner(DocumentName.Freeze);

    // Act
    const out = withResults(await runner(context({ VolumeId: [vol], Mode: ['freeze'] })));

    // Assess
    expect(out.exitCode).toBe(ExitCode.NotMounted);
    expect(out.result).toMatchObject({
      status: 'failed',
      code: 'not-mounted',
      exitCode: ExitCode.NotMounted,
    });
  });

  it('registers a runner for every Volsd document, usable as a simulator document runner', () => {
    // Prepare
    const registered: string[] = [];
    const ssm: DocumentHost = {
      registerDocument(name: string, runner: ScriptRunner) {
        const asSimRunner: DocumentRunner = runner;
        registered.push(name);
        expect(typeof asSimRunner).toBe('function');
      },
    };

    // Act
    registerVolsdDocuments(ssm);

    // Assess
    expect(registered.sort()).toEqual(Object.values(DocumentName).sort());
  });
});

describe('s3rver key storage', () => {
  it.each([
    'live/index.html',
    'live/../x',
    'live//etc/x',
    'live/a\u0001b',
    'live/&amp;',
    'live/back\\slash',
    'live/dir/',
    './x',
  ])('keeps %j distinct and inside the bucket directory', (key) => {
    // Act
    const path = encodeKeyPath(key);

    // Assess
    expect(decodeKeyPath(path)).toBe(key);
    expect(
      path.split('/').filter((s, i, all) => s === '..' || s === '.' || (s === '' && i < all.length - 1)),
    ).toEqual([]);
  });
});
