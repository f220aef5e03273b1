/**
 * The SSM documents Volsd runs on instances, one per shell script in `scripts/`: their names,
 * parameters (with the environment variable each becomes and an `allowedPattern` that keeps every
 * value free of shell metacharacters), the SSM Command document built around a script, and the
 * machine-readable lines the scripts print.
 *
 * One source for three readers: the CDK construct (`documentContent` -> `AWS::SSM::Document`), the
 * Lambdas that send commands and read their output (`commandParameters`, `parseResults`), and the
 * sandbox's agent (`toEnv`, `readScript`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidInput } from './errors.js';

/**
 * Default of Volsd-Sync's MaxObjectBytes: the pool's default push object limit (1 GiB, the fan-out's
 * PUSH_MAX_OBJECT_BYTES default), so a sync sent without it still skips what a push would refuse.
 */
export const defaultMaxObjectBytes = 1024 ** 3;

/** The names of Volsd's SSM documents. */
export const DocumentName = {
  Mount: 'Volsd-Mount',
  Unmount: 'Volsd-Unmount',
  Format: 'Volsd-Format',
  Sync: 'Volsd-Sync',
  Freeze: 'Volsd-Freeze',
} as const;

export type DocumentName = (typeof DocumentName)[keyof typeof DocumentName];

/** One parameter of a Volsd document. */
export interface DocumentParameter {
  /** The SSM parameter name, `{{ Name }}` in the document. */
  readonly name: string;
  /** The environment variable the script reads it from. */
  readonly env: string;
  readonly type: 'String';
  /** The value when the caller gives none. Absent: the parameter is required. */
  readonly default?: string;
  /**
   * An anchored regular expression (valid in JavaScript and in SSM) that every value must match.
   * None admits a quote, `$`, a backtick, a backslash, whitespace or a newline, so the value cannot
   * leave the single quotes it is exported in.
   */
  readonly allowedPattern: string;
  /** SSM's `maxChars`, where the pattern alone does not bound the length. */
  readonly maxChars?: number;
  /** SSM's `allowedValues`, for enumerations. */
  readonly allowedValues?: readonly string[];
  readonly description: string;
}

/** A Volsd SSM Command document. */
export interface VolsdDocument {
  readonly name: DocumentName;
  readonly description: string;
  /** The script, relative to the repository root. */
  readonly script: string;
  /** The step's `timeoutSeconds` (the SSM agent kills the script after it). */
  readonly timeoutSeconds: number;
  readonly parameters: readonly DocumentParameter[];
}

/** The library every script includes (see `bundleScript`). */
export const scriptLibrary = 'scripts/volsd-lib.sh';

const volumeIdPattern = '^vol-([0-9a-f]{8}|[0-9a-f]{17})$';
const optional = (pattern: string) => `^$|${pattern}`;
/** 0-300 seconds. */
const secondsPattern = '^([0-9]{1,2}|[12][0-9]{2}|300)$';

const volumeId: DocumentParameter = {
  name: 'VolumeId',
  env: 'VOLSD_VOLUME_ID',
  type: 'String',
  allowedPattern: volumeIdPattern,
  description: 'The EBS volume (vol-...). Its device is found by its NVMe serial.',
};

const mountPath: DocumentParameter = {
  name: 'MountPath',
  env: 'VOLSD_MOUNT_PATH',
  type: 'String',
  // Each segment starts with a letter, digit or underscore: no `.` or `..` segment, no hidden name.
  allowedPattern: '^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$',
  maxChars: 200,
  description: 'Absolute path to mount the volume at (not a system directory such as /, /etc, /var).',
};

const mountRoots: DocumentParameter = {
  name: 'MountRoots',
  env: 'VOLSD_MOUNT_ROOTS',
  type: 'String',
  default: '',
  allowedPattern: '^((/[A-Za-z0-9_][A-Za-z0-9._-]*)+( (/[A-Za-z0-9_][A-Za-z0-9._-]*)+)*)?$',
  maxChars: 1000,
  description:
    'Space-separated roots the mount path must lie under once its symlinks are resolved on the host (empty: any path outside the system trees).',
};

const mountOptions: DocumentParameter = {
  name: 'MountOptions',
  env: 'VOLSD_MOUNT_OPTIONS',
  type: 'String',
  default: 'noatime',
  allowedPattern: '^[A-Za-z0-9_=,.:-]*$',
  maxChars: 200,
  description: 'Comma-separated mount options (XFS also gets nouuid: pool volumes share their UUID).',
};

