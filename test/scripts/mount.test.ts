import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { mkdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DocumentName, ExitCode } from '../../lambdas/shared/documents.js';
import { systemTrees, volsdOwnTree } from '../../lambdas/shared/mount-path.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, eventually, runRaw, serialOf, type TestHost } from './host.js';

const volA = volumeId(0xa);
const volB = volumeId(0xb);
const volC = volumeId(0xc);

let host: TestHost;

beforeEach(async () => {
  host = await createHost();
});

afterEach(async () => {
  await host.cleanup();
});

const mount = (volume: string, mountPath = '/srv/www', extra: Record<string, string> = {}) =>
  host.run(DocumentName.Mount, { VolumeId: volume, MountPath: mountPath, DeviceWaitSeconds: '0', ...extra });

describe('Volsd-Mount', () => {
  it('finds the device whose serial names the volume among several and mounts it', async () => {
    // Prepare
    for (const [i, v] of [volA, volB, volC].entries()) {
      await host.createVolume(v, { formatted: true });
      await host.attach(v, i + 1);
    }

    // Act
    const out = await mount(volB);

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({
      op: 'mount',
      volumeId: volB,
      device: '/dev/nvme2n1',
      status: 'mounted',
    });
    expect(host.mounts()).toEqual(['/dev/nvme2n1 /srv/www xfs rw,noatime,nosuid,nodev,nouuid 0 0']);
  });

  it('shows the volume content at the mount path', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true, files: { 'index.html': 'hello' } });
    await host.attach(volA, 1);

    // Act
    await mount(volA);

    // Assess
    expect(readFileSync(join(host.hostRoot, 'srv/www/index.html'), 'utf8')).toBe('hello');
  });

  it('records the mount in /etc/volsd/mounts.d for Volsd-Sync', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true });
    await host.attach(volA, 1);

    // Act
    await mount(volA, '/var/lib/volsd/a');

    // Assess
    expect(readFileSync(join(host.hostRoot, 'etc/volsd/mounts.d', volA), 'utf8')).toBe('/var/lib/volsd/a\n');
  });

  it('reports the generation recorded on the volume', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true, files: { '.volsd/generation': '42\n' } });
    await host.attach(volA, 1);

    // Act
    const out = await mount(volA);

    // Assess
    expect(out.result).toMatchObject({ generation: 42 });
  });

  it('reports generation 0 for a volume without a marker', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true });
    await host.attach(volA, 1);

    // Act
    const out = await mount(volA);

    // Assess
    expect(out.result).toMatchObject({ generation: 0 });
  });

  it('finds the device by its serial when the by-id link is missing', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true });
    await host.createVolume(volB, { formatted: true });
    await host.attach(volA, 1, { byId: false });
    await host.attach(volB, 2, { byId: false });

    // Act
    const out = await mount(volB);

    // Assess
    expect(out.result).toMatchObject({ device: '/dev/nvme2n1', status: 'mounted' });
  });

  it('waits for a device that appears after the command started', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true });
    setTimeout(() => void host.attach(volA, 1), 400);

    // Act
    const out = await mount(volA, '/srv/www', { DeviceWaitSeconds: '20' });

    // Assess
    expect(out.result).toMatchObject({ status: 'mounted', device: '/dev/nvme1n1' });
  });

  it('fails with device-not-found when the volume never appears', async () => {
    // Act
    const out = await mount(volA);

    // Assess
    expect(out.exitCode).toBe(ExitCode.DeviceNotFound);
    expect(out.result).toMatchObject({ status: 'failed', code: 'device-not-found' });
  });

  it('refuses a device whose serial does not name the volume', async () => {
    // Prepare: the by-id link of A leads to B's device.
    await host.createVolume(volA, { formatted: true });
    await host.createVolume(volB, { formatted: true });
    await host.attach(volB, 2);
    await symlink(
      '../../nvme2n1',
      join(host.hostRoot, 'dev/disk/by-id', `nvme-Amazon_Elastic_Block_Store_${serialOf(volA)}`),
    );

    // Act
    const out = await mount(volA);

    // Assess
    expect(out.exitCode).toBe(ExitCode.DeviceMismatch);
    expect(host.mounts()).toEqual([]);
  });

  it('succeeds without a second mount when the volume is already mounted there', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true });
    await host.attach(volA, 1);
    await mount(volA);

    // Act
    const out = await mount(volA);

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({ status: 'already-mounted' });
    expect(host.mounts()).toHaveLength(1);
  });

  it('refuses a mount path that holds another device', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true });
    await host.createVolume(volB, { formatted: true });
    await host.attach(volA, 1);
    await host.attach(volB, 2);
    await mount(volA);

    // Act
    const out = await mount(volB);

    // Assess
    expect(out.exitCode).toBe(ExitCode.MountConflict);
    expect(host.mounts()).toEqual(['/dev/nvme1n1 /srv/www xfs rw,noatime,nosuid,nodev,nouuid 0 0']);
  });

  it('refuses a volume that is mounted elsewhere', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true });
    await host.attach(volA, 1);
    await mount(volA, '/var/lib/volsd/a');

    // Act
    const out = await mount(volA, '/srv/www');

    // Assess
    expect(out.exitCode).toBe(ExitCode.MountConflict);
    expect(out.result).toMatchObject({ code: 'mount-conflict', mountPath: '/var/lib/volsd/a' });
  });

  it('fails to mount an unformatted volume, as a real mount would', async () => {
    // Prepare
    await host.createVolume(volA);
    await host.attach(volA, 1);

    // Act
    const out = await mount(volA);

    // Assess
    expect(out.exitCode).toBe(ExitCode.MountFailed);
    expect(out.result).toMatchObject({ code: 'mount-failed' });
    expect(String(out.result.error)).toContain('wrong fs type');
  });

  it.each([
    ['a system directory', { VOLSD_MOUNT_PATH: '/etc' }],
    ['a relative path', { VOLSD_MOUNT_PATH: 'srv/www' }],
    ['a parent segment', { VOLSD_MOUNT_PATH: '/srv/../etc' }],
    ['a command substitution', { VOLSD_MOUNT_PATH: '/srv/$(reboot)' }],
    ['a malformed volume id', { VOLSD_VOLUME_ID: 'vol-1;reboot' }],
    ['mount options with a space', { VOLSD_MOUNT_OPTIONS: 'noatime remount' }],
  ])('refuses %s with exit 2 (its own check, behind the document pattern)', async (_, env) => {
    // Act
    const out = await runRaw(DocumentName.Mount, host.hostRoot, {
      VOLSD_VOLUME_ID: volA,
      VOLSD_MOUNT_PATH: '/srv/www',
      ...env,
    });

    // Assess
    expect(out.exitCode).toBe(ExitCode.BadParameters);
    expect(out.result).toMatchObject({ code: 'bad-parameters' });
  });
});

