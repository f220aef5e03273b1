import { parseArgs } from 'node:util';
import { allVolumeStates, type VolumeState } from '../lambdas/shared/model.js';
import { systemTreeOf } from '../lambdas/shared/mount-path.js';
import { azSchema, poolNameSchema } from '../lambdas/shared/validate.js';
import { workflowInputSchema } from '../lambdas/shared/workflow-input.js';
import { exitCodeHelp, UsageError } from './errors.js';

/** How results are printed. */
export type OutputFormat = 'table' | 'json';

/** One command-line option, as parseArgs takes it plus what `--help` shows. */
interface OptionDef {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder of the value in help (`PATH`). */
  value?: string;
  description: string;
}

/** One command: who runs it, what it does, its own options. */
interface CommandDef {
  audience: 'host' | 'admin';
  summary: string;
  description: string;
  options: Record<string, OptionDef>;
}

/**
 * Default of --timeout: the release workflow's own TimeoutSeconds. An acquire may run longer (its
 * TimeoutSeconds covers a pool refilled from nothing); the client then stops waiting and names it.
 */
export const defaultTimeoutSeconds = 1800;

/** Default of --cli-read-timeout and --cli-connect-timeout, the AWS CLI's. */
export const defaultAwsTimeoutSeconds = 60;

const waitOptions: Record<string, OptionDef> = {
  'no-wait': { type: 'boolean', description: 'start the workflow, print its execution ARN and exit' },
  timeout: {
    type: 'string',
    value: 'S',
    description: `stop waiting after S seconds (default ${defaultTimeoutSeconds}); the workflow goes on`,
  },
};

/** The options every command takes. */
export const globalOptions: Record<string, OptionDef> = {
  pool: {
    type: 'string',
    value: 'NAME',
    description: 'pool name (default: $VOLSD_POOL; on a host also its volsd:pool tag)',
  },
  region: { type: 'string', value: 'REGION', description: "AWS Region (default: the SDK's, or the host's)" },
  profile: { type: 'string', value: 'NAME', description: 'AWS profile for credentials and Region' },
  output: { type: 'string', value: 'table|json', description: 'output format (default: table)' },
  'cli-read-timeout': {
    type: 'string',
    value: 'S',
    description: `seconds an AWS answer may take, per try (default ${defaultAwsTimeoutSeconds}, as the AWS CLI)`,
  },
  'cli-connect-timeout': {
    type: 'string',
    value: 'S',
    description: `seconds to connect to an AWS endpoint, per try (default ${defaultAwsTimeoutSeconds})`,
  },
  quiet: { type: 'boolean', short: 'q', description: 'no progress display (results and errors still print)' },
  help: { type: 'boolean', short: 'h', description: 'show help (for a command: volsd-client CMD --help)' },
  version: { type: 'boolean', description: 'print the version' },
};

