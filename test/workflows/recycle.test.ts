import { chmodSync, lstatSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { putContent, scaleAndSettle } from '../helpers/sandbox.js';
import { walk } from '../scripts/host.js';

/*
 * Release policy `recycle`: the volume goes back to the pool from an instance that may have been
 * compromised. It must not be IDLE again before its content is rebuilt from the bucket.
 */
let sandbox: Sandbox;
let volumeId: string;
let tampered: string;

beforeAll(async () => {
  // The modelled scripts (their twin agrees with the real Volsd-Sync on untrusted volumes:
  // test/sandbox/model-runner-sync.test.ts; the real script alone: test/scripts/sync-untrusted.test.ts).
  sandbox = await Sandbox.start({
    azs: 1,
    idlePerAz: 1,
    timeScale: 0.05,
    seed: 181,
    releasePolicy: 'recycle',
    agent: 'model',
  });
  await putContent(sandbox, 'live/index.html', 'good');
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  await sandbox.replenishAll();
  const [instanceId] = await scaleAndSettle(sandbox, 1);
  if (!instanceId) throw new Error('no instance launched');
  const held = sandbox.cloud
    .snapshotState()
    .volumes.find((v) => v.attachment?.instanceId === instanceId && !v.root);
  if (!held) throw new Error(`nothing attached to ${instanceId}`);
  volumeId = held.volumeId;
  // What a compromised instance leaves: a rewrite with size and time kept, a setuid program, a forged marker.
  const data = sandbox.cloud.volumeDataDir(volumeId);
  const { atime, mtime } = statSync(join(data, 'index.html'));
  writeFileSync(join(data, 'index.html'), 'evil');
  utimesSync(join(data, 'index.html'), atime, mtime);
  writeFileSync(join(data, 'backdoor'), '#!/bin/sh\n');
  chmodSync(join(data, 'backdoor'), 0o4755);
  writeFileSync(join(data, '.volsd', 'generation'), '999\n');
  tampered = readFileSync(join(data, 'index.html'), 'utf8');
  await scaleAndSettle(sandbox, 0);
}, 300_000);

afterAll(async () => {
  await sandbox?.stop();
});

describe('a recycled volume', () => {
  it('is rebuilt from the bucket before it is idle again: bucket bytes, no stray file, no setuid bit', async () => {
    expect(tampered).toBe('evil');
    // The release's replenish took it back: SYNCING and untrusted, then rebuilt and IDLE.
    const record = await sandbox.repo.findVolume(volumeId);
    expect(record?.state).toBe(VolumeState.Idle);
    expect(record?.untrusted).toBeUndefined();
    const data = sandbox.cloud.volumeDataDir(volumeId);
    expect(readFileSync(join(data, 'index.html'), 'utf8')).toBe('good');
    const files = walk(data).filter((p) => !lstatSync(join(data, p)).isDirectory());
    expect(files.sort()).toEqual(['.volsd/etags', '.volsd/generation', 'index.html']);
    expect(readFileSync(join(data, '.volsd', 'generation'), 'utf8').trim()).toBe(
      String((await sandbox.repo.getPool(sandbox.options.pool)).generation),
    );
  });

  it('was named Untrusted in the Volsd-Sync the worker ran', async () => {
    const listed = (await sandbox.cloud.handle('ssm', 'ListCommands', {})) as {
      Commands?: { DocumentName?: string; Parameters?: Record<string, string[]> }[];
    };
    const untrusted = (listed.Commands ?? [])
      .filter((c) => /Sync/.test(c.DocumentName ?? ''))
      .flatMap((c) => c.Parameters?.Untrusted ?? []);
    expect(untrusted).toContain(volumeId);
  });
});
