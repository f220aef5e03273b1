/**
 * On a host where the boot unit (a real script) runs, the modelled runner's twins and the script take
 * the same lock: the script's flock on <root>/run/volsd/lock/<volume>. Otherwise a twin's Volsd-Unmount
 * could run in the middle of the unit's own Volsd-Sync, which then writes its markers under the emptied
 * mount point, on the host's disk (seen once by the boot-unit chaos test in CI).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DocumentName } from '../../lambdas/shared/documents.js';
import { modelRunner, scriptRunsOn, withVolumeLock } from '../../sandbox/agent/model-runner.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, eventually, instanceId, serialOf, type TestHost, withResults } from './host.js';

const volA = volumeId(0xa1);
const pathA = `/var/lib/volsd/${volA}`;

let host: TestHost;

const lockFile = () => join(host.hostRoot, 'run', 'volsd', 'lock', volA);

/** True when another process could take the volume's flock at once. */
const flockFree = () => spawnSync('flock', ['-n', lockFile(), 'true']).status === 0;

const unmountTwin = () =>
  modelRunner(DocumentName.Unmount)({
    instanceId,
    hostRoot: host.hostRoot,
    rootDir: host.rootDir,
    parameters: { VolumeId: [volA] },
    devices: [],
    commandId: 'cmd-twin',
    documentName: DocumentName.Unmount,
    signal: new AbortController().signal,
  }).then(withResults);

beforeAll(async () => {
  host = await createHost();
  await host.createVolume(volA, { formatted: true });
  await host.attach(volA, 1);
  const mounted = await host.run(DocumentName.Mount, { VolumeId: volA, MountPath: pathA });
  expect(mounted.exitCode).toBe(0);
});

afterAll(async () => {
  await host?.cleanup();
});

const mounted = () => host.mounts().some((line) => line.includes(` ${pathA} `));

describe("the twins on a host whose boot unit runs take the script's flock", () => {
  it("makes a twin's Volsd-Unmount wait while the script holds the volume's lock", async () => {
    const end = await scriptRunsOn(host.hostRoot);
    try {
      const lock = await host.holdLock(volA);
      const running = unmountTwin();
      // The twin must not unmount while the lock is held: the volume stays mounted the whole time.
      const unmountedEarly = await eventually(() => !mounted(), 1500);
      expect(unmountedEarly).toBe(false);
      lock.release();
      const out = await running;
      expect(out.exitCode).toBe(0);
      expect(out.result).toMatchObject({ op: 'unmount', volumeId: volA });
      expect(mounted()).toBe(false);
      expect(host.mounts().join('\n')).not.toContain(serialOf(volA));
    } finally {
      end();
    }
  });

  it("holds the script's flock while a twin runs, so the script waits for it", async () => {
    const end = await scriptRunsOn(host.hostRoot);
    try {
      const during = await withVolumeLock(host.hostRoot, volA, async () => flockFree());
      expect(during).toBe(false);
      expect(flockFree()).toBe(true);
    } finally {
      end();
    }
  });

  it("waits for a twin's run already under way before the script starts", async () => {
    let finish = () => {};
    const gate = new Promise<void>((ok) => {
      finish = ok;
    });
    const twin = withVolumeLock(host.hostRoot, volA, () => gate);
    let started = false;
    const marking = scriptRunsOn(host.hostRoot).then((end) => {
      started = true;
      return end;
    });
    expect(await eventually(() => started, 300)).toBe(false);
    finish();
    await twin;
    const end = await marking;
    expect(started).toBe(true);
    end();
  });
});
