/**
 * Volsd-Mount, -Format, -Unmount and -Freeze as TypeScript twins of scripts/volsd-{mount,format,
 * unmount,freeze}.sh: the same steps in the same order, on the same files (see host.ts), with the
 * same VOLSD_RESULT lines and exit codes.
 */
import { existsSync, lstatSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isUnder, systemTreeOf } from '../../../lambdas/shared/mount-path.js';
import { Exit, firstLine, type Host, isFile, jsonOpt, jsonStr, type Output, raw, ShimError } from './host.js';
import { realpathMissing } from './sync.js';

/** Starts a timer on the runner's clock; returns its cancel function. */
export type SetTimer = (seconds: number, fire: () => void) => () => void;

/** Auto-thaw watchdogs of Volsd-Freeze, by frozen-state file (the scripts' detached `volsd-autothaw`). */
const watchdogs = new Map<string, () => void>();

/** volsd_stop_watchdog. */
function stopWatchdog(host: Host, volume: string): void {
  const state = host.frozenState(volume);
  const cancel = watchdogs.get(state);
  if (cancel) {
    cancel();
    watchdogs.delete(state);
  }
}

/** volsd_thaw: thawed (true), not frozen (false), or a ShimError message for another failure. */
function thaw(host: Host, volume: string, mnt: string): { thawed: boolean } | { error: string } {
  stopWatchdog(host, volume);
  let thawed = true;
  try {
    host.fsfreeze(host.p(mnt), 'unfreeze');
  } catch (error) {
    if (!(error instanceof ShimError)) throw error;
    if (error.message.includes('Invalid argument')) thawed = false;
    else return { error: error.message };
  }
  rmSync(host.frozenState(volume), { force: true });
  return { thawed };
}

const reMountRoots = /^((\/[A-Za-z0-9_][A-Za-z0-9._-]*)+( (\/[A-Za-z0-9_][A-Za-z0-9._-]*)+)*)?$/;

/**
 * volsd_resolve: the host path PATH leads to, symlinks resolved component by component (a mount point
 * taken as it stands), or undefined when it leads out of the host root.
 */
function resolveOnHost(host: Host, path: string): string | undefined {
  const top = realpathMissing(host.root || '/');
  let cur = '';
  for (const comp of path.split('/')) {
    if (comp === '') continue;
    cur += `/${comp}`;
    let link = false;
    try {
      link = lstatSync(host.p(cur)).isSymbolicLink();
    } catch {
      // missing: kept as written
    }
    if (!link || host.sourceAt(cur) !== '') continue;
    let real = realpathMissing(host.p(cur));
    if (top !== '/') {
      if (real === top) real = '/';
      else if (real.startsWith(`${top}/`)) real = real.slice(top.length);
      else return undefined;
    }
    cur = real.replace(/\/$/, '');
  }
  return cur || '/';
}

/** volsd_check_mount_path's policy part (volsd_check_mount_target): exit 15 on a refused path. */
function checkMountTarget(host: Host, out: Output, mnt: string, roots: string): void {
  out.check('VOLSD_MOUNT_ROOTS', roots, reMountRoots);
  const real = resolveOnHost(host, mnt);
  if (real === undefined) {
    out.fail(
      Exit.MountRefused,
      'mount-path-refused',
      `refusing to mount at ${mnt}: it resolves outside the host's root`,
      [['mountPath', jsonStr(mnt)]],
    );
  }
  const tree = systemTreeOf(real);
  if (tree !== undefined || real === '/') {
    out.fail(
      Exit.MountRefused,
      'mount-path-refused',
      `refusing to mount at ${mnt}: it resolves to ${real}, in the system tree ${tree ?? '/'}`,
      [
        ['mountPath', jsonStr(mnt)],
        ['resolved', jsonStr(real)],
      ],
    );
  }
  const list = roots.split(' ').filter(Boolean);
  if (list.length === 0) return;
  const inside = list.some((root) => {
    const realRoot = resolveOnHost(host, root);
    return realRoot !== undefined && isUnder(real, realRoot);
  });
  if (!inside) {
    out.fail(
      Exit.MountRefused,
      'mount-path-refused',
      `refusing to mount at ${mnt}: it resolves to ${real}, outside the allowed mount roots (${roots})`,
      [
        ['mountPath', jsonStr(mnt)],
        ['resolved', jsonStr(real)],
      ],
    );
  }
}