const deviceWaitSeconds: DocumentParameter = {
  name: 'DeviceWaitSeconds',
  env: 'VOLSD_DEVICE_WAIT_SECONDS',
  type: 'String',
  default: '60',
  allowedPattern: secondsPattern,
  description: 'Seconds to wait for the device to appear after the attach (0-300).',
};

/** The documents, by name. */
export const documents: Readonly<Record<DocumentName, VolsdDocument>> = {
  [DocumentName.Mount]: {
    name: DocumentName.Mount,
    description:
      'Volsd: mount an attached EBS volume, found and verified by its NVMe serial, and record it for Volsd-Sync.',
    script: 'scripts/volsd-mount.sh',
    timeoutSeconds: 600,
    parameters: [volumeId, mountPath, mountOptions, deviceWaitSeconds, mountRoots],
  },
  [DocumentName.Unmount]: {
    name: DocumentName.Unmount,
    description:
      'Volsd: unmount an EBS volume wherever it is mounted on the instance, so it can be detached.',
    script: 'scripts/volsd-unmount.sh',
    timeoutSeconds: 600,
    parameters: [
      volumeId,
      {
        name: 'BusyWaitSeconds',
        env: 'VOLSD_BUSY_WAIT_SECONDS',
        type: 'String',
        default: '5',
        allowedPattern: secondsPattern,
        description:
          'Seconds to retry a busy filesystem before failing (0-300); it is never force-unmounted.',
      },
    ],
  },
  [DocumentName.Format]: {
    name: DocumentName.Format,
    description:
      'Volsd: give an empty EBS volume an XFS filesystem (never over an existing one), then mount it.',
    script: 'scripts/volsd-format.sh',
    timeoutSeconds: 900,
    parameters: [volumeId, mountPath, mountOptions, deviceWaitSeconds, mountRoots],
  },
  [DocumentName.Sync]: {
    name: DocumentName.Sync,
    description:
      "Volsd: bring every Volsd volume mounted on the instance to the push bucket's content tree, refusing keys that escape it.",
    script: 'scripts/volsd-sync.sh',
    timeoutSeconds: 3600,
    parameters: [
      {
        name: 'Bucket',
        env: 'VOLSD_BUCKET',
        type: 'String',
        allowedPattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
        description: 'The push bucket.',
      },
      {
        name: 'Prefix',
        env: 'VOLSD_PREFIX',
        type: 'String',
        default: 'live/',
        allowedPattern: '^([A-Za-z0-9_][A-Za-z0-9._=+-]*/){0,16}$',
        maxChars: 512,
        description: 'The content tree prefix, ending in / (empty: the whole bucket).',
      },
      {
        name: 'Generation',
        env: 'VOLSD_GENERATION',
        type: 'String',
        allowedPattern: '^[0-9]{1,15}$',
        description: 'The content generation this sync makes current (written to <mount>/.volsd/generation).',
      },
      {
        ...volumeId,
        default: '',
        allowedPattern: optional(volumeIdPattern),
        description: 'Sync only this volume (it must be mounted on the instance). Empty: every Volsd volume.',
      },
      {
        name: 'S3Endpoint',
        env: 'VOLSD_S3_ENDPOINT',
        type: 'String',
        default: '',
        allowedPattern: optional('^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$'),
        maxChars: 256,
        description: 'An S3-compatible or VPC endpoint URL. Empty: the AWS CLI default.',
      },
      {
        name: 'Region',
        env: 'VOLSD_REGION',
        type: 'String',
        default: '',
        allowedPattern: optional('^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$'),
        description: "The bucket's region. Empty: the instance's.",
      },
      {
        name: 'OnlyBehind',
        env: 'VOLSD_ONLY_BEHIND',
        type: 'String',
        default: 'false',
        allowedPattern: '^(true|false)$',
        allowedValues: ['true', 'false'],
        description:
          'true: skip a volume whose generation marker is already at Generation or newer (replenish: only the new volumes move).',
      },
      {
        name: 'Concurrency',
        env: 'VOLSD_SYNC_CONCURRENCY',
        type: 'String',
        default: '4',
        allowedPattern: '^[1-9][0-9]?$',
        description: 'Volumes synced at once (a sync worker holds many).',
      },
      {
        name: 'MaxObjectBytes',
        env: 'VOLSD_MAX_OBJECT_BYTES',
        type: 'String',
        default: String(defaultMaxObjectBytes),
        allowedPattern: '^[1-9][0-9]{0,15}$',
        description:
          "Largest object synced, in bytes (the pool's push limit): a larger one is refused (too-large) and not copied.",
      },
      {
        name: 'Untrusted',
        env: 'VOLSD_UNTRUSTED',
        type: 'String',
        default: '',
        allowedPattern: '^(vol-([0-9a-f]{8}|[0-9a-f]{17})( vol-([0-9a-f]{8}|[0-9a-f]{17}))*)?$',
        maxChars: 1024,
        description:
          'Volumes (space-separated ids) whose content is not trusted (recycled, adopted): emptied and rebuilt from the bucket in full.',
      },
    ],
  },
  [DocumentName.Freeze]: {
    name: DocumentName.Freeze,
    description:
      'Volsd: freeze or thaw the filesystem of a mounted volume around a snapshot; a watchdog thaws it after a bound.',
    script: 'scripts/volsd-freeze.sh',
    timeoutSeconds: 120,
    parameters: [
      volumeId,
      {
        name: 'Mode',
        env: 'VOLSD_FREEZE',
        type: 'String',
        allowedPattern: '^(freeze|thaw)$',
        allowedValues: ['freeze', 'thaw'],
        description: 'freeze or thaw.',
      },
      {
        name: 'MaxFreezeSeconds',
        env: 'VOLSD_FREEZE_SECONDS',
        type: 'String',
        default: '30',
        allowedPattern: '^([1-9]|[1-9][0-9]|[1-8][0-9]{2}|900)$',
        description: 'The longest a freeze may last (1-900): a watchdog thaws the filesystem then.',
      },
    ],
  },
};