/** The commands, in help order. */
export const commands = {
  acquire: {
    audience: 'host',
    summary: 'attach and mount a pool volume on this EC2 host',
    description:
      'Starts the acquire workflow for this instance (found through IMDSv2), shows its progress, then\nprints the volume, its device and the mount point. A host that already holds a volume is refused.',
    options: {
      mount: { type: 'string', value: 'PATH', description: "mount here instead of the pool's mount path" },
      ...waitOptions,
    },
  },
  release: {
    audience: 'host',
    summary: "unmount and give back this host's volume",
    description:
      "Starts the release workflow for this instance: unmount, detach, then the pool's release policy\n(delete or recycle). A host that holds nothing is told so.",
    options: { ...waitOptions },
  },
  status: {
    audience: 'host',
    summary: "show this host's volume",
    description:
      'Shows the volume this instance holds: state, device, mount point, generation, whether current.',
    options: {},
  },
  volumes: {
    audience: 'admin',
    summary: "list the pool's volumes",
    description: 'Lists the volumes of the pool: volume, AZ, state, holder, generation and age.',
    options: {
      az: { type: 'string', value: 'AZ', description: 'only volumes in this Availability Zone' },
      state: {
        type: 'string',
        value: 'STATE',
        description: `only volumes in this state (${allVolumeStates.join(', ').toLowerCase()})`,
      },
    },
  },
  pool: {
    audience: 'admin',
    summary: 'show the pool per AZ',
    description:
      'Per AZ: target, idle, syncing, in use and other volumes; the current content generation and the\nlatest snapshot.',
    options: {},
  },
  pushes: {
    audience: 'admin',
    summary: 'list recent pushes and their per-instance outcome',
    description: 'Lists the most recent pushes (newest first) and how each instance fared.',
    options: {},
  },
  replenish: {
    audience: 'admin',
    summary: 'start the replenish workflow in every AZ now',
    description: "Starts the replenish workflow for each of the pool's AZs and prints the executions.",
    options: {},
  },
  snapshot: {
    audience: 'admin',
    summary: 'start the snapshot workflow now',
    description: "Starts the pool's snapshot workflow, if the pool deploys one.",
    options: {},
  },
  sync: {
    audience: 'admin',
    summary: 'sync every volume of the pool now',
    description: "Starts the pool's sync-all workflow (every attached and idle volume), if deployed.",
    options: {},
  },
} satisfies Record<string, CommandDef>;

/** A command's name. */
export type CommandName = keyof typeof commands;

/** Options that apply to every command, validated. */
export interface GlobalArgs {
  pool?: string;
  region?: string;
  profile?: string;
  /** Per try of an AWS call: seconds for the answer and for the connection. */
  readTimeoutSeconds: number;
  connectTimeoutSeconds: number;
  output: OutputFormat;
  quiet: boolean;
}

/** A command's own options, validated. */
export interface CommandArgs {
  mount?: string;
  noWait: boolean;
  timeoutSeconds: number;
  az?: string;
  state?: VolumeState;
}

/** What the command line asks for. */
export type Invocation =
  | { kind: 'help'; command?: CommandName }
  | { kind: 'version' }
  | { kind: 'run'; command: CommandName; globals: GlobalArgs; args: CommandArgs };

const isCommand = (name: string): name is CommandName => Object.hasOwn(commands, name);

type ParseArgsOptions = Record<string, { type: 'string' | 'boolean'; short?: string }>;

function toParseArgs(defs: Record<string, OptionDef>): ParseArgsOptions {
  const out: ParseArgsOptions = {};
  for (const [name, def] of Object.entries(defs)) {
    out[name] = { type: def.type, ...(def.short ? { short: def.short } : {}) };
  }
  return out;
}

const allCommandOptions: Record<string, OptionDef> = Object.assign(
  {},
  ...Object.values(commands).map((c) => c.options),
);

const helpHint = (command?: CommandName) => `volsd-client ${command ? `${command} ` : ''}--help`;