/** Volsd-Mount (env as the script reads it); returns mounted | already-mounted. */
export async function mountOp(host: Host, env: Record<string, string>, out: Output): Promise<string> {
  host.awsCliChecked();
  const volume = env.VOLSD_VOLUME_ID ?? '';
  const mountPath = env.VOLSD_MOUNT_PATH ?? '';
  const options = env.VOLSD_MOUNT_OPTIONS ?? 'noatime';
  const wait = env.VOLSD_DEVICE_WAIT_SECONDS || '60';
  out.checkVolumeId(volume);
  out.checkMountPath(mountPath);
  checkMountTarget(host, out, mountPath, env.VOLSD_MOUNT_ROOTS ?? '');
  out.check('VOLSD_MOUNT_OPTIONS', options, /^[A-Za-z0-9_=,.:-]*$/);
  out.check('VOLSD_DEVICE_WAIT_SECONDS', wait, /^([0-9]{1,2}|[12][0-9]{2}|300)$/);
  host.lockFile(volume);
  const device = await host.deviceOrFail(volume, Number.parseInt(wait, 10), out);
  const state = host.mountVolume(volume, device, mountPath, options, out);
  const generation = host.readGeneration(mountPath);
  out.log(`${device} ${state} at ${mountPath} (generation ${generation})`);
  out.result([
    ['op', raw('"mount"')],
    ['volumeId', jsonStr(volume)],
    ['device', jsonStr(device)],
    ['mountPath', jsonStr(mountPath)],
    ['generation', raw(generation)],
    ['status', jsonStr(state)],
  ]);
  return state;
}

/** Volsd-Format; returns whether mkfs ran and the mount state (for the modelled cost). */
export async function formatOp(
  host: Host,
  env: Record<string, string>,
  out: Output,
): Promise<{ formatted: boolean; state: string }> {
  const volume = env.VOLSD_VOLUME_ID ?? '';
  const mountPath = env.VOLSD_MOUNT_PATH ?? '';
  const options = env.VOLSD_MOUNT_OPTIONS ?? 'noatime';
  const wait = env.VOLSD_DEVICE_WAIT_SECONDS || '60';
  out.checkVolumeId(volume);
  out.checkMountPath(mountPath);
  checkMountTarget(host, out, mountPath, env.VOLSD_MOUNT_ROOTS ?? '');
  out.check('VOLSD_MOUNT_OPTIONS', options, /^[A-Za-z0-9_=,.:-]*$/);
  out.check('VOLSD_DEVICE_WAIT_SECONDS', wait, /^([0-9]{1,2}|[12][0-9]{2}|300)$/);
  host.lockFile(volume);
  const device = await host.deviceOrFail(volume, Number.parseInt(wait, 10), out);
  let formatted = false;
  if (host.mountsOf(device).length === 0) {
    const fstype = host.blkidType(host.p(device));
    if (fstype === undefined) {
      out.log(`${device} has no filesystem: mkfs.xfs`);
      try {
        host.mkfs(host.p(device), 'volsd');
      } catch (error) {
        if (!(error instanceof ShimError)) throw error;
        out.fail(Exit.FormatFailed, 'format-failed', `mkfs.xfs ${device} failed: ${error.message}`, [
          ['device', jsonStr(device)],
        ]);
      }
      formatted = true;
    } else {
      out.log(`${device} already holds a ${fstype} filesystem: not formatting`);
    }
  }
  const state = host.mountVolume(volume, device, mountPath, options, out);
  const generation = host.readGeneration(mountPath);
  out.log(`${device} ${state} at ${mountPath} (formatted: ${formatted})`);
  out.result([
    ['op', raw('"format"')],
    ['volumeId', jsonStr(volume)],
    ['device', jsonStr(device)],
    ['mountPath', jsonStr(mountPath)],
    ['generation', raw(generation)],
    ['formatted', raw(formatted)],
    ['status', jsonStr(state)],
  ]);
  return { formatted, state };
}

