/**
 * Volsd-Sync as a TypeScript twin of scripts/volsd-sync.sh: the same volume selection, a first listing
 * classified by the same path guard and size limit (reasons, VOLSD_REJECTED lines, exclusion patterns,
 * the etag file, the tree's bytes), then per volume, once its lock is held, a second listing (as
 * `aws s3 sync` lists the prefix itself when it runs) whose keys are transferred with the
 * `aws s3 sync --delete --exact-timestamps` semantics of the AWS CLI v2 (download when the size
 * differs or the local mtime is not exactly the object's LastModified; the file's mtime becomes
 * LastModified in whole seconds; local files missing from the listing are deleted; `--exclude`
 * patterns, fnmatch-style, apply to both sides), the tripwire, the counts and the generation marker.
 * S3 is read with the AWS SDK v3 instead of the AWS CLI; no child process is started.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import {
  Exit,
  firstLine,
  type Host,
  isFile,
  jsonObject,
  jsonStr,
  type Output,
  type Raw,
  raw,
  reMountPath,
  reVolumeId,
} from './host.js';

/** What the sync did, for the modelled duration. */
export interface SyncStats {
  /** Per volume synced (ok or failed after the listing): objects downloaded, bytes, files deleted. */
  volumes: { downloads: number; bytes: number; deletes: number }[];
  listed: boolean;
  /** Listing pages requested. */
  pages: number;
}

/** What the sync needs from the runner. */
export interface SyncEnvironment {
  /** An S3 client for the endpoint and region (either may be empty: the runner's defaults). */
  s3(endpoint: string, region: string): S3Client;
  /** Runs `fn` holding the volume's lock (volsd_lock). */
  withLock<T>(volume: string, fn: () => Promise<T>): Promise<T>;
  signal?: AbortSignal;
}

interface Listed {
  key: string;
  size: number;
  lastModifiedMs: number;
  /** The ETag as the CLI's JSON prints it (`"\"…\""`, or `null`). */
  etag: string;
}

interface Refused {
  reason: string;
  /** The key JSON-escaped as the AWS CLI prints it (Python json, ensure_ascii off). */
  json: string;
  pattern: string;
  parentRel: string;
}

const maxExcludes = 2000;
/** The rc of a per-volume sync whose volume was taken while it waited (the script's private 64). */
const takenRc = 64;