/**
 * Parses the command line (global options may come before or after the command). Unknown commands
 * and options, missing or bad values are UsageErrors carrying a one-line hint.
 */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const command = findCommand(argv);
  if (command === 'help') {
    const rest = argv.filter((a) => !a.startsWith('-') && a !== 'help');
    const topic = rest[0];
    if (topic !== undefined && !isCommand(topic)) {
      throw new UsageError(`unknown command '${topic}'`, helpHint());
    }
    return { kind: 'help', ...(topic ? { command: topic } : {}) };
  }
  if (command !== undefined && !isCommand(command)) {
    throw new UsageError(`unknown command '${command}'`, helpHint());
  }
  const defs = command ? { ...globalOptions, ...commands[command].options } : globalOptions;
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: toParseArgs(defs),
      strict: true,
      allowPositionals: true,
    }) as typeof parsed;
  } catch (err) {
    throw usageFromParseError(err, command);
  }
  const { values, positionals } = parsed;
  const extra = positionals.slice(1);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`, helpHint(command));
  if (values.help) return { kind: 'help', ...(command ? { command } : {}) };
  if (values.version) return { kind: 'version' };
  if (!command) throw new UsageError('no command given', helpHint());
  return {
    kind: 'run',
    command,
    globals: parseGlobals(values, command),
    args: parseCommandArgs(values, command),
  };
}

/** The first positional argument, skipping options and their values; an unknown option before it is an error. */
function findCommand(argv: readonly string[]): string | undefined {
  const known = { ...globalOptions, ...allCommandOptions };
  const { tokens } = parseArgs({
    args: [...argv],
    options: toParseArgs(known),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens ?? []) {
    if (token.kind === 'option-terminator') return undefined;
    if (token.kind === 'positional') return token.value;
    if (token.kind === 'option' && !Object.hasOwn(known, token.name)) {
      throw new UsageError(`unknown option '${token.rawName}'`, helpHint());
    }
  }
  return undefined;
}

function usageFromParseError(err: unknown, command: CommandName | undefined): UsageError {
  const e = err as { code?: string; message?: string };
  // parseArgs quotes the option as given, or as '-q, --quiet' / '--mount <value>': keep the flag itself.
  const quoted = /'(?:-\w, )?(-{1,2}[^' ,]+)/.exec(e.message ?? '')?.[1] ?? '';
  const where = command ? ` for '${command}'` : '';
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown option '${quoted}'${where}`, helpHint(command));
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return new UsageError(
        /does not take an argument/.test(e.message ?? '')
          ? `option '${quoted}' takes no value`
          : `option '${quoted}' needs a value`,
        helpHint(command),
      );
    default:
      return new UsageError((e.message ?? String(err)).split('\n')[0] ?? 'bad arguments', helpHint(command));
  }
}