/** Volsd-Unmount; returns how many mounts it took down (for the modelled cost). */
export async function unmountOp(host: Host, env: Record<string, string>, out: Output): Promise<number> {
  const volume = env.VOLSD_VOLUME_ID ?? '';
  const busyWait = env.VOLSD_BUSY_WAIT_SECONDS || '5';
  out.checkVolumeId(volume);
  out.check('VOLSD_BUSY_WAIT_SECONDS', busyWait, /^([0-9]{1,2}|[12][0-9]{2}|300)$/);
  host.lockFile(volume);
  const device = host.findDevice(volume) ?? '';
  let mountPaths: string[] = [];
  let lazy = false;
  if (device !== '') {
    mountPaths = host.mountsOf(device);
  } else {
    const record = host.recordPath(volume);
    if (isFile(record)) {
      const recorded = firstLine(record);
      const sourceDev = host.sourceAt(recorded);
      if (recorded !== '' && sourceDev !== '' && !existsSync(host.p(sourceDev))) {
        out.log(`${volume} is gone but ${recorded} still shows ${sourceDev}: lazy unmount`);
        mountPaths = [recorded];
        lazy = true;
      }
    }
  }
  const unmounted: string[] = [];
  for (let i = mountPaths.length - 1; i >= 0; i--) {
    const mnt = mountPaths[i] ?? '';
    if (isFile(host.frozenState(volume))) {
      const thawed = thaw(host, volume, mnt);
      if ('error' in thawed) {
        out.fail(
          Exit.UnmountFailed,
          'unmount-failed',
          `cannot thaw ${mnt} before unmounting: ${thawed.error}`,
        );
      }
    }
    // `sync -f` is a no-op on the simulated volumes (the shim's), so the retry loop comes next.
    for (let tries = Number.parseInt(busyWait, 10) * 2 + 1; ; ) {
      try {
        host.umount(host.p(mnt), lazy);
        break;
      } catch (error) {
        if (!(error instanceof ShimError)) throw error;
        // Gone in the meantime (a concurrent unmount): fine.
        if (host.sourceAt(mnt) === '') break;
        if (--tries === 0) {
          out.fail(Exit.UnmountFailed, 'unmount-failed', `umount ${mnt} failed: ${error.message}`, [
            ['device', jsonOpt(device)],
            ['mountPath', jsonStr(mnt)],
          ]);
        }
        await out.sleep(0.5);
      }
    }
    unmounted.push(mnt);
    out.log(`unmounted ${mnt}`);
  }
  host.forget(volume);
  out.result([
    ['op', raw('"unmount"')],
    ['volumeId', jsonStr(volume)],
    ['device', jsonOpt(device)],
    ['mountPaths', raw(`[${unmounted.map((m) => jsonStr(m).raw).join(',')}]`)],
    ['status', raw(unmounted.length === 0 ? '"not-mounted"' : '"unmounted"')],
  ]);
  return unmounted.length;
}

/** Volsd-Freeze. `setTimer` arms the auto-thaw watchdog. */
export function freezeOp(host: Host, env: Record<string, string>, out: Output, setTimer: SetTimer): void {
  const volume = env.VOLSD_VOLUME_ID ?? '';
  const mode = env.VOLSD_FREEZE ?? '';
  const bound = env.VOLSD_FREEZE_SECONDS || '30';
  out.checkVolumeId(volume);
  out.check('VOLSD_FREEZE', mode, /^(freeze|thaw)$/);
  out.check('VOLSD_FREEZE_SECONDS', bound, /^([1-9]|[1-9][0-9]|[1-8][0-9]{2}|900)$/);
  host.lockFile(volume);
  const device = host.findDevice(volume) ?? '';
  const mountPath = device !== '' ? (host.mountsOf(device)[0] ?? '') : '';
  if (mountPath === '') out.fail(Exit.NotMounted, 'not-mounted', `${volume} is not mounted on this host`);
  const state = host.frozenState(volume);

  if (mode === 'thaw') {
    const thawed = thaw(host, volume, mountPath);
    if ('error' in thawed) {
      out.fail(Exit.FreezeFailed, 'freeze-failed', `fsfreeze -u ${mountPath} failed: ${thawed.error}`);
    }
    out.log(`thawed ${mountPath} (was frozen: ${thawed.thawed})`);
    out.result([
      ['op', raw('"freeze"')],
      ['volumeId', jsonStr(volume)],
      ['mountPath', jsonStr(mountPath)],
      ['mode', raw('"thaw"')],
      ['frozen', raw(false)],
      ['changed', raw(thawed.thawed)],
    ]);
    return;
  }

  let changed = true;
  try {
    host.fsfreeze(host.p(mountPath), 'freeze');
  } catch (error) {
    if (!(error instanceof ShimError)) throw error;
    if (!error.message.includes('Device or resource busy')) {
      out.fail(Exit.FreezeFailed, 'freeze-failed', `fsfreeze -f ${mountPath} failed: ${error.message}`);
    }
    changed = false;
  }
  stopWatchdog(host, volume);
  mkdirSync(dirname(state), { recursive: true });
  const root = host.p(mountPath);
  const cancel = setTimer(Number.parseInt(bound, 10), () => {
    if (watchdogs.get(state) !== cancel) return;
    watchdogs.delete(state);
    try {
      host.fsfreeze(root, 'unfreeze');
    } catch {
      // as the watchdog's `fsfreeze ... >/dev/null 2>&1`
    }
    rmSync(state, { force: true });
  });
  watchdogs.set(state, cancel);
  // The second line is the watchdog's pid in the script; no process here, so the runner's own pid,
  // which a script's volsd_stop_watchdog never kills (its command line is not volsd-autothaw).
  writeFileSync(state, `${mountPath}\n${process.pid}\n`);
  out.log(`froze ${mountPath} (already frozen: ${changed ? 'no' : 'yes'}); auto-thaw in ${bound}s`);
  out.result([
    ['op', raw('"freeze"')],
    ['volumeId', jsonStr(volume)],
    ['mountPath', jsonStr(mountPath)],
    ['mode', raw('"freeze"')],
    ['frozen', raw(true)],
    ['changed', raw(changed)],
    ['autoThawSeconds', raw(bound)],
  ]);
}
