import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DocumentName, ExitCode } from '../../lambdas/shared/documents.js';
import { InvalidInput } from '../../lambdas/shared/errors.js';
import { modelRunner, registerModelledDocuments } from '../../sandbox/agent/model-runner.js';
import type { DocumentRunner } from '../../sandbox/sim/ssm.js';
import { volumeId } from '../helpers/ids.js';
import { instanceId, missingTools, type Outcome, Pair } from './model-runner-pair.js';

const volA = volumeId(0xa);
const volB = volumeId(0xb);
const web = '/srv/www';
const worker = `/var/lib/volsd/${volA}`;

const missing = missingTools();
if (missing) console.warn(`${missing} is not installed: the model-vs-script conformance cases are skipped`);

let pair: Pair;

/** Asserts that both runs ended alike and left the same trees; returns the model's outcome. */
function expectSame(out: { script: Outcome; model: Outcome }): Outcome {
  expect(out.model.exitCode, out.script.raw.stderr).toBe(out.script.exitCode);
  expect(out.model.results).toEqual(out.script.results);
  expect(out.model.rejected).toEqual(out.script.rejected);
  const trees = pair.trees();
  expect(trees.model).toEqual(trees.script);
  return out.model;
}

const mount = (volume: string, path: string, extra: Record<string, string> = {}) =>
  pair.run(DocumentName.Mount, { VolumeId: volume, MountPath: path, DeviceWaitSeconds: '0', ...extra });
const format = (volume: string, path: string) =>
  pair.run(DocumentName.Format, { VolumeId: volume, MountPath: path, DeviceWaitSeconds: '0' });
const unmount = (volume: string) =>
  pair.run(DocumentName.Unmount, { VolumeId: volume, BusyWaitSeconds: '0' });
const freeze = (volume: string, mode: 'freeze' | 'thaw') =>
  pair.run(DocumentName.Freeze, { VolumeId: volume, Mode: mode, MaxFreezeSeconds: '300' });

