import { beforeAll, describe, it } from 'vitest';
import { commands, globalOptions } from '../../client/cli.js';
import packageJson from '../../package.json' with { type: 'json' };
import { buildBundle, runClient } from './harness.js';

// No AWS and no sandbox here: help and usage errors never reach either.
const env = { AWS_EC2_METADATA_DISABLED: 'true' };

beforeAll(async () => {
  await buildBundle();
}, 60_000);

// Each test is one separate client process: run a few at a time.
describe.concurrent('--help', () => {
  it.for(Object.keys(commands))(
    '%s --help lists its own options, the global options and the exit codes',
    async (name, { expect }) => {
      const run = await runClient([name, '--help'], env);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`Usage: volsd-client ${name}`);
      const own = commands[name as keyof typeof commands].options as Record<string, { value?: string }>;
      for (const [option, def] of Object.entries({ ...own, ...globalOptions })) {
        expect(run.stdout).toContain(`--${option}${def.value ? ` ${def.value}` : ''}`);
      }
      expect(run.stdout).toMatch(/Exit codes:[\s\S]* 7 {2}this host already holds a volume/);
    },
  );

  it('the overview lists every command and every exit code', async ({ expect }) => {
    const run = await runClient(['--help'], env);

    expect(run.code).toBe(0);
    for (const name of Object.keys(commands)) expect(run.stdout).toMatch(new RegExp(`^ {2}${name}\\s`, 'm'));
    for (const code of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      expect(run.stdout).toMatch(new RegExp(`^ {2,3}${code} {2}\\S`, 'm'));
  });

  it('help COMMAND prints the same text as COMMAND --help', async ({ expect }) => {
    const [viaHelp, viaFlag] = await Promise.all([
      runClient(['help', 'pushes'], env),
      runClient(['pushes', '--help'], env),
    ]);

    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
  });

  it('--version prints the package version', async ({ expect }) => {
    const run = await runClient(['--version'], env);

    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`volsd-client ${packageJson.version}\n`);
  });
});

describe.concurrent('usage errors exit 2 with one line and a hint, before any AWS call', () => {
  it.for([
    [['acquire', '--force'], "unknown option '--force' for 'acquire'", 'volsd-client acquire --help'],
    [['--bogus', 'status'], "unknown option '--bogus'", 'volsd-client --help'],
    [['status', '--no-wait'], "unknown option '--no-wait' for 'status'", 'volsd-client status --help'],
    [
      ['acquire', '--timeout', 'soon'],
      "--timeout must be a number of seconds in (0, 86400], not 'soon'",
      'volsd-client acquire --help',
    ],
    [['acquire', '--timeout', '0'], '--timeout must be a number of seconds', 'volsd-client acquire --help'],
    [
      ['acquire', '--mount', 'data'],
      "--mount must be an absolute, normalized path of [A-Za-z0-9._-] segments (none empty, none starting with a dot), not 'data'",
      'volsd-client acquire --help',
    ],
    [
      ['acquire', '--mount', '/srv/../etc'],
      '--mount must be an absolute, normalized path',
      'volsd-client acquire --help',
    ],
    [
      ['acquire', '--mount', '/srv/www/'],
      '--mount must be an absolute, normalized path',
      'volsd-client acquire --help',
    ],
    [
      ['acquire', '--mount', '/etc/cron.d'],
      "--mount must not be in the system tree /etc, not '/etc/cron.d'",
      'volsd-client acquire --help',
    ],
    [
      ['acquire', '--mount', '/usr/local/bin'],
      "--mount must not be in the system tree /usr, not '/usr/local/bin'",
      'volsd-client acquire --help',
    ],
    [['acquire', '--mount'], "option '--mount' needs a value", 'volsd-client acquire --help'],
    [
      ['volumes', '--state', 'lost'],
      '--state must be one of creating, syncing, idle',
      'volsd-client volumes --help',
    ],
    [
      ['volumes', '--az', 'moon-1'],
      "--az 'moon-1' is not an Availability Zone",
      'volsd-client volumes --help',
    ],
    [['pool', '--output', 'yaml'], "--output must be table or json, not 'yaml'", 'volsd-client pool --help'],
    [['pool', '--pool', 'Web_Pool'], "--pool 'Web_Pool' is not a pool name", 'volsd-client pool --help'],
    [['pool', '--region', 'mars'], "--region 'mars' is not a Region name", 'volsd-client pool --help'],
    [['pool', '--quiet=yes'], "option '--quiet' takes no value", 'volsd-client pool --help'],
    [
      ['volumes', '--cli-read-timeout', '0'],
      "--cli-read-timeout must be a number of seconds in (0, 3600], not '0'",
      'volsd-client volumes --help',
    ],
    [
      ['pool', '--cli-connect-timeout', 'soon'],
      "--cli-connect-timeout must be a number of seconds in (0, 3600], not 'soon'",
      'volsd-client pool --help',
    ],
    [['status', 'now'], "unexpected argument 'now'", 'volsd-client status --help'],
    [['mount'], "unknown command 'mount'", 'volsd-client --help'],
    [[], 'no command given', 'volsd-client --help'],
  ] as [string[], string, string][])('%j', async ([args, message, hint], { expect }) => {
    const run = await runClient(args, env);

    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`volsd-client: ${message}`);
    expect(lines[0]).toMatch(new RegExp(`\\(see '${hint.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}'\\)$`));
  });
});

describe.concurrent('usage errors with --output json', () => {
  it.for([
    [['volumes', '--output', 'json', '--region', 'us-east-1'], {}, 'no pool'],
    [
      ['volumes', '--output=json', '--region', 'us-east-1'],
      { VOLSD_POOL: 'Web_Pool' },
      "'Web_Pool' is not a pool name",
    ],
    [['pool', '--output', 'json', '--pool', 'Web_Pool'], {}, "--pool 'Web_Pool' is not a pool name"],
  ] as [string[], Record<string, string>, string][])(
    '%j %j: one JSON error document on stdout, the message on stderr, exit 2',
    async ([args, extraEnv, message], { expect }) => {
      const run = await runClient(args, { ...env, ...extraEnv });

      expect(run.code).toBe(2);
      const document = JSON.parse(run.stdout) as { error: Record<string, unknown> };
      expect(document.error).toMatchObject({ code: 'UsageError', exitCode: 2 });
      expect(document.error.message).toContain(message);
      expect(document.error.hint).toMatch(/^volsd-client /);
      expect(run.stderr.trimEnd().split('\n')).toEqual([expect.stringContaining(`volsd-client: ${message}`)]);
    },
  );
});