describe('Volsd-Mount mount path policy', () => {
  beforeEach(async () => {
    await host.createVolume(volA, { formatted: true });
    await host.attach(volA, 1);
  });

  it.each([
    ['/etc/cron.d'],
    ['/etc/systemd/system'],
    ['/usr/local/bin'],
    ['/root/keys'],
    ['/home/ec2-user/site'],
    ['/var/spool/cron'],
  ])('refuses %s (under a system tree) with exit 15 and mounts nothing', async (path) => {
    // Act
    const out = await mount(volA, path);

    // Assess
    expect(out.exitCode).toBe(ExitCode.MountRefused);
    expect(out.result).toMatchObject({ code: 'mount-path-refused' });
    expect(String(out.result.error)).toContain('system tree');
    expect(host.mounts()).toEqual([]);
  });

  it('refuses a path whose symlink leads into /etc, with exit 15, and creates nothing there', async () => {
    // Prepare: /srv/www/site -> ../../etc/cron.d inside the host
    await mkdir(join(host.hostRoot, 'srv/www'), { recursive: true });
    await symlink('../../etc/cron.d', join(host.hostRoot, 'srv/www/site'));

    // Act
    const out = await mount(volA, '/srv/www/site', { MountRoots: '/srv/www' });

    // Assess
    expect(out.exitCode).toBe(ExitCode.MountRefused);
    expect(out.result).toMatchObject({
      code: 'mount-path-refused',
      mountPath: '/srv/www/site',
      resolved: '/etc/cron.d',
    });
    expect(host.mounts()).toEqual([]);
    expect(existsSync(join(host.hostRoot, 'etc/cron.d'))).toBe(false);
  });

  it('refuses a path whose symlink leads out of the host root', async () => {
    // Prepare
    await mkdir(join(host.hostRoot, 'srv/www'), { recursive: true });
    await symlink('/etc', join(host.hostRoot, 'srv/www/abs'));

    // Act
    const out = await mount(volA, '/srv/www/abs/cron.d');

    // Assess
    expect(out.exitCode).toBe(ExitCode.MountRefused);
    expect(host.mounts()).toEqual([]);
  });

  it('refuses a path outside the allowed roots, also through a symlink', async () => {
    // Prepare
    await mkdir(join(host.hostRoot, 'srv/www'), { recursive: true });
    await symlink('../other', join(host.hostRoot, 'srv/www/elsewhere'));

    // Act
    const plain = await mount(volA, '/srv/other', { MountRoots: '/srv/www /data' });
    const linked = await mount(volA, '/srv/www/elsewhere', { MountRoots: '/srv/www /data' });

    // Assess
    for (const out of [plain, linked]) {
      expect(out.exitCode).toBe(ExitCode.MountRefused);
      expect(String(out.result.error)).toContain('outside the allowed mount roots');
    }
    expect(host.mounts()).toEqual([]);
  });

  it('mounts under an allowed root, with nosuid,nodev however the options read', async () => {
    // Act
    const out = await mount(volA, '/data/site', {
      MountRoots: '/srv/www /data',
      MountOptions: 'suid,dev,noatime',
    });

    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
    expect(host.mounts()).toEqual(['/dev/nvme1n1 /data/site xfs rw,noatime,nosuid,nodev,nouuid 0 0']);
  });

  it("mounts the sync worker's volumes under Volsd's own /var/lib/volsd", async () => {
    // Act
    const out = await mount(volA, `/var/lib/volsd/pool/${volA}`);

    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
  });

  it('stays idempotent: the volume already mounted at the path is a success', async () => {
    // Prepare
    await mount(volA, '/srv/www', { MountRoots: '/srv/www' });

    // Act
    const again = await mount(volA, '/srv/www', { MountRoots: '/srv/www' });

    // Assess
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.result).toMatchObject({ status: 'already-mounted' });
  });
});

