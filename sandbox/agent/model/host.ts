/**
 * The simulated host as the Volsd scripts and the sandbox shims see it, in-process: the helpers of
 * scripts/volsd-lib.sh (device lookup, mount table queries, records, generation marker, JSON lines)
 * and the effects of the shims of sandbox/shims/ (mount, umount, mkfs.xfs, blkid, lsblk, fsfreeze),
 * on the same files, in the same formats (see sandbox/shims/shim-lib.sh for the host contract).
 * Every file operation is synchronous on purpose: a step that edits the mount table cannot
 * interleave with another runner's, as the shims' flock guarantees for the scripts.
 */
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ExitCode } from '../../../lambdas/shared/documents.js';

/** Exit codes of the scripts (the table in scripts/volsd-lib.sh), from the document catalogue. */
export const Exit = ExitCode;

/** The parameter grammar of volsd-lib.sh. */
export const reVolumeId = /^vol-([0-9a-f]{8}|[0-9a-f]{17})$/;
export const reMountPath = /^(\/[A-Za-z0-9_][A-Za-z0-9._-]*)+$/;
const forbiddenMounts =
  ' /bin /boot /dev /etc /home /lib /lib64 /opt /proc /root /run /sbin /srv /sys /tmp /usr /var /var/lib /var/log ';

/** volsd_forced_options: the options with suid/dev dropped and nosuid,nodev always last. */
export function forcedOptions(options: string): string {
  const kept = options.split(',').filter((o) => !['', 'suid', 'dev', 'nosuid', 'nodev'].includes(o));
  return [...kept, 'nosuid', 'nodev'].join(',');
}

/** A raw JSON value, as volsd_json takes it. */
export type Raw = { raw: string };