describe.runIf(!missing)('modelled runner vs the scripts', () => {
  beforeEach(() => {
    pair = new Pair();
  });

  afterEach(() => {
    pair.cleanup();
  });

  describe('Volsd-Mount', () => {
    it('mounts a formatted volume alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true, files: { 'index.html': 'hi' } });
      pair.attach(volA, 1);

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ status: 'mounted', device: '/dev/nvme1n1' });
    });

    it('reports already-mounted alike and the generation on the volume', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true, files: { '.volsd/generation': '42\n' } });
      pair.attach(volA, 1);
      await mount(volA, web);

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ status: 'already-mounted', generation: 42 });
    });

    it('refuses a second mount of the same device alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);

      // Act
      const out = await mount(volA, worker);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountConflict);
    });

    it('refuses a path that holds another device alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.createVolume(volB, { formatted: true });
      pair.attach(volA, 1);
      pair.attach(volB, 2);
      await mount(volA, web);

      // Act
      const out = await mount(volB, web);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountConflict);
    });

    it('fails alike on a volume without a filesystem', async () => {
      // Prepare
      pair.createVolume(volA);
      pair.attach(volA, 1);

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountFailed);
    });

    it('fails alike when the device is not attached', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.DeviceNotFound);
    });

    it('fails alike when the by-id link leads to another volume', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.createVolume(volB, { formatted: true });
      pair.attach(volB, 1);
      pair.prepare((side) => {
        const byId = join(side.hostRoot, 'dev/disk/by-id');
        writeFileSync(join(side.hostRoot, 'dev/nvme2n1'), side.volumeDir(volB));
        symlinkSync('../../nvme2n1', join(byId, `nvme-Amazon_Elastic_Block_Store_${volA.replace('-', '')}`));
      });

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.DeviceMismatch);
    });

    it('finds a device without its by-id link by serial alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 3);
      pair.prepare((side) =>
        rmSync(
          join(side.hostRoot, `dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volA.replace('-', '')}`),
        ),
      );

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ status: 'mounted', device: '/dev/nvme3n1' });
    });

    it('refuses a system directory alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);

      // Act
      const out = await mount(volA, '/etc');

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.BadParameters);
    });

    it.each([
      ['/etc/cron.d', {}],
      ['/usr/local/bin', {}],
      ['/srv/other', { MountRoots: '/srv/www /data' }],
    ])('refuses %s by the mount path policy alike (exit 15)', async (path, extra) => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);

      // Act
      const out = await mount(volA, path, extra);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountRefused);
    });

    it('refuses alike a path whose symlink leads into /etc', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      pair.prepare((side) => {
        mkdirSync(join(side.hostRoot, 'srv/www'), { recursive: true });
        symlinkSync('../../etc/cron.d', join(side.hostRoot, 'srv/www/site'));
      });

      // Act
      const out = await mount(volA, '/srv/www/site', { MountRoots: '/srv/www' });

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({
        code: 'mount-path-refused',
        resolved: '/etc/cron.d',
      });
    });

    it('mounts with nosuid,nodev whatever the options say, alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);

      // Act
      const out = await mount(volA, '/data/site', { MountRoots: '/srv/www /data', MountOptions: 'suid,dev' });

      // Assess
      expect(expectSame(out).exitCode).toBe(0);
      expect(pair.trees().model[`hosts/${instanceId}/proc/mounts`]).toContain('rw,nosuid,nodev,nouuid');
    });

    it('fails alike when the mount command fails (injected fault)', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      pair.injectFault('mount');

      // Act
      const out = await mount(volA, web, { MountOptions: 'noatime,ro' });

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountFailed);
    });

    it('keeps mount options in the mount table alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);

      // Act
      const out = await mount(volA, web, { MountOptions: 'ro,noatime,nouuid' });

      // Assess
      expect(expectSame(out).exitCode).toBe(0);
    });

    it('mounts with empty mount options alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);

      // Act
      const out = await mount(volA, web, { MountOptions: '' });

      // Assess
      expect(expectSame(out).exitCode).toBe(0);
    });

    it('refuses a mount path that is a file alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      pair.prepare((side) => {
        mkdirSync(join(side.hostRoot, 'srv'), { recursive: true });
        writeFileSync(join(side.hostRoot, 'srv/www'), 'a file');
      });

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountConflict);
    });

    it('refuses to hide a non-empty directory alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      pair.prepare((side) => {
        mkdirSync(join(side.hostRoot, 'srv/www'), { recursive: true });
        writeFileSync(join(side.hostRoot, 'srv/www/local.txt'), 'local');
      });

      // Act
      const out = await mount(volA, web);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountFailed);
    });

    it('rejects parameters that fail the document validation as the script runner does', async () => {
      // Prepare
      const ctx = {
        instanceId: 'i-0123456789abcdef0',
        hostRoot: pair.model.hostRoot,
        rootDir: pair.model.rootDir,
        parameters: { VolumeId: ['vol-nope'], MountPath: [web] },
        devices: [],
        commandId: 'cmd-1',
        documentName: DocumentName.Mount,
        signal: new AbortController().signal,
      };

      // Act
      const run = modelRunner(DocumentName.Mount)(ctx);

      // Assess
      await expect(run).rejects.toThrow(InvalidInput);
    });
  });

  describe('Volsd-Format', () => {
    it('formats and mounts an empty volume alike', async () => {
      // Prepare
      pair.createVolume(volA, { files: { 'garbage.bin': 'left by nobody' } });
      pair.attach(volA, 1);

      // Act
      const out = await format(volA, worker);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ formatted: true, status: 'mounted' });
    });

    it('only mounts a volume that already has a filesystem alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true, files: { 'keep.txt': 'kept' } });
      pair.attach(volA, 1);

      // Act
      const out = await format(volA, worker);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ formatted: false, status: 'mounted' });
    });

    it('neither formats nor remounts a volume mounted at the path alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await format(volA, worker);

      // Act
      const out = await format(volA, worker);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ formatted: false, status: 'already-mounted' });
    });

    it('refuses alike a volume mounted at another path', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);

      // Act
      const out = await format(volA, worker);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.MountConflict);
    });

    it('fails alike when mkfs fails (injected fault)', async () => {
      // Prepare
      pair.createVolume(volA);
      pair.attach(volA, 1);
      pair.injectFault('mkfs.xfs');

      // Act
      const out = await format(volA, worker);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.FormatFailed);
    });
  });

  describe('Volsd-Unmount', () => {
    it('unmounts a mounted volume alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);

      // Act
      const out = await unmount(volA);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ status: 'unmounted', mountPaths: [web] });
    });

    it('reports a volume that is not mounted alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);

      // Act
      const out = await unmount(volA);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ status: 'not-mounted', device: '/dev/nvme1n1' });
    });

    it('fails alike when the filesystem stays busy (injected fault)', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);
      pair.injectFault('umount');

      // Act
      const out = await unmount(volA);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.UnmountFailed);
    });

    it('thaws a frozen volume before unmounting it alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);
      await freeze(volA, 'freeze');

      // Act
      const out = await unmount(volA);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ status: 'unmounted' });
    });

    it('fails alike when a frozen volume cannot be thawed (injected fault)', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);
      await freeze(volA, 'freeze');
      pair.injectFault('fsfreeze');

      // Act
      const out = await unmount(volA);

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.UnmountFailed);
      pair.clearFault('fsfreeze');
      await freeze(volA, 'thaw');
    });

    it('unmounts lazily a volume detached while mounted alike', async () => {
      // Prepare
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);
      pair.detach(volA);

      // Act
      const out = await unmount(volA);

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ status: 'unmounted', device: null });
    });
  });

  describe('Volsd-Freeze', () => {
    beforeEach(async () => {
      pair.createVolume(volA, { formatted: true });
      pair.attach(volA, 1);
      await mount(volA, web);
    });

    afterEach(async () => {
      // Stops the script's watchdog process.
      await freeze(volA, 'thaw');
    });

    it('freezes alike', async () => {
      // Act
      const out = await freeze(volA, 'freeze');

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({
        frozen: true,
        changed: true,
        autoThawSeconds: 300,
      });
    });

    it('re-arms a frozen filesystem alike', async () => {
      // Prepare
      await freeze(volA, 'freeze');

      // Act
      const out = await freeze(volA, 'freeze');

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ frozen: true, changed: false });
    });

    it('thaws alike', async () => {
      // Prepare
      await freeze(volA, 'freeze');

      // Act
      const out = await freeze(volA, 'thaw');

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ frozen: false, changed: true });
    });

    it('thaws a thawed filesystem alike', async () => {
      // Act
      const out = await freeze(volA, 'thaw');

      // Assess
      expect(expectSame(out).results.at(-1)).toMatchObject({ frozen: false, changed: false });
    });

    it('fails alike when fsfreeze fails (injected fault)', async () => {
      // Prepare
      pair.injectFault('fsfreeze');

      // Act
      const out = await freeze(volA, 'freeze');

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.FreezeFailed);
      pair.clearFault('fsfreeze');
    });

    it('thaws alike when the bound passes without a thaw', async () => {
      // Prepare
      await pair.run(DocumentName.Freeze, { VolumeId: volA, Mode: 'freeze', MaxFreezeSeconds: '1' });

      // Act
      const frozenFiles = () =>
        Object.values(pair.trees()).flatMap((tree) =>
          Object.keys(tree).filter((p) => p.includes('/frozen/')),
        );
      for (let i = 0; i < 100 && frozenFiles().length > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }

      // Assess
      const trees = pair.trees();
      expect(trees.model).toEqual(trees.script);
      expect(Object.keys(trees.model).filter((p) => p.includes('/frozen/'))).toEqual([]);
    });

    it('fails a thaw alike when fsfreeze fails (injected fault)', async () => {
      // Prepare
      await freeze(volA, 'freeze');
      pair.injectFault('fsfreeze');

      // Act
      const out = await freeze(volA, 'thaw');

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.FreezeFailed);
      pair.clearFault('fsfreeze');
    });

    it('fails alike for a volume that is not mounted', async () => {
      // Prepare
      await unmount(volA);

      // Act
      const out = await freeze(volA, 'freeze');

      // Assess
      expect(expectSame(out).exitCode).toBe(ExitCode.NotMounted);
    });
  });
});

