import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  allDocuments,
  bundleScript,
  commandParameters,
  DocumentName,
  documentContent,
  documents,
  ExitCode,
  exitCodeName,
  getDocument,
  parseRejectedKeys,
  parseResults,
  readScript,
  scriptDelimiter,
  scriptLibrary,
  toEnv,
} from '../../lambdas/shared/documents.js';
import { InvalidInput } from '../../lambdas/shared/errors.js';
import { volumeId } from '../helpers/ids.js';

const repo = join(import.meta.dirname, '../..');
const source = (path: string) => readFileSync(join(repo, path), 'utf8');
const docCases = allDocuments.map((d) => [d.name, d] as const);
const parameterCases = allDocuments.flatMap((d) =>
  d.parameters.map((p) => [`${d.name} ${p.name}`, p] as const),
);

/** Values that would leave the single quotes of `export VAR='...'` or run something. */
const injections = [
  "'",
  "a'b",
  '$(reboot)',
  '`id`',
  'a;b',
  'a b',
  'a\nb',
  'a\\b',
  '"a"',
  'a&&b',
  'a|b',
  '../x',
];

describe('the document catalogue', () => {
  it('names the five Volsd documents', () => {
    // Assess
    expect(allDocuments.map((d) => d.name).sort()).toEqual(
      ['Volsd-Format', 'Volsd-Freeze', 'Volsd-Mount', 'Volsd-Sync', 'Volsd-Unmount'].sort(),
    );
  });

  it.each(docCases)('%s points at a bash script in strict mode', (_, doc) => {
    // Act
    const text = source(doc.script);

    // Assess
    expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(text).toContain('\nset -euo pipefail\n');
  });

  it.each(docCases)('%s declares exactly the variables its script reads', (_, doc) => {
    // Prepare
    const text = source(doc.script);

    // Act
    const read = new Set([...text.matchAll(/\$\{(VOLSD_[A-Z0-9_]+)[:-]/g)].map((m) => m[1]));
    read.delete('VOLSD_ROOT');

    // Assess
    expect([...read].sort()).toEqual(doc.parameters.map((p) => p.env).sort());
  });

  it.each(parameterCases)('%s: the script checks the same pattern as the document', (name, p) => {
    // Prepare
    const doc = getDocument(name.split(' ')[0] ?? '');

    // Act
    const pattern = p.allowedPattern.replace(/^\^\$\|/, '');

    // Assess
    expect(readScript(doc)).toContain(`'${pattern}'`);
  });

  it.each(parameterCases)('%s: the default matches the pattern', (_, p) => {
    // Assess
    if (p.default !== undefined) expect(p.default).toMatch(new RegExp(p.allowedPattern));
    else expect(p.default).toBeUndefined();
  });

  it.each(parameterCases)('%s: the pattern refuses shell metacharacters', (_, p) => {
    // Act
    const accepted = injections.filter((v) => new RegExp(p.allowedPattern).test(v));

    // Assess
    expect(accepted).toEqual([]);
  });

  it('accepts the values Volsd sends', () => {
    // Act
    const env = toEnv(documents[DocumentName.Sync], {
      Bucket: ['volsd-push-123456789012-us-east-1'],
      Generation: ['42'],
      VolumeId: [volumeId(1)],
      S3Endpoint: ['https://bucket.vpce-0a1b2c3d4e5f.s3.us-east-1.vpce.amazonaws.com'],
      Region: ['us-gov-west-1'],
    });

    // Assess
    expect(env).toMatchObject({
      VOLSD_BUCKET: 'volsd-push-123456789012-us-east-1',
      VOLSD_REGION: 'us-gov-west-1',
    });
  });

  it('keeps the exit codes of the scripts and of ExitCode in step', () => {
    // Prepare
    const camel = (s: string) =>
      s.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());

    // Act
    const table = Object.fromEntries(
      [...source(scriptLibrary).matchAll(/^readonly VOLSD_EXIT_([A-Z_]+)=(\d+)$/gm)].map((m) => [
        camel(m[1] ?? ''),
        Number(m[2]),
      ]),
    );

    // Assess
    expect(table).toEqual(ExitCode);
  });

  it('names an exit code', () => {
    // Assess
    expect(exitCodeName(9)).toBe('PathEscape');
    expect(exitCodeName(99)).toBeUndefined();
  });

  it('throws InvalidInput for an unknown document', () => {
    // Assess
    expect(() => getDocument('AWS-RunShellScript')).toThrow(InvalidInput);
  });
});

describe('bundleScript', () => {
  it('inlines the library in place of the include line', () => {
    // Act
    const bundled = readScript(documents[DocumentName.Mount]);

    // Assess
    expect(bundled).not.toMatch(/^source .*volsd-lib\.sh/m);
    expect(bundled).toContain('volsd_init() {');
    expect(bundled.indexOf('volsd_init() {')).toBeLessThan(bundled.indexOf('volsd_init mount'));
  });

  it('leaves a script without an include line alone', () => {
    // Assess
    expect(bundleScript('#!/usr/bin/env bash\necho hi\n', 'lib')).toBe('#!/usr/bin/env bash\necho hi\n');
  });
});