/** volsd_json_str: a JSON string literal escaped exactly as the library escapes it. */
export function jsonStr(s: string): Raw {
  let out = s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
  out = out.replace(/[\x01-\x1f\x7f]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return { raw: `"${out}"` };
}

/** volsd_json_opt: a JSON string, or null for the empty string. */
export function jsonOpt(s: string): Raw {
  return s === '' ? { raw: 'null' } : jsonStr(s);
}

/** A raw JSON number or boolean. */
export function raw(value: number | boolean | string): Raw {
  return { raw: String(value) };
}

/** volsd_json: an object from KEY VALUE pairs, in order. */
export function jsonObject(fields: [string, Raw][]): string {
  return `{${fields.map(([k, v]) => `"${k}":${v.raw}`).join(',')}}`;
}

/** Sleeps `seconds` on some clock (rejects when the run is aborted, if it can tell). */
export type Sleep = (seconds: number) => Promise<void>;

const realSleep: Sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** Thrown to end a run with an exit code (volsd_fail and friends); the output is already written. */
export class ScriptExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** One run's output and the state volsd_init sets. */
export class Output {
  stdout = '';
  stderr = '';
  volume = '';
  /** Seconds slept (device wait, busy retries): part of the run's modelled duration. */
  waited = 0;

  constructor(
    readonly op: string,
    private readonly sleeper: Sleep = realSleep,
  ) {}

  /** The scripts' `sleep`, on the runner's clock; counted in {@link waited}. */
  async sleep(seconds: number): Promise<void> {
    this.waited += seconds;
    await this.sleeper(seconds);
  }

  log(message: string): void {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    this.stderr += `${now} volsd-${this.op}${this.volume ? ` ${this.volume}` : ''}: ${message}\n`;
  }

  result(fields: [string, Raw][]): void {
    this.stdout += `VOLSD_RESULT ${jsonObject(fields)}\n`;
  }

  line(text: string): void {
    this.stdout += `${text}\n`;
  }

  /** volsd_fail: logs, prints the failed VOLSD_RESULT and ends the run. */
  fail(exitCode: number, code: string, message: string, extra: [string, Raw][] = []): never {
    this.log(`error: ${message}`);
    const fields: [string, Raw][] = [['op', jsonStr(this.op)]];
    if (this.volume) fields.push(['volumeId', jsonStr(this.volume)]);
    fields.push(
      ['status', raw('"failed"')],
      ['code', jsonStr(code)],
      ['exitCode', raw(exitCode)],
      ['error', jsonStr(message)],
      ...extra,
    );
    this.result(fields);
    throw new ScriptExit(exitCode);
  }

  /** volsd_check: VALUE must match RE. */
  check(name: string, value: string, re: RegExp): void {
    if (!re.test(value)) {
      this.fail(Exit.BadParameters, 'bad-parameters', `invalid ${name}: ${bashQuote(value)}`);
    }
  }

  checkVolumeId(value: string): void {
    this.check('VOLSD_VOLUME_ID', value, reVolumeId);
    this.volume = value;
  }

  checkMountPath(value: string): void {
    this.check('VOLSD_MOUNT_PATH', value, reMountPath);
    if (value.length > 200) {
      this.fail(Exit.BadParameters, 'bad-parameters', 'VOLSD_MOUNT_PATH is longer than 200 characters');
    }
    if (forbiddenMounts.includes(` ${value} `)) {
      this.fail(Exit.BadParameters, 'bad-parameters', `refusing to mount over the system directory ${value}`);
    }
  }
}

/** Bash's ${var@Q} for the values that reach it (the document patterns keep out the odd ones). */
function bashQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A shim command's failure: its stderr, as the script captures it with $(... 2>&1). */
export class ShimError extends Error {}

/** The simulated host rooted at `root` (VOLSD_ROOT without a trailing slash). */
export class Host {
  readonly shimState: string;

  constructor(readonly root: string) {
    this.shimState = `${root}/run/volsd-shim`;
  }

  /** `$R$path`. */
  p(path: string): string {
    return `${this.root}${path}`;
  }

  /** shim_host: a path as the host sees it. */
  hostPath(path: string): string {
    if (path === this.root) return '/';
    if (path.startsWith(`${this.root}/`)) return path.slice(this.root.length);
    return path;
  }

  /** volsd_init's check of VOLSD_ROOT. */
  validRoot(): boolean {
    if (this.root === '') return true;
    return /^(\/[A-Za-z0-9._-]+)+$/.test(this.root) && isDir(this.root);
  }

  // --- shim-lib.sh -----------------------------------------------------------------------------

  /** shim_injected_failure: throws the injected message (or the default) when a fault is set. */
  injectedFailure(command: string, defaultMessage: string): void {
    const fault = `${this.shimState}/fail/${command}`;
    if (!existsSync(fault)) return;
    let message = '';
    try {
      message = readFileSync(fault, 'utf8').replace(/\n+$/, '');
    } catch {
      // unreadable: cat prints nothing to stdout
    }
    throw new ShimError(message || defaultMessage);
  }

  /** shim_mounts_lock's effects on the tree (the lock itself is implicit in-process). */
  mountsLock(): void {
    mkdirSync(this.shimState, { recursive: true });
    mkdirSync(this.p('/proc'), { recursive: true });
    touch(`${this.shimState}/mounts.lock`);
  }

  /** shim_data_dir: the data dir behind a host device path. */
  dataDir(device: string): string | undefined {
    if (!device.startsWith('/dev/')) return undefined;
    const file = this.p(device);
    if (!isFile(file)) return undefined;
    const dir = firstLine(file);
    return dir !== '' && isDir(dir) ? dir : undefined;
  }

  /** shim_serial. */
  serial(device: string): string | undefined {
    const dir = this.dataDir(device);
    if (dir === undefined) return undefined;
    return serialOf(dir.slice(dir.lastIndexOf('/') + 1));
  }

  private fsField(device: string, field: string): string | undefined {
    const dir = this.dataDir(device);
    if (dir === undefined || !isFile(`${dir}/.volsd-fs`)) return undefined;
    for (const line of readFileSync(`${dir}/.volsd-fs`, 'utf8').split('\n')) {
      const eq = line.indexOf('=');
      const key = eq < 0 ? line : line.slice(0, eq);
      if (key === field) return eq < 0 ? '' : (line.slice(eq + 1).split('=')[0] ?? '');
    }
    return '';
  }

  /** shim_fstype: the filesystem type on the device, undefined when it has none. */
  fsType(device: string): string | undefined {
    const type = this.fsField(device, 'TYPE');
    return type === undefined ? undefined : type || 'xfs';
  }

  /** The mount table's lines, split in fields (awk's default splitting). */
  mountLines(): { line: string; fields: string[] }[] {
    const file = this.p('/proc/mounts');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return [];
    }
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.map((line) => ({ line, fields: line.trim().split(/[ \t]+/) }));
  }

  /** shim_mount_line FIELD VALUE: the last line whose field (1 device, 2 mount point) is VALUE. */
  mountLine(field: 1 | 2, value: string): string | undefined {
    let found: string | undefined;
    for (const { line, fields } of this.mountLines()) if (fields[field - 1] === value) found = line;
    return found;
  }

  frozenFlag(device: string): string {
    return `${this.shimState}/frozen/${device.slice(device.lastIndexOf('/') + 1)}`;
  }

  // --- the shims ---------------------------------------------------------------------------------

  /** blkid -o value -s TYPE DEVICE: the type, or undefined for exit 2 (nothing found). */
  blkidType(device: string): string | undefined {
    return this.fsType(this.hostPath(device));
  }

  /** mount [-o OPTIONS] -- DEVICE DIR (shim). */
  mount(deviceArg: string, dirArg: string, options: string): void {
    const dev = this.hostPath(deviceArg);
    const dir = this.hostPath(dirArg);
    this.injectedFailure(
      'mount',
      `mount: ${dir}: wrong fs type, bad option, bad superblock on ${dev}, missing codepage or helper program, or other error.`,
    );
    this.mountsLock();
    const data = this.dataDir(dev);
    if (data === undefined) throw new ShimError(`mount: ${dir}: special device ${dev} does not exist.`);
    const fstype = this.fsType(dev);
    if (fstype === undefined) {
      throw new ShimError(
        `mount: ${dir}: wrong fs type, bad option, bad superblock on ${dev}, missing codepage or helper program, or other error.`,
      );
    }
    if (this.mountLine(1, dev) !== undefined) {
      throw new ShimError(`mount: ${dir}: ${dev} already mounted or mount point busy.`);
    }
    if (this.mountLine(2, dir) !== undefined || isSymlink(this.p(dir))) {
      throw new ShimError(`mount: ${dir}: the Volsd sandbox shim cannot stack mounts.`);
    }
    if (!existsSync(this.p(dir))) throw new ShimError(`mount: ${dir}: mount point does not exist.`);
    if (!isDir(this.p(dir))) throw new ShimError(`mount: ${dir}: mount point is not a directory.`);
    try {
      rmdirSync(this.p(dir));
    } catch {
      throw new ShimError(`mount: ${dir}: the Volsd sandbox shim cannot hide a non-empty directory.`);
    }
    symlinkSync(data, this.p(dir));
    let mode = 'rw';
    const opts: string[] = [];
    for (const o of options.split(',')) {
      if (o === '' || o === 'rw') continue;
      if (o === 'ro') mode = 'ro';
      else opts.push(o);
    }
    const line = `${dev} ${dir} ${fstype} ${[mode, ...opts].join(',')} 0 0\n`;
    writeFileSync(this.p('/proc/mounts'), line, { flag: 'a' });
  }

  /** umount [-l] -- TARGET (shim). */
  umount(targetArg: string, lazy: boolean): void {
    const target = this.hostPath(targetArg);
    if (!lazy) this.injectedFailure('umount', `umount: ${target}: target is busy.`);
    this.mountsLock();
    const line = this.mountLine(2, target) ?? this.mountLine(1, target);
    if (line === undefined) throw new ShimError(`umount: ${target}: not mounted.`);
    const [dev = '', dir = ''] = line.trim().split(/[ \t]+/);
    if (!lazy && existsSync(this.frozenFlag(dev))) throw new ShimError(`umount: ${dir}: target is busy.`);
    const lines = this.mountLines().map((l) => l.line);
    const last = lines.lastIndexOf(line);
    const kept = lines.filter((_, i) => i !== last);
    const tmp = this.p('/proc/.mounts.volsd-shim');
    writeFileSync(tmp, kept.map((l) => `${l}\n`).join(''));
    renameSync(tmp, this.p('/proc/mounts'));
    rmSync(this.frozenFlag(dev), { force: true });
    if (isSymlink(this.p(dir))) {
      rmSync(this.p(dir), { force: true });
      mkdirSync(this.p(dir), { recursive: true });
    }
  }

  /** mkfs.xfs -q -L LABEL -- DEVICE (shim). */
  mkfs(deviceArg: string, label: string): void {
    const dev = this.hostPath(deviceArg);
    this.injectedFailure('mkfs.xfs', 'mkfs.xfs: pwrite failed: Input/output error');
    this.mountsLock();
    const data = this.dataDir(dev);
    if (data === undefined) throw new ShimError(`mkfs.xfs: cannot open ${dev}: No such file or directory`);
    if (this.mountLine(1, dev) !== undefined) {
      throw new ShimError(`mkfs.xfs: cannot open ${dev}: Device or resource busy`);
    }
    const existing = this.fsType(dev);
    if (existing !== undefined) {
      throw new ShimError(
        `mkfs.xfs: ${dev} appears to contain an existing filesystem (${existing}).\nmkfs.xfs: Use the -f option to force overwrite.`,
      );
    }
    for (const name of readdirSync(data)) rmSync(join(data, name), { recursive: true, force: true });
    const size = this.deviceBytes(dev);
    writeFileSync(
      `${data}/.volsd-fs`,
      `TYPE=xfs\nLABEL=${label}\nUUID=${randomUUID()}\n${size === undefined ? '' : `SIZE=${size}\n`}`,
    );
  }

  // --- File system capacity (shim-lib.sh, the same section) --------------------------------------

  /** shim_device_bytes: the block device's size in bytes (/sys/block/<dev>/size x 512), if given. */
  deviceBytes(device: string): number | undefined {
    let name: string;
    try {
      name = basename(realpathSync(this.p(device)));
    } catch {
      return undefined;
    }
    const file = this.p(`/sys/block/${name}/size`);
    if (!isFile(file)) return undefined;
    const sectors = firstLine(file);
    return /^[0-9]+$/.test(sectors) ? Number(sectors) * 512 : undefined;
  }

  /** shim_fs_bytes: the file system's size (SIZE=), else its device's. */
  fsBytes(device: string): number | undefined {
    const size = this.fsField(device, 'SIZE');
    return size !== undefined && /^[0-9]+$/.test(size) ? Number(size) : this.deviceBytes(device);
  }

  /** `df -B1 --output=size ROOT` for a volume mounted at host path `mnt` (shim). */
  dfSize(mnt: string): number | undefined {
    const line = this.mountLine(2, mnt);
    const dev = line?.trim().split(/[ \t]+/)[0];
    return dev === undefined ? undefined : this.fsBytes(dev);
  }

  /**
   * Volsd-Sync's grow_filesystem: grows the XFS file system mounted at `mnt` to its device when the
   * device is larger (the xfs_growfs shim). Returns the log line, or undefined when nothing was to grow.
   */
  growFilesystem(mnt: string, device: string): string | undefined {
    const deviceBytes = this.deviceBytes(device);
    const fs = this.dfSize(mnt);
    if (deviceBytes === undefined || fs === undefined || deviceBytes <= fs) return undefined;
    const line = this.mountLine(2, mnt);
    const fields = line?.trim().split(/[ \t]+/) ?? [];
    const dev = fields[0] ?? device;
    try {
      this.injectedFailure(
        'xfs_growfs',
        'xfs_growfs: XFS_IOC_FSGROWFSDATA xfsctl failed: Input/output error',
      );
      if (fields[2] !== 'xfs') throw new ShimError(`xfs_growfs: ${mnt} is not a mounted XFS filesystem`);
      const data = this.dataDir(dev);
      if (data === undefined) throw new ShimError(`xfs_growfs: cannot find the size of ${dev}`);
      const kept = readFileSync(`${data}/.volsd-fs`, 'utf8')
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('SIZE='));
      writeFileSync(`${data}/.volsd-fs.tmp`, `${[...kept, `SIZE=${deviceBytes}`].join('\n')}\n`);
      renameSync(`${data}/.volsd-fs.tmp`, `${data}/.volsd-fs`);
      return `xfs_growfs ${mnt}: data blocks changed from ${Math.floor(fs / 4096)} to ${Math.floor(deviceBytes / 4096)}`;
    } catch (error) {
      return `xfs_growfs ${mnt} failed: ${(error as Error).message.slice(-300)}`;
    }
  }

  /** fsfreeze -f|-u -- MOUNTPOINT (shim). */
  fsfreeze(dirArg: string, mode: 'freeze' | 'unfreeze'): void {
    const dir = this.hostPath(dirArg);
    this.injectedFailure('fsfreeze', `fsfreeze: ${dir}: ${mode} failed: Operation not supported`);
    this.mountsLock();
    const line = this.mountLine(2, dir);
    if (line === undefined) throw new ShimError(`fsfreeze: ${dir}: not a mount point (Volsd sandbox shim)`);
    const [dev = ''] = line.trim().split(/[ \t]+/);
    const flag = this.frozenFlag(dev);
    if (mode === 'freeze') {
      if (existsSync(flag)) throw new ShimError(`fsfreeze: ${dir}: freeze failed: Device or resource busy`);
      mkdirSync(dirname(flag), { recursive: true });
      writeFileSync(flag, '');
    } else {
      if (!existsSync(flag)) throw new ShimError(`fsfreeze: ${dir}: unfreeze failed: Invalid argument`);
      rmSync(flag, { force: true });
    }
  }

  // --- volsd-lib.sh ------------------------------------------------------------------------------

  /** volsd_find_device: the host path of the volume's device, or undefined. */
  findDevice(volumeId: string): string | undefined {
    const serial = serialOf(volumeId);
    const link = this.p(`/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}`);
    if (isSymlink(link)) {
      try {
        const target = realpathSync(link);
        if (target.startsWith(this.p('/dev/'))) return target.slice(this.root.length);
      } catch {
        // dangling: fall back to the serials
      }
    }
    // lsblk -dnpo NAME,SERIAL over $R/dev/nvme*n1, first serial match.
    let names: string[];
    try {
      names = readdirSync(this.p('/dev'))
        .filter((n) => /^nvme.*n1$/.test(n))
        .sort();
    } catch {
      return undefined;
    }
    for (const name of names) {
      const dev = `/dev/${name}`;
      if (!isFile(this.p(dev))) continue;
      if (this.serial(dev) === serial) return dev;
    }
    return undefined;
  }

  /** volsd_verify_device: the device's serial names the volume. */
  verifyDevice(device: string, volumeId: string, out: Output): boolean {
    const serial = this.serial(device) ?? '';
    if (serial !== serialOf(volumeId)) {
      out.log(`device ${device} reports serial '${serial || '<none>'}', expected ${serialOf(volumeId)}`);
      return false;
    }
    return true;
  }

  /** volsd_device_or_fail: polls for the device every 0.2 s for WAIT seconds, then verifies it. */
  async deviceOrFail(volumeId: string, waitSeconds: number, out: Output): Promise<string> {
    let dev: string | undefined;
    for (let tries = waitSeconds * 5 + 1; tries-- > 0; ) {
      dev = this.findDevice(volumeId);
      if (dev !== undefined) break;
      if (tries > 0) await out.sleep(0.2);
    }
    if (dev === undefined) {
      out.fail(
        Exit.DeviceNotFound,
        'device-not-found',
        `no block device for ${volumeId} after ${waitSeconds}s (is it attached?)`,
      );
    }
    if (!this.verifyDevice(dev, volumeId, out)) {
      out.fail(
        Exit.DeviceMismatch,
        'device-mismatch',
        `device ${dev} does not carry the serial of ${volumeId}`,
        [['device', jsonStr(dev)]],
      );
    }
    return dev;
  }

  /** volsd_source_at: the device mounted at MOUNT_PATH (the top of the stack), or ''. */
  sourceAt(mountPath: string): string {
    let src = '';
    for (const { fields } of this.mountLines()) if (fields[1] === mountPath) src = fields[0] ?? '';
    return src;
  }

  /** volsd_mounts_of: the mount points of DEVICE, in table order. */
  mountsOf(device: string): string[] {
    return this.mountLines()
      .filter(({ fields }) => fields[0] === device)
      .map(({ fields }) => fields[1] ?? '');
  }

  /**
   * volsd_require_tools' effect on the tree when it checks the AWS CLI (Volsd-Mount, Volsd-Sync): the
   * modelled host meets every requirement, so the CLI's v2 marker is written.
   */
  awsCliChecked(): void {
    mkdirSync(this.p('/run/volsd'), { recursive: true });
    touch(this.p('/run/volsd/aws-cli-v2'));
  }

  /** volsd_lock's effect on the tree (the serialisation itself is the runner's mutex). */
  lockFile(name: string): void {
    mkdirSync(this.p('/run/volsd/lock'), { recursive: true });
    touch(this.p(`/run/volsd/lock/${name}`));
  }

  recordPath(volumeId: string): string {
    return this.p(`/etc/volsd/mounts.d/${volumeId}`);
  }

  /** volsd_record. */
  record(volumeId: string, mountPath: string): void {
    const record = this.recordPath(volumeId);
    mkdirSync(dirname(record), { recursive: true });
    writeFileSync(`${record}.tmp`, `${mountPath}\n`);
    renameSync(`${record}.tmp`, record);
  }

  /** volsd_forget. */
  forget(volumeId: string): void {
    rmSync(this.recordPath(volumeId), { force: true });
  }

  /** volsd_read_generation. */
  readGeneration(mountPath: string): number {
    const file = this.p(`${mountPath}/.volsd/generation`);
    let g = '0';
    if (isFile(file)) g = firstLine(file);
    return /^[0-9]{1,15}$/.test(g) ? Number.parseInt(g, 10) : 0;
  }

  /** volsd_mount_volume: returns mounted | already-mounted; ends the run on a conflict. */
  mountVolume(volume: string, dev: string, mnt: string, optionsIn: string, out: Output): string {
    let options = optionsIn;
    const here = this.sourceAt(mnt);
    if (here === dev) {
      this.record(volume, mnt);
      return 'already-mounted';
    }
    if (here !== '') {
      out.fail(Exit.MountConflict, 'mount-conflict', `${mnt} already holds another device (${here})`, [
        ['mountPath', jsonStr(mnt)],
      ]);
    }
    const elsewhere = this.mountsOf(dev);
    if (elsewhere.length > 0) {
      const first = elsewhere[0] ?? '';
      out.fail(Exit.MountConflict, 'mount-conflict', `${volume} is already mounted at ${first}`, [
        ['mountPath', jsonStr(first)],
      ]);
    }
    if (existsSync(this.p(mnt)) && !isDir(this.p(mnt))) {
      out.fail(Exit.MountConflict, 'mount-conflict', `${mnt} exists and is not a directory`);
    }
    mkdirSync(this.p(mnt), { recursive: true });
    const fstype = this.blkidType(this.p(dev)) ?? '';
    options = forcedOptions(options);
    if (fstype === 'xfs' && !`,${options},`.includes(',nouuid,')) {
      options = options ? `${options},nouuid` : 'nouuid';
    }
    try {
      this.mount(this.p(dev), this.p(mnt), options);
    } catch (error) {
      if (!(error instanceof ShimError)) throw error;
      out.fail(Exit.MountFailed, 'mount-failed', `mount of ${dev} at ${mnt} failed: ${error.message}`, [
        ['device', jsonStr(dev)],
      ]);
    }
    if (this.sourceAt(mnt) !== dev) {
      out.fail(Exit.MountFailed, 'mount-failed', `mount reported success but ${mnt} does not show ${dev}`);
    }
    this.record(volume, mnt);
    return 'mounted';
  }

  /** volsd_frozen_state. */
  frozenState(volumeId: string): string {
    return this.p(`/run/volsd/frozen/${volumeId}`);
  }
}

/** `vol-0abc` -> `vol0abc` (the first dash only, as ${1/-/}). */
export function serialOf(name: string): string {
  return name.replace('-', '');
}

/** `read -r line < file`: the first line without surrounding blanks ('' when unreadable). */
export function firstLine(file: string): string {
  try {
    return (readFileSync(file, 'utf8').split('\n')[0] ?? '').replace(/^[ \t]+|[ \t]+$/g, '');
  } catch {
    return '';
  }
}

export function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** `: >>file` without changing an existing file's content (the effect of `exec {fd}>file` is truncation, of an empty lock file). */
function touch(path: string): void {
  closeSync(openSync(path, 'a'));
}