function str(values: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function parseGlobals(
  values: Record<string, string | boolean | undefined>,
  command: CommandName,
): GlobalArgs {
  const output = str(values, 'output') ?? 'table';
  if (output !== 'table' && output !== 'json') {
    throw new UsageError(`--output must be table or json, not '${output}'`, helpHint(command));
  }
  const pool = str(values, 'pool');
  if (pool !== undefined && !poolNameSchema.safeParse(pool).success) {
    throw new UsageError(`--pool '${pool}' is not a pool name (1-32 of a-z, 0-9, -)`, helpHint(command));
  }
  const region = str(values, 'region');
  if (region !== undefined && !/^[a-z]{2}(-[a-z0-9]+)+-\d+$/.test(region)) {
    throw new UsageError(`--region '${region}' is not a Region name (e.g. us-east-1)`, helpHint(command));
  }
  const profile = str(values, 'profile');
  if (profile !== undefined && profile.trim() === '') {
    throw new UsageError('--profile needs a profile name', helpHint(command));
  }
  const seconds = (name: 'cli-read-timeout' | 'cli-connect-timeout'): number => {
    const given = str(values, name);
    if (given === undefined) return defaultAwsTimeoutSeconds;
    const value = /^\d+(\.\d+)?$/.test(given) ? Number(given) : Number.NaN;
    if (!(value > 0 && value <= 3600)) {
      throw new UsageError(
        `--${name} must be a number of seconds in (0, 3600], not '${given}'`,
        helpHint(command),
      );
    }
    return value;
  };
  return {
    output,
    quiet: values.quiet === true,
    readTimeoutSeconds: seconds('cli-read-timeout'),
    connectTimeoutSeconds: seconds('cli-connect-timeout'),
    ...(pool !== undefined ? { pool } : {}),
    ...(region !== undefined ? { region } : {}),
    ...(profile !== undefined ? { profile } : {}),
  };
}

function parseCommandArgs(
  values: Record<string, string | boolean | undefined>,
  command: CommandName,
): CommandArgs {
  const args: CommandArgs = { noWait: values['no-wait'] === true, timeoutSeconds: defaultTimeoutSeconds };
  const timeout = str(values, 'timeout');
  if (timeout !== undefined) {
    const seconds = /^\d+(\.\d+)?$/.test(timeout) ? Number(timeout) : Number.NaN;
    if (!(seconds > 0 && seconds <= 86_400)) {
      throw new UsageError(
        `--timeout must be a number of seconds in (0, 86400], not '${timeout}'`,
        helpHint(command),
      );
    }
    args.timeoutSeconds = seconds;
  }
  const mount = str(values, 'mount');
  if (mount !== undefined) {
    if (!workflowInputSchema.shape.mountPath.safeParse(mount).success) {
      const tree = systemTreeOf(mount);
      throw new UsageError(
        tree
          ? `--mount must not be in the system tree ${tree}, not '${mount}'`
          : `--mount must be an absolute, normalized path of [A-Za-z0-9._-] segments (none empty, none starting with a dot), not '${mount}'`,
        helpHint(command),
      );
    }
    args.mount = mount;
  }
  const az = str(values, 'az');
  if (az !== undefined) {
    if (!azSchema.safeParse(az).success) {
      throw new UsageError(`--az '${az}' is not an Availability Zone (e.g. us-east-1a)`, helpHint(command));
    }
    args.az = az;
  }
  const state = str(values, 'state');
  if (state !== undefined) {
    const normalized = state.toUpperCase().replace(/-/g, '_');
    const known = allVolumeStates.find((s) => s === normalized);
    if (!known) {
      throw new UsageError(
        `--state must be one of ${allVolumeStates.join(', ').toLowerCase()}, not '${state}'`,
        helpHint(command),
      );
    }
    args.state = known;
  }
  return args;
}

// ---------------------------------------------------------------- help

function optionLines(defs: Record<string, OptionDef>): string[] {
  const entries = Object.entries(defs).map(([name, def]) => {
    const flag = `${def.short ? `-${def.short}, ` : ''}--${name}${def.value ? ` ${def.value}` : ''}`;
    return [flag, def.description] as const;
  });
  const width = Math.max(0, ...entries.map(([flag]) => flag.length));
  return entries.map(([flag, description]) => `  ${flag.padEnd(width)}  ${description}`);
}

function exitCodeLines(): string[] {
  return exitCodeHelp.map(([code, text]) => `  ${String(code).padStart(2)}  ${text}`);
}

function usageLine(command: CommandName): string {
  const own = Object.entries(commands[command].options as Record<string, OptionDef>)
    .map(([name, def]) => `[--${name}${def.value ? ` ${def.value}` : ''}]`)
    .join(' ');
  return `Usage: volsd-client ${command}${own ? ` ${own}` : ''} [global options]`;
}

/** The help text: the overview, or one command's. */
export function helpText(command?: CommandName): string {
  if (command) {
    const def: CommandDef = commands[command];
    const lines = [
      `volsd-client ${command}: ${def.summary}`,
      '',
      usageLine(command),
      '',
      def.description,
      '',
    ];
    if (Object.keys(def.options).length > 0) lines.push('Options:', ...optionLines(def.options), '');
    lines.push('Global options:', ...optionLines(globalOptions), '', 'Exit codes:', ...exitCodeLines());
    return `${lines.join('\n')}\n`;
  }
  const commandLines = (audience: 'host' | 'admin') =>
    Object.entries(commands)
      .filter(([, def]) => def.audience === audience)
      .map(([name, def]) => `  ${name.padEnd(10)}  ${def.summary}`);
  return `${[
    'volsd-client: acquire and release Volsd volumes by hand, and see the pool',
    '',
    'Usage: volsd-client COMMAND [options] [global options]',
    '',
    'On an EC2 host of the pool:',
    ...commandLines('host'),
    '',
    'For operators:',
    ...commandLines('admin'),
    '',
    'Global options:',
    ...optionLines(globalOptions),
    '',
    'The pool publishes its configuration under /volsd/<pool> in SSM Parameter Store: the pool name is',
    "all the client needs. Endpoints follow the SDK's settings (AWS_ENDPOINT_URL_<SERVICE>,",
    'AWS_EC2_METADATA_SERVICE_ENDPOINT).',
    '',
    'Exit codes:',
    ...exitCodeLines(),
    '',
    "Run 'volsd-client COMMAND --help' for a command's options.",
  ].join('\n')}\n`;
}