describe('documentContent', () => {
  const doc = documents[DocumentName.Mount];
  const script = readScript(doc);
  const content = documentContent(doc, script);
  const step = content.mainSteps[0];

  it('builds a schema 2.2 Command document with one Linux shell step', () => {
    // Assess
    expect(content.schemaVersion).toBe('2.2');
    expect(content.mainSteps).toHaveLength(1);
    expect(step).toMatchObject({
      action: 'aws:runShellScript',
      precondition: { StringEquals: ['platformType', 'Linux'] },
      inputs: { timeoutSeconds: '600' },
    });
  });

  it('declares every parameter with its pattern and default', () => {
    // Assess
    expect(content.parameters.VolumeId).toEqual({
      type: 'String',
      description: expect.any(String),
      allowedPattern: '^vol-([0-9a-f]{8}|[0-9a-f]{17})$',
    });
    expect(content.parameters.MountOptions).toMatchObject({ default: 'noatime', maxChars: 200 });
  });

  it('exports each parameter, single-quoted, before the script', () => {
    // Assess
    expect(step?.inputs.runCommand.slice(0, 4)).toEqual([
      "export VOLSD_VOLUME_ID='{{ VolumeId }}'",
      "export VOLSD_MOUNT_PATH='{{ MountPath }}'",
      "export VOLSD_MOUNT_OPTIONS='{{ MountOptions }}'",
      "export VOLSD_DEVICE_WAIT_SECONDS='{{ DeviceWaitSeconds }}'",
    ]);
  });

  it('carries the script unchanged in a quoted heredoc handed to bash', () => {
    // Prepare
    const lines = step?.inputs.runCommand ?? [];

    // Act
    const start = lines.indexOf(`VOLSD_SCRIPT=$(cat <<'${scriptDelimiter}'`);
    const end = lines.indexOf(scriptDelimiter);

    // Assess
    expect(`${lines.slice(start + 1, end).join('\n')}\n`).toBe(script);
    expect(lines.at(-1)).toBe('exec bash -c "$VOLSD_SCRIPT" volsd-mount');
  });

  it.each(docCases)('%s stays within the 64 KB limit of a Command document', (_, d) => {
    // Act
    const json = JSON.stringify(documentContent(d, readScript(d)));

    // Assess
    expect(Buffer.byteLength(json)).toBeLessThan(64 * 1024);
  });

  it('refuses a script that SSM would read as holding a parameter', () => {
    // Assess
    expect(() => documentContent(doc, 'echo {{ x }}\n')).toThrow(InvalidInput);
  });

  it('refuses a script that would end the heredoc early', () => {
    // Assess
    expect(() => documentContent(doc, `echo\n${scriptDelimiter}\nreboot\n`)).toThrow(InvalidInput);
  });
});

describe('parameters', () => {
  const mount = documents[DocumentName.Mount];
  const vol = volumeId(7);

  it('gives the environment of a command with the defaults filled in', () => {
    // Act
    const env = toEnv(mount, { VolumeId: [vol], MountPath: ['/srv/www'] });

    // Assess
    expect(env).toEqual({
      VOLSD_VOLUME_ID: vol,
      VOLSD_MOUNT_PATH: '/srv/www',
      VOLSD_MOUNT_ROOTS: '',
      VOLSD_MOUNT_OPTIONS: 'noatime',
      VOLSD_DEVICE_WAIT_SECONDS: '60',
    });
  });

  it.each([
    ['an unknown parameter', { VolumeId: [vol], MountPath: ['/srv/www'], Extra: ['x'] }],
    ['a missing required parameter', { VolumeId: [vol] }],
    ['two values for one parameter', { VolumeId: [vol, vol], MountPath: ['/srv/www'] }],
    ['a value outside the pattern', { VolumeId: [vol], MountPath: ["/srv/www'; reboot; '"] }],
    ['a value over maxChars', { VolumeId: [vol], MountPath: [`/${'a'.repeat(200)}`] }],
  ])('refuses %s with InvalidInput', (_, parameters) => {
    // Assess
    expect(() => toEnv(mount, parameters)).toThrow(InvalidInput);
  });

  it('builds SendCommand parameters, leaving defaults to the document', () => {
    // Act
    const parameters = commandParameters(documents[DocumentName.Sync], {
      Bucket: 'volsd-push',
      Generation: 12,
    });

    // Assess
    expect(parameters).toEqual({ Bucket: ['volsd-push'], Generation: ['12'] });
  });

  it('refuses SendCommand parameters the document would refuse', () => {
    // Assess
    expect(() =>
      commandParameters(documents[DocumentName.Sync], { Bucket: 'volsd-push', Generation: '-1' }),
    ).toThrow(InvalidInput);
  });
});

describe('script output', () => {
  it('parses every VOLSD_RESULT line, in order', () => {
    // Prepare
    const stdout = [
      'noise',
      'VOLSD_RESULT {"op":"sync","volumeId":"vol-1","status":"ok"}',
      'VOLSD_REJECTED {"key":"live/../x","reason":"parent-segment"}',
      'VOLSD_RESULT {"op":"sync-summary","status":"ok"}',
    ].join('\n');

    // Act
    const results = parseResults(stdout);

    // Assess
    expect(results.map((r) => r.op)).toEqual(['sync', 'sync-summary']);
  });

  it('parses the rejected keys', () => {
    // Act
    const rejected = parseRejectedKeys(
      'VOLSD_REJECTED {"key":"live/a\\u0001b","reason":"control-character"}\n',
    );

    // Assess
    expect(rejected).toEqual([{ key: 'live/a\u0001b', reason: 'control-character' }]);
  });

  it('ignores a line cut short by the output limit', () => {
    // Act
    const results = parseResults('VOLSD_RESULT {"op":"mount","status":"mounted"}\nVOLSD_RESULT {"op":"sy');

    // Assess
    expect(results).toHaveLength(1);
  });
});