describe('the mount path policy lists', () => {
  it('are the same in scripts/volsd-lib.sh and lambdas/shared/mount-path.ts', () => {
    // Act
    const lib = readFileSync('scripts/volsd-lib.sh', 'utf8');
    const trees = /^readonly VOLSD_SYSTEM_TREES='([^']*)'$/m.exec(lib)?.[1]?.split(' ');
    const own = /^readonly VOLSD_OWN_TREE=(\S+)$/m.exec(lib)?.[1];

    // Assess
    expect(trees).toEqual([...systemTrees]);
    expect(own).toBe(volsdOwnTree);
  });
});

describe('Volsd-Format', () => {
  const format = (volume: string) =>
    host.run(DocumentName.Format, {
      VolumeId: volume,
      MountPath: '/var/lib/volsd/v',
      DeviceWaitSeconds: '0',
    });

  it('formats an empty volume, then mounts it', async () => {
    // Prepare
    await host.createVolume(volA);
    await host.attach(volA, 1);

    // Act
    const out = await format(volA);

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({ op: 'format', formatted: true, status: 'mounted', generation: 0 });
    expect(host.mounts()).toEqual(['/dev/nvme1n1 /var/lib/volsd/v xfs rw,noatime,nosuid,nodev,nouuid 0 0']);
  });

  it('only mounts a volume that already has a filesystem, keeping its content', async () => {
    // Prepare
    await host.createVolume(volA, { formatted: true, files: { 'keep.txt': 'kept' } });
    await host.attach(volA, 1);

    // Act
    const out = await format(volA);

    // Assess
    expect(out.result).toMatchObject({ formatted: false, status: 'mounted' });
    expect(readFileSync(join(host.volumeDir(volA), 'keep.txt'), 'utf8')).toBe('kept');
  });

  it('is idempotent once the volume is formatted and mounted', async () => {
    // Prepare
    await host.createVolume(volA);
    await host.attach(volA, 1);
    await format(volA);

    // Act
    const out = await format(volA);

    // Assess
    expect(out.result).toMatchObject({ formatted: false, status: 'already-mounted' });
    expect(host.mounts()).toHaveLength(1);
  });

  it('fails with format-failed when mkfs fails', async () => {
    // Prepare
    await host.createVolume(volA);
    await host.attach(volA, 1);
    await host.injectFault('mkfs.xfs');

    // Act
    const out = await format(volA);

    // Assess
    expect(out.exitCode).toBe(ExitCode.FormatFailed);
    expect(host.mounts()).toEqual([]);
  });
});