/** The JSON-escaped key as `aws ... --output json` prints it (what the script's classifier reads). */
function pythonJson(key: string): string {
  const short: Record<string, string> = { '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  let out = '';
  for (const ch of key) {
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch.charCodeAt(0) < 0x20)
      out += short[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

/**
 * A class of Python's fnmatch that holds only NUL and the lone surrogates: how the script names a NUL,
 * which no argv can carry (every key holding either is refused, so no good key matches it).
 */
export const nulClass = '[!\u0001-\ud7ff\ue000-\u{10ffff}]';

/**
 * The classifier's exclusion pattern for a refused key's relative path, as the AWS CLI receives it:
 * it matches exactly that path. `*` `?` `[` and control characters become one-character classes,
 * NUL {@link nulClass}, a leading `/` `[/]` (os.path.join would drop the root before it).
 */
export function patternOf(rel: string): string {
  let out = '';
  let i = 0;
  for (const ch of rel) {
    const code = ch.charCodeAt(0);
    if (ch === '*' || ch === '?' || ch === '[') out += `[${ch}]`;
    else if (code === 0 || (ch.length === 1 && code >= 0xd800 && code <= 0xdfff)) out += nulClass;
    else if (code < 0x20 || code === 0x7f) out += `[${ch}]`;
    else if (i === 0 && ch === '/') out += '[/]';
    else out += ch;
    i++;
  }
  return out;
}

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** The script's awk classifier for one key: undefined when the key is synced. */
function classify(key: string, size: number, prefix: string, maxBytes: number): Refused | undefined {
  if (!key.startsWith(prefix)) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is matched
  const ctl = /[\x00-\x1f\x7f]/.test(key);
  const bs = key.includes('\\');
  const rel = key.slice(prefix.length);
  const marker = rel === '' || rel.endsWith('/');
  const body = marker ? rel.slice(0, -1) : rel;
  let reason = '';
  let parent = false;
  if (ctl) reason = 'control-character';
  else if (bs) reason = 'backslash';
  else if (body.startsWith('/')) reason = 'absolute';
  else if (bytes(key) > 1024) reason = 'too-long';
  if (body !== '') {
    const segments = body.split('/');
    for (const seg of segments) {
      if (seg === '..') {
        parent = true;
        if (reason === '' || reason === 'absolute') reason = 'parent-segment';
      } else if (reason !== '') {
        // awk's `continue`: a reason found stays; only `..` still upgrades it.
      } else if (seg === '.') reason = 'dot-segment';
      else if (seg === '') reason = 'empty-segment';
      else if (bytes(seg) > 255) reason = 'too-long';
    }
    if (reason === '' && (segments[0] ?? '').startsWith('.volsd')) reason = 'reserved';
  }
  if (reason === '' && marker) reason = 'directory-marker';
  if (reason === '' && size > maxBytes) reason = 'too-large';
  if (reason === '') return undefined;
  return { reason, json: pythonJson(key), pattern: patternOf(rel), parentRel: parent && !ctl ? rel : '' };
}

/**
 * Python's fnmatch.translate, anchored (what the AWS CLI's --exclude uses; `*` and `?` cross `/`),
 * matching code points as Python's str does.
 */
export function fnmatchRegExp(pattern: string): RegExp {
  const chars = [...pattern];
  let re = '';
  let i = 0;
  const n = chars.length;
  while (i < n) {
    const c = chars[i] ?? '';
    i++;
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '[') {
      let j = i;
      if (chars[j] === '!') j++;
      if (chars[j] === ']') j++;
      while (j < n && chars[j] !== ']') j++;
      if (j >= n) re += '\\[';
      else {
        let stuff = chars.slice(i, j).join('');
        i = j + 1;
        const negate = stuff.startsWith('!');
        if (negate) stuff = stuff.slice(1);
        const body = stuff.replace(/[\\\]^[]/g, (ch) => `\\${ch}`).replace(/\\-|-/g, '-');
        re += negate ? `[^${body}]` : `[${body}]`;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, (ch) => `\\${ch}`);
  }
  return new RegExp(`^${re}$`, 'u');
}

/** GNU `realpath -m`: every symlink resolved, missing components allowed. */
export function realpathMissing(path: string): string {
  const pending = path.split('/').filter((p) => p !== '' && p !== '.');
  let resolved = '/';
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() ?? '';
    if (part === '..') {
      resolved = dirname(resolved);
      continue;
    }
    if (part === '.') continue;
    const next = join(resolved, part);
    let isLink = false;
    try {
      isLink = lstatSync(next).isSymbolicLink();
    } catch {
      // missing: kept as written
    }
    if (isLink && links++ < 40) {
      const target = readlinkSync(next);
      if (target.startsWith('/')) resolved = '/';
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    resolved = next;
  }
  return resolved;
}

/** escaping_symlinks: the symlinks under ROOT (not followed) that resolve outside REALROOT. */
function escapingSymlinks(root: string, realroot: string): string[] {
  const out: string[] = [];
  const visit = (dir: string, rel: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isSymbolicLink()) {
        const target = realpathMissing(path);
        if (target !== realroot && !target.startsWith(`${realroot}/`)) out.push(r);
      } else if (e.isDirectory()) visit(path, r);
    }
  };
  visit(root, '');
  return out;
}

function ctimeNs(path: string): bigint | undefined {
  try {
    return lstatSync(path, { bigint: true }).ctimeNs;
  } catch {
    return undefined;
  }
}

/** Regular files directly in DIR changed after STAMP (find DIR -maxdepth 1 -type f -cnewer). */
function changedFilesIn(dir: string, stamp: bigint): string[] {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile() && (ctimeNs(join(dir, e.name)) ?? 0n) > stamp)
    .map((e) => join(dir, e.name));
}

/** files_beside: files changed after STAMP in each parent directory of the mount root. */
function filesBeside(hostRoot: string, root: string, realroot: string, stamp: bigint): string[] {
  const out: string[] = [];
  let dir = root.slice(0, root.lastIndexOf('/'));
  while (dir !== '' && dir !== hostRoot) {
    out.push(...changedFilesIn(dir, stamp));
    dir = dir.slice(0, dir.lastIndexOf('/'));
  }
  out.push(...changedFilesIn(dir || '/', stamp));
  const realParent = realroot.slice(0, realroot.lastIndexOf('/'));
  if (realParent !== root.slice(0, root.lastIndexOf('/')))
    out.push(...changedFilesIn(realParent || '/', stamp));
  return out;
}

