/**
 * Ground truth the invariants read, synchronously so it can be taken at the very moment something
 * happens in the simulator: what a host serves (its tree), what it has mounted, and what the push
 * bucket holds (s3rver's store on disk). Never the table, never a marker Volsd writes.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { validateKey } from '../lambdas/shared/push-keys.js';
import { decodeKeyPath, encodeKeyPath } from './agent/s3-fidelity.js';

/** A content tree: path below the root -> MD5 of the file's bytes. */
export type ContentTree = Map<string, string>;

const md5 = (path: string) => createHash('md5').update(readFileSync(path)).digest('hex');

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The files a host serves under `mountPath` (its web root), followed through the mount (the sandbox's
 * mount is a link to the volume's data). Volsd's own records at the root (`.volsd*`) are not content.
 * Empty when nothing is mounted there.
 */
export function servedTree(hostRoot: string, mountPath: string): ContentTree {
  const root = join(hostRoot, mountPath);
  const tree: ContentTree = new Map();
  const walk = (dir: string, rel: string) => {
    for (const name of list(dir)) {
      if (rel === '' && name.startsWith('.volsd')) continue;
      const path = join(dir, name);
      const st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      const relPath = rel === '' ? name : `${rel}/${name}`;
      if (st.isDirectory()) walk(path, relPath);
      else if (st.isFile()) tree.set(relPath, md5(path));
      else tree.set(relPath, `link:${readlinkSync(path)}`);
    }
  };
  walk(root, '');
  return tree;
}

const objectSuffix = '._S3rver_object';

/**
 * The tree the bucket holds under `prefix` right now, read from s3rver's store: key below the prefix
 * -> MD5 of the object, for the keys a volume should hold (refused keys and directory markers are
 * never synced).
 */
export function bucketTreeNow(s3Directory: string, bucket: string, prefix = 'live/'): ContentTree {
  const base = join(s3Directory, bucket);
  const tree: ContentTree = new Map();
  const walk = (dir: string) => {
    for (const name of list(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(path);
      else if (name.endsWith(objectSuffix)) {
        const key = decodeKeyPath(relative(base, path).split(sep).join('/').slice(0, -objectSuffix.length));
        if (!key.startsWith(prefix)) continue;
        const verdict = validateKey(key, { prefix, encoded: false });
        if (verdict.kind === 'valid') tree.set(verdict.path, md5(path));
      }
    }
  };
  walk(base);
  return tree;
}

/**
 * What the store and a host hold for one differing path, for a failing run's diagnostics: each store file
 * beside the key's object (object, metadata, md5, temporary files) and the served file, as
 * `name size 'first bytes'`.
 */
export function evidenceFor(
  s3Directory: string,
  bucket: string,
  key: string,
  hostRoot: string,
  mountPath: string,
  path: string,
): { store: string[]; served: string } {
  const show = (file: string) => {
    const st = lstatSync(file, { throwIfNoEntry: false });
    if (!st) return 'absent';
    const head = st.isFile() ? readFileSync(file).subarray(0, 48).toString('utf8') : '(not a file)';
    return `${st.size} ${JSON.stringify(head)} mtime ${st.mtime.toISOString()}`;
  };
  const segments = encodeKeyPath(key).split('/');
  const dir = join(s3Directory, bucket, ...segments.slice(0, -1));
  const base = segments.at(-1) ?? '';
  return {
    store: list(dir)
      .filter((name) => name.startsWith(base))
      .map((name) => `${name} ${show(join(dir, name))}`),
    served: show(join(hostRoot, mountPath, path)),
  };
}

/** The paths where two trees differ (missing, extra or changed), sorted; empty when they are equal. */
export function treeDifferences(served: ContentTree, wanted: ContentTree): string[] {
  const out: string[] = [];
  for (const [path, hash] of wanted) {
    const has = served.get(path);
    if (has === undefined) out.push(`missing ${path}`);
    else if (has !== hash) out.push(`changed ${path}`);
  }
  for (const path of served.keys()) if (!wanted.has(path)) out.push(`extra ${path}`);
  return out.sort();
}

/**
 * The volumes each host has mounted, from its tree: every link outside `/dev` that leads into the
 * volumes' data area (how the sandbox mounts). Volume id -> the mount points on that host.
 */
export function mountedVolumes(hostRoot: string, volumesDir: string): Map<string, string[]> {
  const mounted = new Map<string, string[]>();
  const volumes = resolve(volumesDir);
  const walk = (dir: string) => {
    for (const name of list(dir)) {
      const path = join(dir, name);
      const rel = relative(hostRoot, path);
      if (rel === 'dev' || rel === 'proc' || rel === 'sys') continue;
      const st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isSymbolicLink()) {
        const target = relative(volumes, resolve(dir, readlinkSync(path)));
        if (target.startsWith('..') || target === '') continue;
        const volumeId = target.split(sep)[0] ?? '';
        mounted.set(volumeId, [...(mounted.get(volumeId) ?? []), `/${rel}`]);
      } else if (st.isDirectory()) walk(path);
    }
  };
  walk(hostRoot);
  return mounted;
}
