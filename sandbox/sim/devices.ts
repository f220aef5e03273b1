import {
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/** A volume as an instance's OS sees it (Nitro: NVMe). */
export interface DeviceView {
  /** `/dev/nvme<N>n1`, N from 1 in discovery order (nvme0n1 is the root volume). */
  device: string;
  /** The NVMe serial: the volume id without the dash (`vol0123...`). */
  serial: string;
  volumeId: string;
  /** The device name given to AttachVolume (`/dev/sdf`), which AWS keeps in the NVMe vendor data. */
  attachDevice: string;
}

/** A device to materialise: its view and where the volume's data lives. */
export interface HostDevice extends DeviceView {
  dataDir: string;
  /**
   * The block device's size in bytes as the OS sees it: `/sys/block/<nvmeXn1>/size` holds it in 512-byte
   * sectors, as on Linux. It grows when a ModifyVolume reaches `optimizing` (`modify.ts`).
   */
  sizeBytes?: number;
}

/** `vol-0abc` -> `vol0abc`, as `nvme id-ctrl` reports it. */
export function nvmeSerial(volumeId: string): string {
  return volumeId.replace('-', '');
}

/** The by-id link name udev creates for an EBS NVMe device. */
export function byIdName(serial: string): string {
  return `nvme-Amazon_Elastic_Block_Store_${serial}`;
}

const nvmeFile = /^nvme\d+n1$/;
const byIdPrefix = 'nvme-Amazon_Elastic_Block_Store_';

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Makes `${hostRoot}/dev` show exactly `devices`: `dev/nvme<N>n1` regular files holding the
 * absolute path of the volume's data dir, and `dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<serial>`
 * symlinks to `../../nvme<N>n1`. Device files of volumes no longer attached are removed. Synchronous
 * on purpose: the view must never be half-written when a script or the simulator looks at it.
 */
export function materializeDevices(hostRoot: string, devices: readonly HostDevice[]): void {
  const devDir = join(hostRoot, 'dev');
  const byIdDir = join(devDir, 'disk', 'by-id');
  mkdirSync(byIdDir, { recursive: true });
  const wantFiles = new Map(devices.map((d) => [d.device.replace('/dev/', ''), d.dataDir]));
  const wantLinks = new Map(
    devices.map((d) => [byIdName(d.serial), `../../${d.device.replace('/dev/', '')}`]),
  );

  for (const name of readdirSync(devDir)) {
    if (nvmeFile.test(name) && !wantFiles.has(name)) rmSync(join(devDir, name), { force: true });
  }
  for (const name of readdirSync(byIdDir)) {
    if (name.startsWith(byIdPrefix) && wantLinks.get(name) !== readLink(join(byIdDir, name))) {
      rmSync(join(byIdDir, name), { force: true });
    }
  }
  for (const [name, dataDir] of wantFiles) {
    const path = join(devDir, name);
    if (readText(path) !== dataDir) writeFileSync(path, dataDir);
  }
  for (const [name, target] of wantLinks) {
    const path = join(byIdDir, name);
    if (readLink(path) !== target) symlinkSync(target, path);
  }
  // /sys/block/<dev>/size: the size in 512-byte sectors (Linux's block layer), read by Volsd-Sync before
  // it grows a file system; only devices whose size the simulator knows.
  const sysBlock = join(hostRoot, 'sys', 'block');
  const sized = devices.filter((d) => d.sizeBytes !== undefined);
  const wantSizes = new Map(
    sized.map((d) => [d.device.replace('/dev/', ''), String(Math.floor((d.sizeBytes ?? 0) / 512))]),
  );
  for (const name of safeReaddir(sysBlock)) {
    if (nvmeFile.test(name) && !wantSizes.has(name))
      rmSync(join(sysBlock, name), { recursive: true, force: true });
  }
  for (const [name, sectors] of wantSizes) {
    const path = join(sysBlock, name, 'size');
    if (readText(path) !== `${sectors}\n`) {
      mkdirSync(join(sysBlock, name), { recursive: true });
      writeFileSync(path, `${sectors}\n`);
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** One line of /proc/mounts. */
export interface MountEntry {
  device: string;
  mountPoint: string;
  fsType: string;
  options: string;
}

/** Parses `${hostRoot}/proc/mounts` (Linux format); a missing file means nothing is mounted. */
export function readMounts(hostRoot: string): MountEntry[] {
  const text = readText(join(hostRoot, 'proc', 'mounts')) ?? '';
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0] !== '')
    .map(([device = '', mountPoint = '', fsType = '', options = '']) => ({
      device,
      mountPoint,
      fsType,
      options,
    }));
}

/**
 * True when `/proc/mounts` on the host lists the device, under any name a mount could use for it:
 * the NVMe name (or a partition of it), its by-id path, its path inside the host tree, or the
 * AttachVolume device name.
 */
export function isMounted(hostRoot: string, view: DeviceView): boolean {
  const nvme = view.device;
  const names = new Set([
    nvme,
    `/dev/disk/by-id/${byIdName(view.serial)}`,
    join(hostRoot, nvme),
    join(hostRoot, 'dev', 'disk', 'by-id', byIdName(view.serial)),
    view.attachDevice,
    view.attachDevice.replace('/dev/sd', '/dev/xvd'),
  ]);
  return readMounts(hostRoot).some((m) => names.has(m.device) || m.device.startsWith(`${nvme}p`));
}