/** A local file as the AWS CLI's walk yields it. */
interface LocalFile {
  path: string;
  size: number;
  mtimeNs: bigint;
}

/**
 * Local files under the root as the AWS CLI walks them (symlinks followed), by relative path, and
 * the CLI's warnings: an entry it cannot stat (a dangling symlink, a symlink loop) is skipped with
 * "warning: Skipping file <path>. File does not exist." and makes the CLI exit 2.
 */
function localFiles(root: string): { files: Map<string, LocalFile>; warnings: string[] } {
  const files = new Map<string, LocalFile>();
  const warnings: string[] = [];
  const visit = (dir: string, rel: string, ancestors: Set<string>) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = `${dir}/${name}`;
      const r = rel ? `${rel}/${name}` : name;
      let st: import('node:fs').BigIntStats;
      try {
        st = statSync(path, { bigint: true });
      } catch {
        warnings.push(`warning: Skipping file ${path}. File does not exist.`);
        continue;
      }
      if (st.isDirectory()) {
        const real = realpathSync(path);
        // The CLI recurses into a looping directory link until the path no longer resolves.
        if (ancestors.has(real)) warnings.push(`warning: Skipping file ${path}. File does not exist.`);
        else visit(path, r, new Set([...ancestors, real]));
      } else if (st.isFile()) files.set(r, { path, size: Number(st.size), mtimeNs: st.mtimeNs });
    }
  };
  visit(root, '', new Set([realpathSync(root)]));
  return { files, warnings };
}

/** find ROOT/ -path 'ROOT/.volsd*' -prune -o -type f -cnewer STAMP: count and bytes. */
function changedSince(root: string, stamp: bigint): { files: number; bytes: number } {
  let files = 0;
  let total = 0;
  const visit = (dir: string, rel: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (r.startsWith('.volsd')) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) visit(path, r);
      else if (e.isFile()) {
        const st = lstatSync(path, { bigint: true });
        if (st.ctimeNs > stamp) {
          files++;
          total += Number(st.size);
        }
      }
    }
  };
  visit(root, '');
  return { files, bytes: total };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

