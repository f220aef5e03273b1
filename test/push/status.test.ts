import {
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectPushStatus, type StatusMetric } from '../../lambdas/fanout/status.js';
import { handleStatusEvent, type StatusHandlerDeps } from '../../lambdas/fanout/status-handler.js';
import { CommandPending } from '../../lambdas/shared/errors.js';
import { PushStatus } from '../../lambdas/shared/push-records.js';
import {
  FakePushes,
  FakeVolumes,
  fixture,
  invocation,
  MemoryLog,
  resultLine,
  syncStdout,
  testConfig,
} from './fakes.js';

expect.extend(allCustomMatcher);

const ssmMock = mockClient(SSMClient);

const worker = 'i-0aaaaaaaaaaaaaaa1';
const web1 = 'i-0bbbbbbbbbbbbbbb1';
const web2 = 'i-0bbbbbbbbbbbbbbb2';
const idle1 = 'vol-0aaaaaaaaaaaaaaa1';
const idle2 = 'vol-0aaaaaaaaaaaaaaa2';
const disk1 = 'vol-0bbbbbbbbbbbbbbb1';
const disk2 = 'vol-0bbbbbbbbbbbbbbb2';

let pushes: FakePushes;
let volumes: FakeVolumes;
let counted: Partial<Record<StatusMetric, number>>;
let deps: StatusHandlerDeps;

beforeEach(async () => {
  pushes = new FakePushes();
  volumes = new FakeVolumes();
  counted = {};
  deps = {
    config: testConfig,
    syncDocument: testConfig.syncDocument,
    ssm: new SSMClient({ region: 'us-east-1' }),
    pushes,
    volumes,
    log: new MemoryLog(),
    count: (metric, n) => {
      counted[metric] = (counted[metric] ?? 0) + n;
    },
  };
  await pushes.recordPush({
    pool: 'web',
    generation: 5,
    status: PushStatus.InProgress,
    commandId: 'cmd-5',
    messages: 1,
    keys: ['live/a.html'],
    rejected: [],
  });
});

afterEach(() => {
  ssmMock.reset();
});

const listing = (...invocations: ReturnType<typeof invocation>[]) =>
  ssmMock.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: invocations });

const allCurrent = () =>
  listing(
    invocation(worker, 'Success', {
      stdout: syncStdout(5, [
        { volumeId: idle1, status: 'ok' },
        { volumeId: idle2, status: 'ok' },
      ]),
    }),
    invocation(web1, 'Success', { stdout: syncStdout(5, [{ volumeId: disk1, status: 'ok' }]) }),
    invocation(web2, 'Success', { stdout: syncStdout(5, [{ volumeId: disk2, status: 'ok' }]) }),
  );

const ref = { commandId: 'cmd-5', generation: 5 };

