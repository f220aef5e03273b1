/**
 * The instance requirements (README, "Instance requirements"), checked by the scripts before they do
 * anything: hosts that lack something are made with stand-ins put first on PATH (an AWS CLI v1, an
 * lsblk without the SERIAL column, a PATH without a command).
 */
import { chmodSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DocumentName, ExitCode } from '../../lambdas/shared/documents.js';
import { findTool, shimsDir } from '../../sandbox/agent/runner.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, type RunOutcome, type TestHost } from './host.js';

const volA = volumeId(0xa);

let host: TestHost;
let bin: string;

beforeEach(async () => {
  host = await createHost();
  bin = join(host.rootDir, 'bin');
  await mkdir(bin);
  await host.createVolume(volA, { formatted: true });
  await host.attach(volA, 1);
});

afterEach(async () => {
  await host.cleanup();
});

/** Writes an executable stand-in for `name` in the test's bin directory. */
function stub(name: string, body: string) {
  const path = join(bin, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

/** An AWS CLI that answers `--version` with `version` (and counts its runs in the bin directory). */
function awsCli(version: string) {
  stub(
    'aws',
    `echo run >>"${bin}/aws.runs"\necho "aws-cli/${version} Python/3.9.16 Linux/6.1.0 botocore/1.31.0"`,
  );
}

/** The lsblk of a util-linux from before the SERIAL column (the shim otherwise). */
function lsblkWithoutSerial() {
  stub(
    'lsblk',
    `for a in "$@"; do case $a in *SERIAL*) echo "lsblk: unknown column: SERIAL" >&2; exit 1 ;; esac; done\nexec "${shimsDir}/lsblk" "$@"`,
  );
}

/**
 * Fills the bin directory, to be the whole PATH, with the shims but `missing` and the commands the
 * check itself runs before it fails (no aws unless stubbed).
 */
function pathWithout(missing: string) {
  // The sandbox's aws shim (sandbox/shims/aws) needs a real CLI behind it: a test stubs aws itself.
  for (const name of readdirSync(shimsDir).filter((n) => n !== missing && n !== 'aws'))
    symlinkSync(join(shimsDir, name), join(bin, name));
  for (const tool of ['bash', 'dirname', 'date', 'awk', 'flock', 'readlink', 'realpath']) {
    const found = findTool(tool);
    if (!found) throw new Error(`${tool} is needed by this test`);
    symlinkSync(found, join(bin, tool));
  }
}

const stubbedPath = () => [bin, shimsDir, process.env.PATH ?? ''].join(':');

const mount = (path = stubbedPath()) =>
  host.run(
    DocumentName.Mount,
    { VolumeId: volA, MountPath: '/srv/www', DeviceWaitSeconds: '0' },
    { extraEnv: { PATH: path } },
  );

/** The script's last stderr line: what the acquire's CommandFailed carries (lambdas/shared/commands.ts). */
const lastErrorLine = (out: RunOutcome) => out.stderr.trim().split('\n').at(-1) ?? '';

const markerPath = () => join(host.hostRoot, 'run/volsd/aws-cli-v2');

describe('instance requirements', () => {
  it('refuses an AWS CLI v1 at the first mount with exit 16, naming it', async () => {
    // Prepare
    awsCli('1.29.0');

    // Act
    const out = await mount();

    // Assess
    expect(out.exitCode, out.stderr).toBe(ExitCode.HostUnsupported);
    expect(out.results).toHaveLength(1);
    expect(out.result).toMatchObject({
      op: 'mount',
      status: 'failed',
      code: 'host-unsupported',
      exitCode: ExitCode.HostUnsupported,
      missing: ['aws-cli-v2'],
    });
    expect(out.result.error).toMatch(/AWS CLI v2 \(aws --version: aws-cli\/1\.29\.0 /);
    expect(lastErrorLine(out)).toMatch(/error: .*missing: the AWS CLI v2 \(aws --version: aws-cli\/1\.29\.0/);
    expect(host.mounts()).toEqual([]);
    expect(existsSync(markerPath())).toBe(false);
  });

  it('refuses an lsblk without the SERIAL column, naming it', async () => {
    // Prepare
    awsCli('2.15.30');
    lsblkWithoutSerial();

    // Act
    const out = await mount();

    // Assess
    expect(out.exitCode, out.stderr).toBe(ExitCode.HostUnsupported);
    expect(out.result).toMatchObject({ code: 'host-unsupported', missing: ['lsblk-serial'] });
    expect(out.result.error).toMatch(
      /lsblk with the SERIAL column \(lsblk -dno SERIAL: lsblk: unknown column: SERIAL\)/,
    );
    expect(host.mounts()).toEqual([]);
  });

  it('names every requirement that is not met in one result line and one error line', async () => {
    // Prepare
    awsCli('1.18.69');
    lsblkWithoutSerial();

    // Act
    const out = await mount();

    // Assess
    expect(out.exitCode).toBe(ExitCode.HostUnsupported);
    expect(out.stdout.trim().split('\n')).toHaveLength(1);
    expect(out.result).toMatchObject({ missing: ['lsblk-serial', 'aws-cli-v2'] });
    expect(lastErrorLine(out)).toMatch(
      /lsblk with the SERIAL column .*; the AWS CLI v2 \(aws --version: aws-cli\/1\.18\.69/,
    );
    expect(out.stderr.match(/error:/g)).toHaveLength(1);
  });

  it('keeps exit 12 for commands that are missing alone, naming all of them', async () => {
    // Prepare
    pathWithout('blkid');

    // Act
    const out = await mount(bin);

    // Assess
    expect(out.exitCode, out.stderr).toBe(ExitCode.ToolMissing);
    expect(out.result).toMatchObject({ code: 'tool-missing', missing: ['blkid', 'aws'] });
    expect(out.result.error).toBe('required command not found: blkid, aws');
  });

  it('names missing commands beside an unsupported requirement, with exit 16', async () => {
    // Prepare
    awsCli('1.29.0');
    pathWithout('blkid');

    // Act
    const out = await mount(bin);

    // Assess
    expect(out.exitCode, out.stderr).toBe(ExitCode.HostUnsupported);
    expect(out.result).toMatchObject({ missing: ['blkid', 'aws-cli-v2'] });
    expect(out.result.error).toMatch(/missing: command blkid; the AWS CLI v2/);
  });

  it('mounts as before on a host that meets them, and runs aws --version once per boot', async () => {
    // Prepare
    awsCli('2.15.30');

    // Act
    const first = await mount();
    const again = await mount();

    // Assess
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.result).toMatchObject({ op: 'mount', status: 'mounted', device: '/dev/nvme1n1' });
    expect(again.result).toMatchObject({ status: 'already-mounted' });
    expect(existsSync(markerPath())).toBe(true);
    expect(readFileSync(join(bin, 'aws.runs'), 'utf8')).toBe('run\n');
  });

  it('checks the CLI in Volsd-Sync too, before it lists anything', async () => {
    // Prepare
    awsCli('1.29.0');

    // Act
    const out = await host.run(
      DocumentName.Sync,
      { Bucket: 'volsd-push', Generation: '1' },
      { extraEnv: { PATH: stubbedPath() } },
    );

    // Assess
    expect(out.exitCode, out.stderr).toBe(ExitCode.HostUnsupported);
    expect(out.result).toMatchObject({ op: 'sync', code: 'host-unsupported', missing: ['aws-cli-v2'] });
    expect(readFileSync(join(bin, 'aws.runs'), 'utf8')).toBe('run\n');
  });
});