/** Every document, in a stable order. */
export const allDocuments: readonly VolsdDocument[] = Object.values(documents);

/** The document named `name`; throws InvalidInput for a name that is not a Volsd document. */
export function getDocument(name: string): VolsdDocument {
  const doc = (documents as Readonly<Record<string, VolsdDocument | undefined>>)[name];
  if (!doc) throw new InvalidInput(`unknown Volsd document ${JSON.stringify(name)}`);
  return doc;
}

/** Exit codes of the scripts (the table in scripts/volsd-lib.sh). */
export const ExitCode = {
  Ok: 0,
  BadParameters: 2,
  DeviceNotFound: 3,
  DeviceMismatch: 4,
  MountConflict: 5,
  MountFailed: 6,
  UnmountFailed: 7,
  SyncFailed: 8,
  PathEscape: 9,
  FreezeFailed: 10,
  LockTimeout: 11,
  ToolMissing: 12,
  FormatFailed: 13,
  NotMounted: 14,
  MountRefused: 15,
  /** The host misses an instance requirement (bash 4.4, lsblk SERIAL, the AWS CLI v2); see README. */
  HostUnsupported: 16,
  /** Volsd-Sync: the content does not fit the volume's file system (checked before any transfer). */
  NoSpace: 17,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The name of a script exit code (`MountConflict`), or undefined for a code the scripts do not define. */
export function exitCodeName(code: number): keyof typeof ExitCode | undefined {
  const entry = Object.entries(ExitCode).find(([, value]) => value === code);
  return entry?.[0] as keyof typeof ExitCode | undefined;
}

const includeLine = /^source .*volsd-lib\.sh.*# volsd:include$/m;

/**
 * Inlines the script library into a script: the line that sources it (`... # volsd:include`) is
 * replaced by the library's text. A script without that line is returned unchanged.
 */
export function bundleScript(scriptText: string, libraryText: string): string {
  const library = libraryText.replace(/^#!.*\n/, '').trimEnd();
  return scriptText.replace(
    includeLine,
    () => `# --- ${scriptLibrary} (inlined) ---\n${library}\n# --- end of ${scriptLibrary} ---`,
  );
}

/**
 * The document's script with the library inlined, read from the repository (for the CDK app and the
 * sandbox; a bundled Lambda has no scripts). `repoRoot` defaults to the checkout this module is in.
 */
export function readScript(doc: VolsdDocument, repoRoot?: string): string {
  // Resolved here, not at module load: a bundled Lambda imports this module but has no checkout.
  const root = repoRoot ?? fileURLToPath(new URL('../../', import.meta.url));
  const script = readFileSync(join(root, doc.script), 'utf8');
  const library = readFileSync(join(root, scriptLibrary), 'utf8');
  return bundleScript(script, library);
}

/** An SSM Command document (schema 2.2), ready for `AWS::SSM::Document` `Content`. */
export interface SsmCommandDocument {
  schemaVersion: '2.2';
  description: string;
  parameters: Record<
    string,
    {
      type: 'String';
      description: string;
      default?: string;
      allowedPattern: string;
      allowedValues?: string[];
      maxChars?: number;
    }
  >;
  mainSteps: {
    action: 'aws:runShellScript';
    name: string;
    precondition: { StringEquals: ['platformType', 'Linux'] };
    inputs: { timeoutSeconds: string; runCommand: string[] };
  }[];
}

/** The heredoc delimiter that carries the script through the document's `sh` wrapper. */
export const scriptDelimiter = 'VOLSD_SCRIPT_EOF';

/**
 * Builds the SSM Command document for `doc` around `scriptText` (the bundled script, `readScript`).
 * The SSM agent runs `runCommand` with /bin/sh: it exports each parameter, single-quoted, into the
 * script's environment variable, then hands the script to bash unchanged (a quoted heredoc, so sh
 * expands nothing in it). The values cannot break out of their quotes: see `allowedPattern`.
 */
export function documentContent(doc: VolsdDocument, scriptText: string): SsmCommandDocument {
  if (scriptText.includes('{{')) {
    throw new InvalidInput(`${doc.name}: the script contains "{{", which SSM would read as a parameter`);
  }
  if (scriptText.split('\n').includes(scriptDelimiter)) {
    throw new InvalidInput(`${doc.name}: the script contains the line ${scriptDelimiter}`);
  }
  const parameters: SsmCommandDocument['parameters'] = {};
  for (const p of doc.parameters) {
    parameters[p.name] = {
      type: p.type,
      description: p.description,
      ...(p.default !== undefined ? { default: p.default } : {}),
      allowedPattern: p.allowedPattern,
      ...(p.allowedValues ? { allowedValues: [...p.allowedValues] } : {}),
      ...(p.maxChars !== undefined ? { maxChars: p.maxChars } : {}),
    };
  }
  const programName = doc.script.replace(/^.*\//, '').replace(/\.sh$/, '');
  const runCommand = [
    ...doc.parameters.map((p) => `export ${p.env}='{{ ${p.name} }}'`),
    `VOLSD_SCRIPT=$(cat <<'${scriptDelimiter}'`,
    ...scriptText.replace(/\n$/, '').split('\n'),
    scriptDelimiter,
    ')',
    `exec bash -c "$VOLSD_SCRIPT" ${programName}`,
  ];
  return {
    schemaVersion: '2.2',
    description: doc.description,
    parameters,
    mainSteps: [
      {
        action: 'aws:runShellScript',
        name: programName.replace(/-/g, ''),
        precondition: { StringEquals: ['platformType', 'Linux'] },
        inputs: { timeoutSeconds: String(doc.timeoutSeconds), runCommand },
      },
    ],
  };
}

/** A parameter value as SendCommand carries it (a list) or as a caller writes it. */
type ParameterValue = readonly string[] | string | number | undefined;

function parameterValue(doc: VolsdDocument, p: DocumentParameter, raw: ParameterValue): string {
  let value: string | undefined;
  if (Array.isArray(raw)) {
    if (raw.length > 1) throw new InvalidInput(`${doc.name}: ${p.name} takes one value, got ${raw.length}`);
    value = raw[0];
  } else if (raw !== undefined) {
    value = String(raw);
  }
  value ??= p.default;
  if (value === undefined) throw new InvalidInput(`${doc.name}: ${p.name} is required`);
  if (!new RegExp(p.allowedPattern).test(value)) {
    throw new InvalidInput(
      `${doc.name}: ${p.name} does not match ${p.allowedPattern}: ${JSON.stringify(value)}`,
    );
  }
  if (p.maxChars !== undefined && value.length > p.maxChars) {
    throw new InvalidInput(`${doc.name}: ${p.name} is longer than ${p.maxChars} characters`);
  }
  return value;
}

function checkNames(doc: VolsdDocument, given: Readonly<Record<string, unknown>>): void {
  const known = new Set(doc.parameters.map((p) => p.name));
  const unknown = Object.keys(given).filter((name) => !known.has(name));
  if (unknown.length > 0) throw new InvalidInput(`${doc.name}: unknown parameter(s) ${unknown.join(', ')}`);
}

/**
 * Validates `values` as SSM would (unknown names, missing required ones, allowedPattern, maxChars)
 * and returns every parameter's value with the defaults filled in, by parameter name. Throws
 * InvalidInput, as SendCommand answers InvalidParameters.
 */
export function resolveParameters(
  doc: VolsdDocument,
  values: Readonly<Record<string, ParameterValue>>,
): Record<string, string> {
  checkNames(doc, values);
  return Object.fromEntries(doc.parameters.map((p) => [p.name, parameterValue(doc, p, values[p.name])]));
}

/**
 * The SendCommand `Parameters` for `doc`, validated: `{ VolumeId: ['vol-...'] }`. Parameters left
 * out take their document default on the instance.
 */
export function commandParameters(
  doc: VolsdDocument,
  values: Readonly<Record<string, string | number | undefined>>,
): Record<string, string[]> {
  checkNames(doc, values);
  const out: Record<string, string[]> = {};
  for (const p of doc.parameters) {
    const raw = values[p.name];
    if (raw === undefined && p.default !== undefined) continue;
    out[p.name] = [parameterValue(doc, p, raw)];
  }
  return out;
}

/**
 * The environment the script sees for SendCommand `parameters`: `{ VOLSD_VOLUME_ID: 'vol-...' }`,
 * defaults filled in, validated like `resolveParameters`.
 */
export function toEnv(
  doc: VolsdDocument,
  parameters: Readonly<Record<string, ParameterValue>>,
): Record<string, string> {
  const resolved = resolveParameters(doc, parameters);
  return Object.fromEntries(doc.parameters.map((p) => [p.env, resolved[p.name] ?? '']));
}

/** Fields every VOLSD_RESULT line has. */
interface ResultBase {
  volumeId?: string;
  status: string;
}

/** A script's failure: the `code` names the failure (kebab-case of an `ExitCode` key). */
export interface FailedResult extends ResultBase {
  op: 'mount' | 'unmount' | 'format' | 'sync' | 'freeze';
  status: 'failed';
  code: string;
  exitCode: number;
  error: string;
  device?: string;
  mountPath?: string;
  generation?: number;
}

export interface MountResult extends ResultBase {
  op: 'mount';
  volumeId: string;
  device: string;
  mountPath: string;
  /** The generation recorded on the volume (0 if none). */
  generation: number;
  status: 'mounted' | 'already-mounted';
}

export interface FormatResult extends Omit<MountResult, 'op'> {
  op: 'format';
  /** False when the volume already had a filesystem. */
  formatted: boolean;
}

export interface UnmountResult extends ResultBase {
  op: 'unmount';
  volumeId: string;
  device: string | null;
  mountPaths: string[];
  status: 'unmounted' | 'not-mounted';
}

export interface FreezeResult extends ResultBase {
  op: 'freeze';
  volumeId: string;
  mountPath: string;
  mode: 'freeze' | 'thaw';
  frozen: boolean;
  /** False when the filesystem already was in the requested state. */
  changed: boolean;
  autoThawSeconds?: number;
}

export interface SyncVolumeResult extends ResultBase {
  op: 'sync';
  volumeId: string;
  mountPath: string;
  status: 'ok';
  generation: number;
  previousGeneration: number;
  filesChanged: number;
  bytesChanged: number;
  rejectedKeys: number;
}

export interface SyncSkippedResult extends ResultBase {
  op: 'sync';
  volumeId: string;
  status: 'skipped';
  reason: string;
}

export interface SyncSummary {
  op: 'sync-summary';
  status: 'ok' | 'failed';
  generation: number;
  volumes: number;
  ok: number;
  failed: number;
  skipped: number;
  keys: number;
  directoryMarkers: number;
  rejectedKeys: number;
  listingFailed: boolean;
}

/** Any VOLSD_RESULT line. */
export type ScriptResult =
  | MountResult
  | FormatResult
  | UnmountResult
  | FreezeResult
  | SyncVolumeResult
  | SyncSkippedResult
  | SyncSummary
  | FailedResult;

/** A key Volsd-Sync refused (the report holds at most 20; the summary counts them all). */
export interface RejectedKey {
  key: string;
  reason: string;
}

function taggedLines(stdout: string, tag: string): unknown[] {
  const out: unknown[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith(`${tag} `)) continue;
    try {
      out.push(JSON.parse(line.slice(tag.length + 1)));
    } catch {
      // A line cut by SSM's 24,000-character limit: the rest still counts.
    }
  }
  return out;
}

/** The VOLSD_RESULT objects in a script's stdout, in order (the last is a script's verdict). */
export function parseResults(stdout: string): ScriptResult[] {
  return taggedLines(stdout, 'VOLSD_RESULT') as ScriptResult[];
}

/** The VOLSD_REJECTED keys in Volsd-Sync's stdout. */
export function parseRejectedKeys(stdout: string): RejectedKey[] {
  return taggedLines(stdout, 'VOLSD_REJECTED') as RejectedKey[];
}