describe('Volsd-Unmount', () => {
  const unmount = (volume: string, extra: Record<string, string> = {}) =>
    host.run(DocumentName.Unmount, { VolumeId: volume, ...extra });

  beforeEach(async () => {
    await host.createVolume(volA, { formatted: true });
    await host.attach(volA, 1);
  });

  it('unmounts the volume and puts an empty mount point back', async () => {
    // Prepare
    await mount(volA);

    // Act
    const out = await unmount(volA);

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({ op: 'unmount', status: 'unmounted', mountPaths: ['/srv/www'] });
    expect(host.mounts()).toEqual([]);
    expect(lstatSync(join(host.hostRoot, 'srv/www')).isDirectory()).toBe(true);
  });

  it('removes the mounts.d record', async () => {
    // Prepare
    await mount(volA);

    // Act
    await unmount(volA);

    // Assess
    expect(existsSync(join(host.hostRoot, 'etc/volsd/mounts.d', volA))).toBe(false);
  });

  it('succeeds when the volume is not mounted', async () => {
    // Act
    const out = await unmount(volA);

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({ status: 'not-mounted', mountPaths: [] });
  });

  it('succeeds when the volume is not even attached', async () => {
    // Act
    const out = await unmount(volB);

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({ status: 'not-mounted', device: null });
  });

  it('fails with unmount-failed, still mounted, when the filesystem stays busy', async () => {
    // Prepare
    await mount(volA);
    await host.injectFault('umount');

    // Act
    const out = await unmount(volA, { BusyWaitSeconds: '0' });

    // Assess
    expect(out.exitCode).toBe(ExitCode.UnmountFailed);
    expect(host.mounts()).toHaveLength(1);
  });

  it('lazily unmounts a volume that vanished while mounted', async () => {
    // Prepare: a forced detach took the device away under the mount.
    await mount(volA);
    await unlink(join(host.hostRoot, 'dev/nvme1n1'));
    await unlink(join(host.hostRoot, 'dev/disk/by-id', `nvme-Amazon_Elastic_Block_Store_${serialOf(volA)}`));

    // Act
    const out = await unmount(volA);

    // Assess
    expect(out.result).toMatchObject({ status: 'unmounted', mountPaths: ['/srv/www'] });
    expect(host.mounts()).toEqual([]);
  });

  it('thaws a frozen filesystem before unmounting it', async () => {
    // Prepare
    await mount(volA);
    await host.run(DocumentName.Freeze, { VolumeId: volA, Mode: 'freeze' });

    // Act
    const out = await unmount(volA);

    // Assess
    expect(out.result).toMatchObject({ status: 'unmounted' });
    expect(existsSync(join(host.hostRoot, 'run/volsd-shim/frozen/nvme1n1'))).toBe(false);
  });
});

describe('Volsd-Freeze', () => {
  const freeze = (mode: 'freeze' | 'thaw', extra: Record<string, string> = {}) =>
    host.run(DocumentName.Freeze, { VolumeId: volA, Mode: mode, ...extra });
  const frozenFlag = () => join(host.hostRoot, 'run/volsd-shim/frozen/nvme1n1');

  beforeEach(async () => {
    await host.createVolume(volA, { formatted: true });
    await host.attach(volA, 1);
  });

  afterEach(async () => {
    // Never leave a watchdog behind.
    await freeze('thaw');
  });

  it('freezes the filesystem of the mounted volume', async () => {
    // Prepare
    await mount(volA);

    // Act
    const out = await freeze('freeze');

    // Assess
    expect(out.result).toMatchObject({ op: 'freeze', frozen: true, changed: true, mountPath: '/srv/www' });
    expect(existsSync(frozenFlag())).toBe(true);
  });

  it('succeeds without change when freezing a frozen filesystem', async () => {
    // Prepare
    await mount(volA);
    await freeze('freeze');

    // Act
    const out = await freeze('freeze');

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({ frozen: true, changed: false });
  });

  it('thaws a frozen filesystem', async () => {
    // Prepare
    await mount(volA);
    await freeze('freeze');

    // Act
    const out = await freeze('thaw');

    // Assess
    expect(out.result).toMatchObject({ mode: 'thaw', frozen: false, changed: true });
    expect(existsSync(frozenFlag())).toBe(false);
  });

  it('succeeds without change when thawing a thawed filesystem', async () => {
    // Prepare
    await mount(volA);

    // Act
    const out = await freeze('thaw');

    // Assess
    expect(out.exitCode).toBe(0);
    expect(out.result).toMatchObject({ frozen: false, changed: false });
  });

  it('thaws by itself once the bound has passed', async () => {
    // Prepare
    await mount(volA);

    // Act
    await freeze('freeze', { MaxFreezeSeconds: '1' });

    // Assess
    expect(await eventually(() => !existsSync(frozenFlag()), 15_000)).toBe(true);
  });

  it('fails with not-mounted for a volume that is not mounted', async () => {
    // Act
    const out = await freeze('freeze');

    // Assess
    expect(out.exitCode).toBe(ExitCode.NotMounted);
    expect(out.result).toMatchObject({ code: 'not-mounted' });
  });
});
