/**
 * Where a pool volume may be mounted. The same rules hold at the edge (volsd-client's --mount, the
 * acquire workflow's input) and on the host (Volsd-Mount, scripts/volsd-lib.sh, after resolving
 * symlinks): a mount path is absolute and normalized, lies at or under one of the pool's mount roots,
 * and lies in no system tree. The lists below are the script's VOLSD_SYSTEM_TREES and VOLSD_OWN_TREE
 * (test/scripts/mount.test.ts holds them equal).
 */

/**
 * Trees no volume is mounted at or under: content there is run or read by root (cron.d, systemd units,
 * PATH, libraries, authorized_keys, crontabs) or is the kernel's.
 */
export const systemTrees = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/sys',
  '/tmp',
  '/usr',
  '/var/lib',
  '/var/lock',
  '/var/log',
  '/var/run',
  '/var/spool',
] as const;

/** Volsd's own state tree (the sync worker's mounts): the one exception inside the system trees. */
export const volsdOwnTree = '/var/lib/volsd';

/** The MountPath grammar of Volsd-Mount: absolute, each segment [A-Za-z0-9_][A-Za-z0-9._-]*. */
export const mountPathGrammar = /^(\/[A-Za-z0-9_][A-Za-z0-9._-]*)+$/;

/** `path` is `dir` or lies under it. */
export const isUnder = (path: string, dir: string): boolean =>
  dir === '/' || path === dir || path.startsWith(`${dir}/`);

/** The system tree `path` lies in (Volsd's own tree excepted), if any. */
export function systemTreeOf(path: string): string | undefined {
  if (isUnder(path, volsdOwnTree)) return undefined;
  return systemTrees.find((tree) => isUnder(path, tree));
}

/** The mount roots of a pool: its mount path and the configured ones (space-separated). */
export function mountRoots(configured: string | undefined, mountPath: string): string[] {
  return [...new Set([mountPath, ...(configured ?? '').split(' ').filter(Boolean)])];
}

/**
 * Why a mount path asked for is refused, or undefined when it may be used: it must be absolute and
 * normalized (no `.`, `..` or empty segment, no trailing slash), at most 200 characters, at or under
 * one of `roots` and in no system tree.
 */
export function mountPathProblem(path: string, roots: readonly string[]): string | undefined {
  if (path.length > 200) return 'a mount path has at most 200 characters';
  if (!mountPathGrammar.test(path)) {
    return 'a mount path is absolute and normalized: segments of [A-Za-z0-9._-], none empty, none starting with a dot';
  }
  const tree = systemTreeOf(path);
  if (tree) return `${path} is in the system tree ${tree}`;
  if (!roots.some((root) => isUnder(path, root))) {
    return `${path} is outside the pool's mount roots (${roots.join(' ')})`;
  }
  return undefined;
}