describe('collectPushStatus', () => {
  it('marks the push Success when every instance synced', async () => {
    // Prepare
    allCurrent();

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect({ status: push?.status, summary: push?.summary }).toEqual({
      status: 'Success',
      summary: {
        targets: 3,
        succeeded: 3,
        failed: 0,
        undeliverable: 0,
        volumesCurrent: 4,
        volumesFailed: 0,
        instancesOmitted: 0,
      },
    });
  });

  it('records the generation of every volume the script reports synced', async () => {
    // Prepare
    allCurrent();

    // Act
    await collectPushStatus(ref, deps);

    // Assess
    expect(Object.fromEntries(volumes.generations)).toEqual({
      [idle1]: 5,
      [idle2]: 5,
      [disk1]: 5,
      [disk2]: 5,
    });
  });

  it('marks the push Partial naming the failed instance and the reason the script gave', async () => {
    // Prepare
    listing(
      invocation(worker, 'Success', { stdout: syncStdout(5, [{ volumeId: idle1, status: 'ok' }]) }),
      invocation(web1, 'Failed', {
        stdout: syncStdout(5, [{ volumeId: disk1, status: 'failed' }]),
        stderr: 'volsd-sync: aws s3 sync exited 1',
        code: 8,
      }),
    );

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect({ status: push?.status, failed: push?.instances[web1] }).toEqual({
      status: 'Partial',
      failed: {
        status: 'Failed',
        error: `${disk1} sync-failed: aws s3 sync exited 1: access denied`,
        volumes: [
          {
            volumeId: disk1,
            status: 'failed',
            error: 'sync-failed: aws s3 sync exited 1: access denied',
            generation: 4,
          },
        ],
      },
    });
  });

  it('names the SSM status and error output when the script never ran', async () => {
    // Prepare
    listing(
      invocation(worker, 'Success', { stdout: syncStdout(5, [{ volumeId: idle1, status: 'ok' }]) }),
      invocation(web1, 'Failed', { stderr: 'injected fault: the command failed on the instance', code: 1 }),
    );

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect(push?.instances[web1]?.error).toBe(
      'Failed (exit 1): injected fault: the command failed on the instance',
    );
  });

  it('counts a partial push as a metric', async () => {
    // Prepare
    listing(
      invocation(worker, 'Success', { stdout: syncStdout(5, [{ volumeId: idle1, status: 'ok' }]) }),
      invocation(web1, 'DeliveryTimedOut'),
    );

    // Act
    await collectPushStatus(ref, deps);

    // Assess
    expect(counted).toEqual({ PushPartial: 1 });
  });

  it('marks the push Failed when no instance synced', async () => {
    // Prepare
    listing(invocation(worker, 'ExecutionTimedOut'), invocation(web1, 'Terminated'));

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect(push?.status).toBe('Failed');
  });

  it('does not hold an instance that was gone before delivery against the push', async () => {
    // Prepare
    listing(
      invocation(worker, 'Success', { stdout: syncStdout(5, [{ volumeId: idle1, status: 'ok' }]) }),
      invocation(web1, 'Undeliverable'),
    );

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect({ status: push?.status, undeliverable: push?.summary?.undeliverable }).toEqual({
      status: 'Success',
      undeliverable: 1,
    });
  });

  it('marks a push that reached no instance as Success', async () => {
    // Prepare
    listing();

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect({ status: push?.status, targets: push?.summary?.targets }).toEqual({
      status: 'Success',
      targets: 0,
    });
  });

  it('waits while an invocation is still running', async () => {
    // Prepare
    listing(invocation(worker, 'Success', { stdout: syncStdout(5, []) }), invocation(web1, 'InProgress'));

    // Act
    const collect = collectPushStatus(ref, deps);

    // Assess
    await expect(collect).rejects.toBeInstanceOf(CommandPending);
    expect(pushes.records.get('5')?.status).toBe('InProgress');
  });

  it('reads the full output when the listing cut it', async () => {
    // Prepare
    const padding = Array.from({ length: 40 }, (_, i) =>
      resultLine({ op: 'note', text: `${i}`.padStart(60, '-') }),
    ).join('\n');
    const full = `${padding}\n${syncStdout(5, [{ volumeId: idle1, status: 'ok' }])}`;
    listing(invocation(worker, 'Success', { stdout: full }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: full });

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect(push?.instances[worker]?.volumes).toEqual([{ volumeId: idle1, status: 'ok', generation: 5 }]);
  });

  it('completes the push although a reported volume is unknown to the table', async () => {
    // Prepare
    volumes.unknown.add(disk1);
    allCurrent();

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect({ status: push?.status, idle1: volumes.generations.get(idle1) }).toEqual({
      status: 'Success',
      idle1: 5,
    });
  });

  it('ignores a Volsd-Sync command that is not a push (acquire and replenish run it too)', async () => {
    // Act
    const push = await collectPushStatus({ commandId: 'cmd-acquire', generation: 5 }, deps);

    // Assess
    expect({ push, listed: ssmMock.commandCalls(ListCommandInvocationsCommand).length }).toEqual({
      push: undefined,
      listed: 0,
    });
  });

  it('returns a push already collected without asking SSM again', async () => {
    // Prepare
    allCurrent();
    await collectPushStatus(ref, deps);
    ssmMock.resetHistory();

    // Act
    const push = await collectPushStatus(ref, deps);

    // Assess
    expect({ status: push?.status, calls: ssmMock.calls().length }).toEqual({ status: 'Success', calls: 0 });
  });

  it('finds the push by its command when the generation is not known', async () => {
    // Prepare
    allCurrent();

    // Act
    const push = await collectPushStatus({ commandId: 'cmd-5' }, deps);

    // Assess
    expect(push?.generation).toBe(5);
  });
});

describe('push status handler', () => {
  const statusEvent = (detail: Record<string, unknown>) => {
    const event = fixture('eventbridge-ssm-command-status-change') as { detail: Record<string, unknown> };
    event.detail = {
      ...event.detail,
      'command-id': 'cmd-5',
      'document-name': testConfig.syncDocument,
      parameters: { Bucket: ['volsd-web-push'], Prefix: ['live/'], Generation: ['5'] },
      ...detail,
    };
    return event;
  };

  it("collects the push named by a final command status event's Generation parameter", async () => {
    // Prepare
    allCurrent();

    // Act
    const result = await handleStatusEvent(statusEvent({ status: 'Success' }), deps);

    // Assess
    expect(result).toMatchObject({ action: 'collected', push: { generation: 5, status: 'Success' } });
  });

  it.each([
    ['another document', { 'document-name': 'Volsd-Mount-web', status: 'Success' }],
    ['a status that is not final', { status: 'InProgress' }],
  ])('ignores %s', async (_what, detail) => {
    // Act
    const result = await handleStatusEvent(statusEvent(detail), deps);

    // Assess
    expect({
      action: result.action,
      listed: ssmMock.commandCalls(ListCommandInvocationsCommand).length,
    }).toEqual({
      action: 'ignored',
      listed: 0,
    });
  });

  it('sweeps open pushes whose command ended on its schedule', async () => {
    // Prepare
    allCurrent();
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'cmd-5', Status: 'Success' }] });

    // Act
    const result = await handleStatusEvent({ source: 'aws.events', 'detail-type': 'Scheduled Event' }, deps);

    // Assess
    expect({ result, status: pushes.records.get('5')?.status }).toEqual({
      result: { action: 'swept', completed: 1 },
      status: 'Success',
    });
  });

  it('leaves a push whose command still runs to a later sweep', async () => {
    // Prepare
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'cmd-5', Status: 'InProgress' }] });

    // Act
    const result = await handleStatusEvent({ source: 'aws.events', 'detail-type': 'Scheduled Event' }, deps);

    // Assess
    expect({ result, status: pushes.records.get('5')?.status }).toEqual({
      result: { action: 'swept', completed: 0 },
      status: 'InProgress',
    });
  });

  it('ignores an event it does not know', async () => {
    // Act
    const result = await handleStatusEvent({ source: 'aws.s3', 'detail-type': 'Object Created' }, deps);

    // Assess
    expect(result).toEqual({ action: 'ignored', reason: 'unexpected event' });
  });
});
