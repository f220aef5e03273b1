/**
 * Push keys: which S3 object keys of the push bucket are content, and which must be refused because
 * they would escape the content tree on a volume. The rules are those of Volsd-Sync's own path guard
 * (`scripts/volsd-sync.sh`), with the same reason names, so a key the fan-out reports as rejected is
 * one the script refuses on every host. The fan-out validates at the edge (report, no push for a batch
 * of bad keys only); the script is the guard that holds even for keys no event announced.
 */

/** Why a key is refused (the names Volsd-Sync prints in its VOLSD_REJECTED lines). */
export type KeyRejection =
  | 'malformed-encoding'
  | 'control-character'
  | 'backslash'
  | 'absolute'
  | 'too-long'
  | 'parent-segment'
  | 'dot-segment'
  | 'empty-segment'
  | 'reserved';

/** The verdict on one key. `key` is always the decoded key. */
export type KeyVerdict =
  /** Content: `path` is where it lands relative to the volume's root. */
  | { kind: 'valid'; key: string; path: string }
  /** Would escape the tree or break a host: reported, never synced. */
  | { kind: 'rejected'; key: string; reason: KeyRejection }
  /** Not content: outside the prefix, or a directory marker (a key ending in `/`). */
  | { kind: 'ignored'; key: string };

/** Options of {@link validateKey}. */
export interface ValidateKeyOptions {
  /** The content tree's prefix. @default 'live/' */
  prefix?: string;
  /**
   * True when `key` comes from an S3 event notification, where keys are form-URL-encoded (`+` is a
   * space): it is decoded first. @default true
   */
  encoded?: boolean;
}

/** Longest key S3 stores, in UTF-8 bytes. */
export const maxKeyBytes = 1024;
/** Longest file name (one path segment) Linux file systems take, in UTF-8 bytes. */
export const maxSegmentBytes = 255;

// C0 controls and DEL, the bytes Volsd-Sync refuses (a newline in a name breaks every line-based tool).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const controlCharacter = /[\u0000-\u001f\u007f]/;

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

/**
 * Decodes a key as S3 event notifications carry it: form URL encoding, `+` for a space and `%XX` for
 * other bytes. Returns undefined when the encoding is malformed (a stray `%`, bytes that are not UTF-8).
 */
export function decodeEventKey(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * Encodes a key as S3 puts it into an event notification: form URL encoding (space as `+`), with
 * `/` kept. The inverse of {@link decodeEventKey}.
 */
export function encodeEventKey(key: string): string {
  return encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/gi, '/');
}

/**
 * Classifies one key of the push bucket: content under the prefix (`valid`), a key that would escape
 * the tree (`rejected`, with the reason), or not content at all (`ignored`: outside the prefix, or a
 * directory marker). The checks follow Volsd-Sync's order, so both name the same reason.
 */
export function validateKey(rawKey: string, options: ValidateKeyOptions = {}): KeyVerdict {
  const prefix = options.prefix ?? 'live/';
  const decoded = options.encoded === false ? rawKey : decodeEventKey(rawKey);
  if (decoded === undefined) {
    // Undecodable: it cannot be placed against the prefix, so it is reported rather than ignored.
    return { kind: 'rejected', key: rawKey, reason: 'malformed-encoding' };
  }
  const key = decoded;
  if (!key.startsWith(prefix)) return { kind: 'ignored', key };
  const rel = key.slice(prefix.length);
  const marker = rel === '' || rel.endsWith('/');
  const body = marker ? rel.slice(0, -1) : rel;
  const reject = (reason: KeyRejection): KeyVerdict => ({ kind: 'rejected', key, reason });

  if (controlCharacter.test(key)) return reject('control-character');
  if (key.includes('\\')) return reject('backslash');
  const segments = body === '' ? [] : body.split('/');
  let reason: KeyRejection | undefined;
  if (body.startsWith('/')) reason = 'absolute';
  else if (bytes(key) > maxKeyBytes) reason = 'too-long';
  // `..` outranks `absolute`, as in the script: it is the more dangerous reading of `//../x`.
  if (segments.includes('..') && (reason === undefined || reason === 'absolute')) {
    return reject('parent-segment');
  }
  if (reason) return reject(reason);
  for (const segment of segments) {
    if (segment === '.') return reject('dot-segment');
    if (segment === '') return reject('empty-segment');
    if (bytes(segment) > maxSegmentBytes) return reject('too-long');
  }
  if (segments[0]?.startsWith('.volsd')) return reject('reserved');
  if (marker) return { kind: 'ignored', key };
  return { kind: 'valid', key, path: rel };
}