/** Lists every key under the prefix (all pages), keys decoded from S3's url encoding. */
async function listAll(
  s3: S3Client,
  bucket: string,
  prefix: string,
  stats: SyncStats,
  signal?: AbortSignal,
): Promise<Listed[]> {
  const out: Listed[] = [];
  let token: string | undefined;
  do {
    stats.pages++;
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        EncodingType: 'url',
        ContinuationToken: token,
      }),
      { abortSignal: signal },
    );
    for (const o of page.Contents ?? []) {
      if (o.Key === undefined) continue;
      // botocore decodes url-encoded listings with unquote_plus.
      out.push({
        key: decodeURIComponent(o.Key.replace(/\+/g, ' ')),
        size: o.Size ?? 0,
        lastModifiedMs: o.LastModified?.getTime() ?? 0,
        etag: o.ETag === undefined ? 'null' : JSON.stringify(o.ETag),
      });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Volsd-Sync; returns what it did and its exit code (a parameter failure throws ScriptExit). */
export async function syncOp(
  host: Host,
  env: Record<string, string>,
  out: Output,
  deps: SyncEnvironment,
): Promise<{ stats: SyncStats; exitCode: number }> {
  host.awsCliChecked();
  const bucket = env.VOLSD_BUCKET ?? '';
  const prefix = env.VOLSD_PREFIX ?? 'live/';
  const generationIn = env.VOLSD_GENERATION ?? '';
  const only = env.VOLSD_VOLUME_ID ?? '';
  const endpoint = env.VOLSD_S3_ENDPOINT ?? '';
  const region = env.VOLSD_REGION ?? '';
  const concurrencyIn = env.VOLSD_SYNC_CONCURRENCY || '4';
  const onlyBehind = env.VOLSD_ONLY_BEHIND || 'false';
  const maxBytesIn = env.VOLSD_MAX_OBJECT_BYTES || '1073741824';
  const untrusted = env.VOLSD_UNTRUSTED ?? '';
  out.check('VOLSD_BUCKET', bucket, /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/);
  out.check('VOLSD_PREFIX', prefix, /^([A-Za-z0-9_][A-Za-z0-9._=+-]*\/){0,16}$/);
  out.check('VOLSD_GENERATION', generationIn, /^[0-9]{1,15}$/);
  if (only !== '') out.checkVolumeId(only);
  if (endpoint !== '')
    out.check('VOLSD_S3_ENDPOINT', endpoint, /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?\/?$/);
  if (region !== '') out.check('VOLSD_REGION', region, /^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$/);
  out.check('VOLSD_SYNC_CONCURRENCY', concurrencyIn, /^[1-9][0-9]?$/);
  out.check('VOLSD_ONLY_BEHIND', onlyBehind, /^(true|false)$/);
  out.check('VOLSD_MAX_OBJECT_BYTES', maxBytesIn, /^[1-9][0-9]{0,15}$/);
  out.check(
    'VOLSD_UNTRUSTED',
    untrusted,
    /^(vol-([0-9a-f]{8}|[0-9a-f]{17})( vol-([0-9a-f]{8}|[0-9a-f]{17}))*)?$/,
  );
  const untrustedVolumes = new Set(untrusted.split(' ').filter(Boolean));
  const maxBytes = Number(maxBytesIn);
  const generation = Number.parseInt(generationIn, 10);
  const concurrency = Number.parseInt(concurrencyIn, 10);
  const stats: SyncStats = { volumes: [], listed: false, pages: 0 };
  const s3 = deps.s3(endpoint, region);

  mkdirSync(host.p('/tmp'), { recursive: true });
  const work = mkdtempSync(host.p('/tmp/volsd-sync.'));
  try {
    // --- The volumes to sync. ---
    const volumes: { volume: string; mnt: string }[] = [];
    const skipped: string[] = [];
    if (only !== '') {
      const device = host.findDevice(only);
      if (device === undefined)
        out.fail(Exit.NotMounted, 'not-mounted', `${only} is not attached to this host`);
      const mnt = host.mountsOf(device)[0] ?? '';
      if (mnt === '') out.fail(Exit.NotMounted, 'not-mounted', `${only} is not mounted on this host`);
      volumes.push({ volume: only, mnt });
    } else {
      const dir = host.p('/etc/volsd/mounts.d');
      let names: string[] = [];
      try {
        names = readdirSync(dir)
          .filter((n) => n.startsWith('vol-'))
          .sort();
      } catch {
        // no record yet
      }
      for (const volume of names) {
        const record = `${dir}/${volume}`;
        if (!isFile(record)) continue;
        const mnt = firstLine(record);
        let reason = '';
        if (!reVolumeId.test(volume) || !reMountPath.test(mnt)) reason = 'malformed record';
        else {
          const device = host.findDevice(volume);
          if (device === undefined) reason = 'not attached';
          else if (host.sourceAt(mnt) !== device) reason = `not mounted at ${mnt}`;
        }
        if (reason !== '') {
          out.log(`skipping ${volume}: ${reason}`);
          skipped.push(
            jsonObject([
              ['op', raw('"sync"')],
              ['volumeId', jsonStr(volume)],
              ['status', raw('"skipped"')],
              ['reason', jsonStr(reason)],
            ]),
          );
          continue;
        }
        volumes.push({ volume, mnt });
      }
    }

    // --- The first listing, classified (aws s3api list-objects-v2). ---
    let listing: Listed[] = [];
    let failedListing = false;
    if (volumes.length > 0) {
      try {
        listing = await listAll(s3, bucket, prefix, stats, deps.signal);
        stats.listed = true;
      } catch (error) {
        if (deps.signal?.aborted) throw error;
        out.log(`listing s3://${bucket}/${prefix} failed: ${errorText(error)}`);
        failedListing = true;
      }
    }
    let markers = 0;
    const rejected: string[] = [];
    const excludes: RegExp[] = [fnmatchRegExp('.volsd*')];
    const parentRels: string[] = [];
    const refusedKeys = new Set<string>();
    for (const item of listing) {
      const refused = classify(item.key, item.size, prefix, maxBytes);
      if (!refused) continue;
      refusedKeys.add(item.key);
      if (refused.reason === 'directory-marker') markers++;
      else
        rejected.push(
          jsonObject([
            ['key', { raw: `"${refused.json}"` }],
            ['reason', jsonStr(refused.reason)],
          ]),
        );
      excludes.push(fnmatchRegExp(refused.pattern));
      if (refused.parentRel) parentRels.push(refused.parentRel);
    }
    const tooManyRefused = excludes.length > maxExcludes;
    for (const line of rejected.slice(0, 20)) out.line(`VOLSD_REJECTED ${line}`);
    if (rejected.length > 0)
      out.log(`refused ${rejected.length} unsafe key(s) under s3://${bucket}/${prefix}`);
    const excluded = (rel: string) => excludes.some((re) => re.test(rel));
    const firstKeys = new Set(listing.map((item) => item.key));
    // The classifier's byte total: every key under the prefix it did not refuse.
    let treeBytes = 0;
    for (const item of listing)
      if (!refusedKeys.has(item.key) && item.key.startsWith(prefix)) treeBytes += item.size;
    // The classifier's etagfile, sorted as `LC_ALL=C sort` does (bytes).
    const etagLines = listing
      .filter((item) => !refusedKeys.has(item.key) && item.key.startsWith(prefix))
      .map((item) => `${item.etag}\t${item.key.slice(prefix.length)}`)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const etagsText = etagLines.map((l) => `${l}\n`).join('');

    // --- The per-volume sync. ---
    const syncVolume = async (volume: string, mnt: string): Promise<{ rc: number; json: string }> => {
      const root = host.p(mnt);
      const fail = (exitCode: number, code: string, message: string) => {
        out.stderr += `${stamp()} volsd-sync ${volume}: error: ${message}\n`;
        return {
          rc: exitCode,
          json: jsonObject([
            ['op', raw('"sync"')],
            ['volumeId', jsonStr(volume)],
            ['mountPath', jsonStr(mnt)],
            ['status', raw('"failed"')],
            ['code', jsonStr(code)],
            ['exitCode', raw(exitCode)],
            ['error', jsonStr(message)],
            ['generation', raw(host.readGeneration(mnt))],
            ['rejectedKeys', raw(rejected.length)],
          ]),
        };
      };
      host.lockFile(volume);
      const device = host.findDevice(volume) ?? '';
      if (device === '' || host.sourceAt(mnt) !== device) {
        if (only === '') {
          // Taken while waiting for the lock: skipped, as the script does (private rc 64).
          out.stderr += `${stamp()} volsd-sync ${volume}: skipping ${volume}: taken while waiting for its lock\n`;
          return {
            rc: takenRc,
            json: jsonObject([
              ['op', raw('"sync"')],
              ['volumeId', jsonStr(volume)],
              ['status', raw('"skipped"')],
              ['reason', jsonStr(`taken: no longer mounted at ${mnt}`)],
            ]),
          };
        }
        return fail(Exit.SyncFailed, 'not-mounted', `${volume} is no longer mounted at ${mnt}`);
      }
      if (failedListing)
        return fail(Exit.SyncFailed, 'listing-failed', `cannot list s3://${bucket}/${prefix}`);
      if (tooManyRefused) {
        return fail(
          Exit.SyncFailed,
          'too-many-unsafe-keys',
          `more than ${maxExcludes} unsafe keys under s3://${bucket}/${prefix}: remove them from the bucket`,
        );
      }
      if (untrustedVolumes.has(volume)) {
        // As the script: emptied (its symlinks and markers included) and reset before anything reads it.
        out.stderr += `${stamp()} volsd-sync ${volume}: ${volume} is untrusted: emptying ${mnt} before a full sync\n`;
        try {
          for (const name of readdirSync(root)) rmSync(join(root, name), { recursive: true, force: true });
          chownSync(root, 0, 0);
          chmodSync(root, 0o755);
        } catch (err) {
          return fail(
            Exit.SyncFailed,
            'wipe-failed',
            `cannot empty untrusted ${mnt}: ${errorText(err).slice(0, 300)}`,
          );
        }
      }
      const realroot = realpathSync(root);
      let escapes = escapingSymlinks(root, realroot);
      if (escapes.length > 0) {
        return fail(
          Exit.PathEscape,
          'path-escape',
          `refusing to sync: symlinks lead outside the mount root: ${escapes.join('\n').slice(0, 500)}`,
        );
      }
      const grew = host.growFilesystem(mnt, device);
      if (grew) out.stderr += `${stamp()} volsd-sync ${volume}: ${grew}\n`;
      const before = host.readGeneration(mnt);
      if (onlyBehind === 'true' && before >= generation) {
        out.stderr += `${stamp()} volsd-sync ${volume}: ${mnt} is at generation ${before}, not behind ${generation}: skipped\n`;
        return {
          rc: 0,
          json: jsonObject([
            ['op', raw('"sync"')],
            ['volumeId', jsonStr(volume)],
            ['mountPath', jsonStr(mnt)],
            ['status', raw('"current"')],
            ['generation', raw(before)],
            ['previousGeneration', raw(before)],
            ['filesChanged', raw(0)],
            ['bytesChanged', raw(0)],
          ]),
        };
      }
      const fsBytes = host.dfSize(mnt);
      if (fsBytes !== undefined && treeBytes * 100 > fsBytes * 95) {
        return fail(
          Exit.NoSpace,
          'no-space',
          `the content (${treeBytes} bytes) does not fit the file system of ${mnt} (${fsBytes} bytes, 95% usable): nothing synced`,
        );
      }
      // A same-size version written in the same second as the one synced looks alike to
      // --exact-timestamps: a file whose key's ETag differs from .volsd/etags (or that no record covers)
      // gets mtime 0, so the transfer downloads it again (as the script).
      forgetChanged(root, etagLines);
      // The stamp and its clock tick, as the script takes them (a write right after the stamp must
      // carry a later ctime).
      const stampFile = join(work, `stamp.${volume}`);
      writeFileSync(stampFile, '');
      const stampNs = lstatSync(stampFile, { bigint: true }).mtimeNs;
      for (let i = 0; i < 50; i++) {
        writeFileSync(`${stampFile}.tick`, '');
        if (lstatSync(`${stampFile}.tick`, { bigint: true }).mtimeNs > stampNs) break;
        await tick();
      }
      const done = { downloads: 0, bytes: 0, deletes: 0 };
      stats.volumes.push(done);
      // aws s3 sync lists the prefix again itself: what was put or deleted while this volume waited
      // for its lock is what it transfers.
      let fresh: Listed[] | undefined;
      let listError = '';
      try {
        fresh = await listAll(s3, bucket, prefix, stats, deps.signal);
      } catch (error) {
        if (deps.signal?.aborted) throw error;
        listError = errorText(error);
      }
      // A failed listing fails the volume as a failed aws s3 sync does (its "fatal error", exit 1,
      // nothing transferred), through the tripwire below.
      let rc = 1;
      let log = `fatal error: ${listError}`;
      if (fresh) {
        const wanted = new Map<string, Listed>();
        const skippedRels = new Set<string>();
        const warnings: string[] = [];
        for (const item of fresh) {
          if (refusedKeys.has(item.key) || !item.key.startsWith(prefix)) continue;
          const rel = item.key.slice(prefix.length);
          if (excluded(rel)) continue;
          // Assumption: a key put after the first listing that the classifier would refuse has no
          // --exclude; the twin skips it with a warning (the CLI's exit 2) and keeps any local file
          // of that name, so that it never writes outside the mount root. What the CLI itself does
          // with such a key is not modelled.
          const refused = firstKeys.has(item.key)
            ? undefined
            : classify(item.key, item.size, prefix, maxBytes);
          if (refused) {
            skippedRels.add(rel);
            warnings.push(
              `warning: Skipping file s3://${bucket}/${refused.json}. Refused (${refused.reason}), put after the listing.`,
            );
          } else wanted.set(rel, item);
        }
        const kept = (rel: string) => excluded(rel) || skippedRels.has(rel);
        ({ rc, log } = await transfer(s3, deps.signal, bucket, root, wanted, kept, done, fsBytes, warnings));
      }
      escapes = [...escapingSymlinks(root, realroot), ...filesBeside(host.root, root, realroot, stampNs)];
      for (const rel of parentRels) {
        const target = realpathMissing(`${root}/${rel}`);
        const changed = ctimeNs(target);
        if (!target.startsWith(`${realroot}/`) && changed !== undefined && changed > stampNs)
          escapes.push(target);
      }
      if (escapes.length > 0) {
        return fail(
          Exit.PathEscape,
          'path-escape',
          `written or linked outside the mount root: ${escapes.join('\n').slice(0, 500)}`,
        );
      }
      const text = log.slice(-1500);
      if (text) out.stderr += `${stamp()} volsd-sync ${volume}: aws s3 sync: ${text}\n`;
      if (rc !== 0)
        return fail(Exit.SyncFailed, 'sync-failed', `aws s3 sync exited ${rc}: ${text.slice(0, 500)}`);
      const changed = changedSince(root, stampNs);
      const after = Math.max(generation, before);
      mkdirSync(`${root}/.volsd`, { recursive: true });
      writeFileSync(`${root}/.volsd/etags.tmp`, etagsText);
      renameSync(`${root}/.volsd/etags.tmp`, `${root}/.volsd/etags`);
      writeFileSync(`${root}/.volsd/generation.tmp`, `${after}\n`);
      renameSync(`${root}/.volsd/generation.tmp`, `${root}/.volsd/generation`);
      out.stderr += `${stamp()} volsd-sync ${volume}: synced ${mnt} to generation ${after} (${changed.files} file(s), ${changed.bytes} byte(s) changed)\n`;
      return {
        rc: 0,
        json: jsonObject([
          ['op', raw('"sync"')],
          ['volumeId', jsonStr(volume)],
          ['mountPath', jsonStr(mnt)],
          ['status', raw('"ok"')],
          ['generation', raw(after)],
          ['previousGeneration', raw(before)],
          ['filesChanged', raw(changed.files)],
          ['bytesChanged', raw(changed.bytes)],
          ['rejectedKeys', raw(rejected.length)],
        ]),
      };
    };

    const outcomes: { rc: number; json: string }[] = new Array(volumes.length);
    let next = 0;
    const worker = async () => {
      while (next < volumes.length) {
        const i = next++;
        const v = volumes[i];
        if (!v) continue;
        outcomes[i] = await deps.withLock(v.volume, async () => {
          try {
            return await syncVolume(v.volume, v.mnt);
          } catch (error) {
            if (deps.signal?.aborted) throw error;
            out.stderr += `${stamp()} volsd-sync ${v.volume}: unexpected failure: ${errorText(error)}\n`;
            return {
              rc: 1,
              json: jsonObject([
                ['op', raw('"sync"')],
                ['volumeId', jsonStr(v.volume)],
                ['mountPath', jsonStr(v.mnt)],
                ['status', raw('"failed"')],
                ['code', raw('"unexpected"')],
                ['exitCode', raw(1)],
                ['error', raw('"unexpected failure, see stderr"')],
              ]),
            };
          }
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, volumes.length) }, worker));

    let ok = 0;
    let failed = 0;
    let taken = 0;
    let status = 0;
    for (const outcome of outcomes) {
      out.line(`VOLSD_RESULT ${outcome.json}`);
      if (outcome.rc === 0) ok++;
      else if (outcome.rc === takenRc) taken++;
      else {
        failed++;
        if (outcome.rc === Exit.PathEscape) status = Exit.PathEscape;
        else if (status === 0) status = Exit.SyncFailed;
      }
    }
    for (const s of skipped) out.line(`VOLSD_RESULT ${s}`);
    out.volume = '';
    const fields: [string, Raw][] = [
      ['op', raw('"sync-summary"')],
      ['generation', raw(generation)],
      ['volumes', raw(volumes.length)],
      ['ok', raw(ok)],
      ['failed', raw(failed)],
      ['skipped', raw(skipped.length + taken)],
      ['keys', raw(listing.length)],
      ['directoryMarkers', raw(markers)],
      ['rejectedKeys', raw(rejected.length)],
      ['listingFailed', raw(failedListing)],
      ['status', raw(status === 0 ? '"ok"' : '"failed"')],
    ];
    out.result(fields);
    return { stats, exitCode: status };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The bytes of the regular files under `dir` (shim_used_bytes). */
function usedBytes(dir: string): number {
  let total = 0;
  const visit = (path: string) => {
    let entries: string[];
    try {
      entries = readdirSync(path);
    } catch {
      return;
    }
    for (const name of entries) {
      const st = lstatSync(`${path}/${name}`, { throwIfNoEntry: false });
      if (st?.isDirectory()) visit(`${path}/${name}`);
      else if (st?.isFile()) total += st.size;
    }
  };
  visit(realpathSync(dir));
  return total;
}

/** `comm -13 <mount>/.volsd/etags etags | cut -f 2-`, then `touch -m -d @0` on each regular file. */
function forgetChanged(root: string, etagLines: string[]): void {
  const file = `${root}/.volsd/etags`;
  let known = new Set<string>();
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (st?.isFile()) known = new Set(readFileSync(file, 'utf8').split('\n'));
  for (const line of etagLines) {
    if (known.has(line)) continue;
    const path = `${root}/${line.slice(line.indexOf('\t') + 1)}`;
    const local = lstatSync(path, { throwIfNoEntry: false });
    if (local?.isFile()) utimesSync(path, local.atime, 0);
  }
}

function stamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

/**
 * `aws s3 sync s3://bucket/prefix ROOT/ --delete --exact-timestamps` with the excludes: returns the
 * CLI's exit code (1 a transfer failed, 2 a local file was skipped with a warning) and its messages.
 */
async function transfer(
  s3: S3Client,
  signal: AbortSignal | undefined,
  bucket: string,
  root: string,
  wanted: Map<string, Listed>,
  excluded: (rel: string) => boolean,
  done: { downloads: number; bytes: number; deletes: number },
  capacity?: number,
  listingWarnings: string[] = [],
): Promise<{ rc: number; log: string }> {
  const errors: string[] = [];
  const walked = localFiles(root);
  const local = walked.files;
  const warnings = [...listingWarnings, ...walked.warnings];
  // A full file system (the aws shim's model): a write that would take the files past the file
  // system's size fails with ENOSPC; what fitted stays.
  let used = usedBytes(root);
  const downloads: [string, Listed][] = [];
  for (const [rel, item] of wanted) {
    const have = local.get(rel);
    if (have && have.size === item.size && have.mtimeNs === BigInt(item.lastModifiedMs) * 1_000_000n) {
      continue;
    }
    downloads.push([rel, item]);
  }
  let next = 0;
  // The CLI's default max_concurrent_requests is 10.
  const worker = async () => {
    while (next < downloads.length && !signal?.aborted) {
      const entry = downloads[next++];
      if (!entry) continue;
      const [rel, item] = entry;
      const dest = `${root}/${rel}`;
      try {
        const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: item.key }), {
          abortSignal: signal,
        });
        const body = object.Body ? await object.Body.transformToByteArray() : new Uint8Array();
        const replaced = local.get(rel)?.size ?? 0;
        if (capacity !== undefined && used - replaced + body.length > capacity) {
          errors.push(
            `download failed: s3://${bucket}/${item.key} to ${dest} [Errno 28] No space left on device`,
          );
          continue;
        }
        used += body.length - replaced;
        mkdirSync(dirname(dest), { recursive: true });
        // As s3transfer: a temporary file beside the destination, renamed over it.
        const tmp = `${dest}.${Math.random().toString(16).slice(2, 10)}`;
        await writeFile(tmp, body);
        renameSync(tmp, dest);
        const seconds = Math.floor(item.lastModifiedMs / 1000);
        utimesSync(dest, seconds, seconds);
        done.downloads++;
        done.bytes += body.length;
      } catch (error) {
        if (signal?.aborted) throw error;
        errors.push(`download failed: s3://${bucket}/${item.key} to ${dest} ${errorText(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  for (const [rel, have] of local) {
    if (wanted.has(rel) || excluded(rel)) continue;
    try {
      rmSync(have.path, { force: true });
      done.deletes++;
    } catch (error) {
      errors.push(`delete failed: ${have.path} ${errorText(error)}`);
    }
  }
  const rc = errors.length > 0 ? 1 : warnings.length > 0 ? 2 : 0;
  return { rc, log: [...warnings, ...errors].join('\n') };
}
