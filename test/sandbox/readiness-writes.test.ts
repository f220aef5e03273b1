import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isObjectWrite, ReadinessWatch } from '../../sandbox/readiness.js';
import { type LocalS3, startS3 } from '../../sandbox/servers.js';
import type { Cloud } from '../../sandbox/sim/cloud.js';

// s3rver renames a written object into place, writes its metadata, then announces it: between the two
// the store already holds the new bytes and no event said so. The readiness watch counts a push in flight
// from the moment the write reaches S3, not from its event (a 10,000-operation chaos run reported hosts
// "behind the bucket" by an object whose PUT had not been answered yet).
const bucket = 'push';
let s3: LocalS3;
let now = 100;
let lastFanOut: number | undefined;
let inService: (instanceId: string, groupName: string) => void = () => {};

/** The part of the simulator the watch reads: the clock, the last fan-out, no lifecycle actions. */
const cloud = {
  clock: { now: () => now },
  autoscaling: {
    onInService: (fn: typeof inService) => {
      inService = fn;
    },
  },
  ssm: { lastSentByTag: () => lastFanOut },
  lifecycleActions: () => [],
  hostRoot: () => '/nonexistent-host',
} as unknown as Cloud;

beforeAll(async () => {
  s3 = await startS3([bucket]);
});
afterAll(async () => {
  await s3.stop();
});

/** Starts a PUT of `body` and sends only its first half; returns the function that sends the rest. */
function halfPut(key: string, body: string): Promise<() => Promise<number>> {
  const url = new URL(s3.endpoint);
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname,
      port: url.port,
      method: 'PUT',
      path: `/${bucket}/${key}`,
      headers: { 'content-length': Buffer.byteLength(body), 'content-type': 'text/html' },
    });
    const answered = new Promise<number>((done, failed) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
      });
      req.on('error', failed);
    });
    req.on('error', reject);
    req.write(body.slice(0, body.length / 2), () =>
      resolve(async () => {
        req.end(body.slice(body.length / 2));
        return answered;
      }),
    );
  });
}

describe('readiness watch: a write S3 has not answered is a push in flight', () => {
  it('excuses an instance that goes InService during a PUT, and not once the PUT is answered and fanned out', async () => {
    // Prepare
    const watch = new ReadinessWatch(cloud, s3, bucket);
    watch.pushPipelineWired();
    lastFanOut = 50;
    const rest = await halfPut('live/page.html', '<h1>new page</h1>');
    await expect.poll(() => watch.writesPending).toBe(1);
    // Act: InService while the PUT is unanswered (a fan-out for an earlier push went out since it
    // arrived), then after its answer and a fan-out sent after that.
    now = 110;
    lastFanOut = 105;
    inService('i-during', 'web');
    expect(await rest()).toBe(200);
    now = 120;
    lastFanOut = 115;
    inService('i-after', 'web');
    // Assess
    expect(watch.writesPending).toBe(0);
    expect(watch.records.map((r) => [r.instanceId, r.pushInFlight])).toEqual([
      ['i-during', true],
      ['i-after', false],
    ]);
    const after = watch.records.find((r) => r.instanceId === 'i-after');
    expect(after?.differences).toEqual(['missing page.html']);
    // The diagnostics read the key's files in the store (its on-disk encoding) and find the new bytes.
    expect(after?.evidence?.['page.html']?.store).toEqual(
      expect.arrayContaining([expect.stringMatching(/^page\.html\._S3rver_object 17 "<h1>new page<\/h1>"/)]),
    );
    expect(after?.evidence?.['page.html']?.served).toBe('absent');
  });
});

describe('isObjectWrite', () => {
  it.each([
    ['PUT', '/push/live/a.html', '', true],
    ['DELETE', '/push/live/a.html', '', true],
    ['POST', '/push?delete', '', true],
    ['POST', '/push/live/big.bin?uploads', '', true],
    ['PUT', '/live/a.html', 'push.s3.localhost', true],
    ['GET', '/push/live/a.html', '', false],
    ['PUT', '/push?notification', '', false],
    ['PUT', '/push/', '', false],
    ['PUT', '/other/live/a.html', '', false],
    ['POST', '/push?deleted-not', '', false],
  ])('%s %s (host %s) is an object write: %s', (method, url, host, expected) => {
    expect(isObjectWrite(method, url, bucket, host)).toBe(expected);
  });
});