describe('modelled runner without the scripts', () => {
  it('registers a runner for every Volsd document', () => {
    // Prepare
    const names: string[] = [];
    const host = { registerDocument: (name: string, _runner: DocumentRunner) => names.push(name) };

    // Act
    registerModelledDocuments(host);

    // Assess
    expect(names.sort()).toEqual(Object.values(DocumentName).sort());
  });

  it('reports a modelled duration', async () => {
    // Prepare
    const local = new Pair();
    local.createVolume(volA, { formatted: true });
    local.attach(volA, 1);
    const ctx = {
      instanceId: 'i-0123456789abcdef0',
      hostRoot: local.model.hostRoot,
      rootDir: local.model.rootDir,
      parameters: { VolumeId: [volA], MountPath: [web] },
      devices: [],
      commandId: 'cmd-1',
      documentName: DocumentName.Mount,
      signal: new AbortController().signal,
    };

    // Act
    const out = await modelRunner(DocumentName.Mount, { costs: { scriptSeconds: 0.5, mountSeconds: 3 } })(
      ctx,
    );
    local.cleanup();

    // Assess
    expect(out.modelledSeconds).toBe(3.5);
  });

  it('waits for a device that appears during DeviceWaitSeconds, on the injected clock', async () => {
    // Prepare
    const local = new Pair();
    local.createVolume(volA, { formatted: true });
    const sleeps: number[] = [];
    const sleep = async (seconds: number) => {
      sleeps.push(seconds);
      if (sleeps.length === 3) local.attach(volA, 1);
    };
    const ctx = {
      instanceId: 'i-0123456789abcdef0',
      hostRoot: local.model.hostRoot,
      rootDir: local.model.rootDir,
      parameters: { VolumeId: [volA], MountPath: [web], DeviceWaitSeconds: ['5'] },
      devices: [],
      commandId: 'cmd-1',
      documentName: DocumentName.Mount,
      signal: new AbortController().signal,
    };

    // Act
    const out = await modelRunner(DocumentName.Mount, { sleep })(ctx);
    local.cleanup();

    // Assess
    expect({ exitCode: out.exitCode, sleeps }).toEqual({ exitCode: 0, sleeps: [0.2, 0.2, 0.2] });
  });

  it('retries a busy unmount every 0.5 s until it frees, on the injected clock', async () => {
    // Prepare
    const local = new Pair();
    local.createVolume(volA, { formatted: true });
    local.attach(volA, 1);
    const sleeps: number[] = [];
    const sleep = async (seconds: number) => {
      sleeps.push(seconds);
      if (sleeps.length === 2) local.clearFault('umount');
    };
    const ctx = (parameters: Record<string, string[]>, documentName: string) => ({
      instanceId: 'i-0123456789abcdef0',
      hostRoot: local.model.hostRoot,
      rootDir: local.model.rootDir,
      parameters,
      devices: [],
      commandId: 'cmd-1',
      documentName,
      signal: new AbortController().signal,
    });
    await modelRunner(DocumentName.Mount)(ctx({ VolumeId: [volA], MountPath: [web] }, DocumentName.Mount));
    local.injectFault('umount');

    // Act
    const out = await modelRunner(DocumentName.Unmount, { sleep })(
      ctx({ VolumeId: [volA], BusyWaitSeconds: ['5'] }, DocumentName.Unmount),
    );
    local.cleanup();

    // Assess
    expect({ exitCode: out.exitCode, sleeps }).toEqual({ exitCode: 0, sleeps: [0.5, 0.5] });
  });

  it('ends with exit 143 when the invocation is already aborted', async () => {
    // Prepare
    const local = new Pair();
    const abort = new AbortController();
    abort.abort();
    const ctx = {
      instanceId: 'i-0123456789abcdef0',
      hostRoot: local.model.hostRoot,
      rootDir: local.model.rootDir,
      parameters: { VolumeId: [volA], MountPath: [web] },
      devices: [],
      commandId: 'cmd-1',
      documentName: DocumentName.Mount,
      signal: abort.signal,
    };

    // Act
    const out = await modelRunner(DocumentName.Mount)(ctx);
    local.cleanup();

    // Assess
    expect(out.exitCode).toBe(143);
  });
});
