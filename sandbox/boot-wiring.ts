/**
 * The sandbox's wiring of the boot-unit path, as the CDK construct wires it on AWS:
 * - EventBridge rules -> the events function (lambdas/events): Volsd-Unmount command final statuses
 *   and EC2 instance state changes, delivered after a modelled EventBridge delay;
 * - the host function (lambdas/boot) behind a "Function URL" with AWS_IAM auth: a local HTTP endpoint
 *   that checks the SigV4 signature of each request against per-host instance-profile credentials and
 *   hands the function the caller's identity, `assumed-role/<host role>/<instance id>`, as AWS does;
 * - per-host instance metadata (IMDSv2) serving those credentials;
 * - the real boot unit (scripts/volsd-boot.sh) run in each host's tree at the modelled end of its boot
 *   (the `os-ready` moment), with the shims first on PATH, as the SSM agent runs the documents.
 */
import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignatureV4 } from '@smithy/signature-v4';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { bootUnitTag, Role, roleTag } from '../lambdas/shared/tags.js';
import { scriptRunsOn } from './agent/model-runner.js';
import { defaultAwsEnv, resolveAwsCli, shimsDir } from './agent/runner.js';
import { ImdsService } from './gateway/imds.js';
import type { Accounting } from './sim/accounting.js';
import type { Cloud } from './sim/cloud.js';
import { Rng } from './sim/rng.js';
import type { LocalExecution } from './stepfunctions.js';

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** SHA-256 (and its HMAC) for SigV4, from node:crypto. */
export class NodeSha256 {
  private hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {}
}

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** The boot unit as the package ships it. */
export const bootUnitScript = join(repoRoot, 'scripts', 'volsd-boot.sh');

/**
 * EventBridge delivery of an AWS service event to a rule's Lambda target: AWS gives no figure (events
 * are "best effort", typically within seconds); 0.5-2 s assumed, at the slow end.
 */
export const eventDelivery: readonly [number, number] = [0.5, 2];

/** How a host's boot unit behaves (for tests): `real` runs the script; `missing` runs nothing. */
export type UnitMode = 'real' | 'missing';

/** One run of the boot unit on a host. */
export interface UnitRun {
  instanceId: string;
  startedAt: number;
  endedAt?: number;
  exitCode?: number;
  stdout: string;
  stderr: string;
}

/** One request to the host function (for the bench's timelines). */
export interface SignalRecord {
  instanceId: string;
  /** Modelled seconds: the request arrived, and its answer left. */
  at: number;
  answeredAt: number;
  status: number;
  /** The answer's `status` field (ok, behind, fallback, refused). */
  answer: string;
}

/** What the wiring needs of the sandbox. */
export interface BootWiringTarget {
  cloud: Cloud;
  accounting: Accounting;
  sfn: { executions: Map<string, LocalExecution> };
  pool: string;
  bucket: string;
  s3Endpoint: string;
  seed: number;
  timeScale: number;
  /** The instance the table says holds a volume (the sandbox's own read, not counted). */
  holderOf(volumeId: string): Promise<string | undefined>;
}

/** The running wiring. */
export interface BootWiring {
  /** The host function's "Function URL". */
  readonly signalUrl: string;
  /** Every boot unit run, by instance. */
  readonly runs: Map<string, UnitRun>;
  /** Every signal the host function answered, in arrival order. */
  readonly signals: SignalRecord[];
  /** Resolves when every unit started so far has exited. */
  idle(): Promise<void>;
  /** How the unit of instances launched from now on behaves (default `real`). */
  setUnitMode(mode: UnitMode | ((instanceId: string) => UnitMode)): void;
  /**
   * Lines added to a host's boot.env before its unit starts (as a different user data would write),
   * e.g. a broken mount path.
   */
  setConfigOverride(fn: ((instanceId: string) => Record<string, string> | undefined) | undefined): void;
  /** The instance-profile credentials of a host (for tests: a host calling with its own keys). */
  credentialsOf(instanceId: string): { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  /**
   * Faults of the events function's deliveries, one-shot, for the next `times` events it takes (each kind
   * counted on its own):
   * - `duplicate`: the event is delivered twice (EventBridge delivers at least once), the copy after its
   *   own delivery delay;
   * - `crashAfter`: the invocation runs, then its runtime dies (its effects stay); Lambda retries an
   *   asynchronous invocation that failed, so the same event runs again {@link asyncRetryDelay} later.
   */
  injectEventFault(fault: 'duplicate' | 'crashAfter', times?: number): void;
  /**
   * The same faults at random, for chaos: each event is delivered twice with chance `duplicate`, each
   * invocation crashes after it ran with chance `crashAfter` (seeded draws of their own). @default none
   */
  setEventFaultRates(rates: { duplicate: number; crashAfter: number }): void;
  /** Event deliveries and re-runs the faults above caused, by kind. */
  readonly eventFaults: { duplicated: number; crashed: number };
  stop(): Promise<void>;
}

/**
 * Modelled seconds before Lambda retries an asynchronous invocation whose function failed: "waits one
 * minute before the first retry" (Lambda Developer Guide, "Error handling and automatic retries in
 * Lambda", asynchronous invocation; the second retry waits two minutes: one retry is modelled).
 */
export const asyncRetryDelay = 60;

/** The instance role of the pool's hosts: the sessions the host function accepts. */
export const hostRoleName = (pool: string) => `volsd-${pool}-host`;

/** The operation (for the accounting) of the workflow running for `instanceId`, if any. */
function operationOf(executions: Map<string, LocalExecution>, instanceId: string): string | undefined {
  for (const e of executions.values()) {
    if (e.status !== 'RUNNING' || !e.name.includes(instanceId)) continue;
    const machine = e.stateMachineArn.split(':').pop();
    return `${machine}:${e.name}`;
  }
  return undefined;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Starts the wiring; the caller sets BOOT env (TABLE_NAME etc. are the sandbox's process env). */
export async function startBootWiring(t: BootWiringTarget): Promise<BootWiring> {
  process.env.EXPECTED_ACCOUNT_ID ??= t.cloud.accountId;
  const { handler: eventsHandler } = await import('../lambdas/events/handler.js');
  const { handler: bootHandler } = await import('../lambdas/boot/handler.js');
  const rng = new Rng(t.seed ^ 0xb007);
  const region = t.cloud.region;
  const accountId = t.cloud.accountId;
  const roleName = hostRoleName(t.pool);
  const secret = createHash('sha256').update(`volsd-sandbox-hosts-${t.seed}`).digest();
  const runs = new Map<string, UnitRun>();
  const signals: SignalRecord[] = [];
  const running = new Set<Promise<void>>();
  const imds = new Map<string, ImdsService>();
  const byAccessKey = new Map<string, string>();
  let mode: (instanceId: string) => UnitMode = () => 'real';
  let configOverride: ((instanceId: string) => Record<string, string> | undefined) | undefined;
  let stopped = false;
  const pendingFaults = { duplicate: 0, crashAfter: 0 };
  let faultRates = { duplicate: 0, crashAfter: 0 };
  const faultRng = new Rng(t.seed ^ 0xe7e47);
  const eventFaults = { duplicated: 0, crashed: 0 };

  const credentialsOf = (instanceId: string) => {
    const accessKeyId = `ASIA${createHmac('sha256', secret).update(`ak:${instanceId}`).digest('hex').slice(0, 16).toUpperCase()}`;
    byAccessKey.set(accessKeyId, instanceId);
    return {
      accessKeyId,
      secretAccessKey: createHmac('sha256', secret).update(`sk:${instanceId}`).digest('base64').slice(0, 40),
      sessionToken: `volsd-sandbox-session-${instanceId}`,
    };
  };

  // ---------------------------------------------------------------- EventBridge -> events function
  const onEvent = (event: { source?: string; 'detail-type'?: string; detail?: Record<string, unknown> }) => {
    const ssm =
      event.source === 'aws.ssm' &&
      event['detail-type'] === 'EC2 Command Status-change Notification' &&
      event.detail?.['document-name'] === 'Volsd-Unmount' &&
      ['Success', 'Failed', 'TimedOut', 'Cancelled'].includes(String(event.detail?.status));
    const ec2 =
      event.source === 'aws.ec2' &&
      event['detail-type'] === 'EC2 Instance State-change Notification' &&
      event.detail?.state === 'running';
    if (!ssm && !ec2) return;
    deliver(event, ssm, ec2, rng.uniform(eventDelivery[0], eventDelivery[1]));
    const drawn = faultRates.duplicate > 0 && faultRng.next() < faultRates.duplicate;
    if (pendingFaults.duplicate > 0 || drawn) {
      if (!drawn) pendingFaults.duplicate--;
      eventFaults.duplicated++;
      deliver(event, ssm, ec2, rng.uniform(eventDelivery[0], eventDelivery[1]));
    }
  };
  const deliver = (
    event: { source?: string; 'detail-type'?: string; detail?: Record<string, unknown> },
    ssm: boolean,
    ec2: boolean,
    delay: number,
    retry = false,
    onDone?: () => void,
  ): void => {
    t.cloud.clock.setTimer(delay, () => {
      if (stopped) {
        onDone?.();
        return;
      }
      const drawn = !retry && faultRates.crashAfter > 0 && faultRng.next() < faultRates.crashAfter;
      const crash = !retry && (pendingFaults.crashAfter > 0 || drawn);
      if (crash && !drawn) pendingFaults.crashAfter--;
      // Attributed to the workflow the event is about: the instance's own (running), or the one holding
      // the unmounted volume (a client's or the worker's command; the worker's serves an acquire).
      const volumeId = ssm
        ? (event.detail?.parameters as Record<string, string[]>)?.VolumeId?.[0]
        : undefined;
      const run = async () => {
        t.accounting.count('lambdaInvocation', `volsd-${t.pool}-events`);
        await (eventsHandler as unknown as (e: unknown, c: unknown) => Promise<unknown>)(event, {
          functionName: `volsd-${t.pool}-events`,
          awsRequestId: rng.uuid(),
          getRemainingTimeInMillis: () => 30_000,
        });
      };
      const p = (async () => {
        const instanceId = ec2
          ? String(event.detail?.['instance-id'])
          : volumeId
            ? await t.holderOf(volumeId)
            : undefined;
        const op = instanceId ? operationOf(t.sfn.executions, instanceId) : undefined;
        await (op ? t.accounting.withOperation(op, run) : run());
      })()
        .catch(() => undefined)
        .then(() => {
          // The runtime died after the handler ran: Lambda runs the same event again later.
          if (!crash) return;
          eventFaults.crashed++;
          // Tracked from now, so idle() waits for the retry too.
          const again = new Promise<void>((ok) => deliver(event, ssm, ec2, asyncRetryDelay, true, ok));
          running.add(again);
          void again.finally(() => running.delete(again));
        });
      running.add(p);
      void p.finally(() => {
        running.delete(p);
        onDone?.();
      });
    });
  };
  t.cloud.events.on('event', onEvent);

  // ---------------------------------------------------------------- Function URL and IMDS
  const server: Server = createServer((req, res) => {
    void serve(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: String(err) }));
    });
  });
  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const imdsPath = /^\/imds\/(i-[0-9a-f]+)(\/latest\/.*)$/.exec(url.pathname);
    if (imdsPath) {
      const instanceId = imdsPath[1] ?? '';
      let service = imds.get(instanceId);
      if (!service) {
        const creds = credentialsOf(instanceId);
        service = new ImdsService({
          region,
          accountId,
          instance: () => {
            const i = t.cloud.ec2.view().instances.find((x) => x.instanceId === instanceId);
            return i
              ? { instanceId, az: i.az, instanceType: i.instanceType, state: i.state, tags: i.tags }
              : undefined;
          },
          instanceProfile: { roleName, credentials: () => creds },
        });
        imds.set(instanceId, service);
      }
      req.url = `${imdsPath[2]}${url.search}`;
      service.handle(req, res);
      return;
    }
    if (url.pathname !== '/') {
      res.writeHead(404).end();
      return;
    }
    const body = await readBody(req);
    const caller = await verifySigV4(req, body);
    if (!caller) {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Message: 'Forbidden' }));
      return;
    }
    const event = {
      version: '2.0',
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])),
      requestContext: {
        accountId,
        apiId: 'local',
        domainName: req.headers.host ?? '',
        http: {
          method: req.method ?? 'GET',
          path: url.pathname,
          protocol: 'HTTP/1.1',
          sourceIp: '127.0.0.1',
          userAgent: '',
        },
        requestId: rng.uuid(),
        authorizer: {
          iam: {
            accessKey: caller.accessKeyId,
            accountId,
            callerId: `AROALOCALHOSTROLE01:${caller.instanceId}`,
            userArn: `arn:aws:sts::${accountId}:assumed-role/${roleName}/${caller.instanceId}`,
            userId: `AROALOCALHOSTROLE01:${caller.instanceId}`,
          },
        },
      },
      body: body.toString('utf8'),
      isBase64Encoded: false,
    } as unknown as LambdaFunctionURLEvent;
    const op = operationOf(t.sfn.executions, caller.instanceId);
    const arrivedAt = t.cloud.clock.now();
    const invoke = async () => {
      t.accounting.count('lambdaInvocation', `volsd-${t.pool}-boot`);
      await t.cloud.clock.sleep(0.03).catch(() => undefined);
      return (await (bootHandler as unknown as (e: unknown, c: unknown) => Promise<unknown>)(event, {
        functionName: `volsd-${t.pool}-boot`,
        awsRequestId: rng.uuid(),
        getRemainingTimeInMillis: () => 30_000,
      })) as { statusCode: number; body: string };
    };
    const out = await (op ? t.accounting.withOperation(op, invoke) : invoke());
    let answer = '';
    try {
      answer = String((JSON.parse(out.body) as { status?: unknown }).status ?? '');
    } catch {}
    signals.push({
      instanceId: caller.instanceId,
      at: arrivedAt,
      answeredAt: t.cloud.clock.now(),
      status: out.statusCode,
      answer,
    });
    res.writeHead(out.statusCode, { 'content-type': 'application/json' });
    res.end(out.body);
  };

  /** The caller whose credentials signed the request (AWS_IAM auth of a Function URL), or undefined. */
  const verifySigV4 = async (req: IncomingMessage, body: Buffer) => {
    const auth = String(req.headers.authorization ?? '');
    const m =
      /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)\/(\d{8})\/([a-z0-9-]+)\/lambda\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    if (!m) return undefined;
    const [, accessKeyId = '', , signingRegion = '', signedHeaders = '', signature = ''] = m;
    const instanceId = byAccessKey.get(accessKeyId);
    if (!instanceId || signingRegion !== region) return undefined;
    const creds = credentialsOf(instanceId);
    if (req.headers['x-amz-security-token'] !== creds.sessionToken) return undefined;
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const dm = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
    if (!dm) return undefined;
    const signingDate = new Date(`${dm[1]}-${dm[2]}-${dm[3]}T${dm[4]}:${dm[5]}:${dm[6]}Z`);
    // AWS refuses a signature more than 5 minutes off its own clock.
    if (Math.abs(signingDate.getTime() - Date.now()) > 5 * 60 * 1000) return undefined;
    const url = new URL(req.url ?? '/', 'http://local');
    const headers: Record<string, string> = {};
    for (const name of signedHeaders.split(';')) headers[name] = String(req.headers[name] ?? '');
    const signer = new SignatureV4({
      credentials: { accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: creds.sessionToken },
      region,
      service: 'lambda',
      sha256: NodeSha256,
      uriEscapePath: true,
      applyChecksum: false,
    });
    const [host = '', port] = String(req.headers.host ?? '').split(':');
    const signed = await signer.sign(
      {
        method: req.method ?? 'GET',
        protocol: 'http:',
        hostname: host,
        ...(port ? { port: Number(port) } : {}),
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers,
        body: body.toString('utf8'),
      },
      { signingDate, signableHeaders: new Set(signedHeaders.split(';')), unsignableHeaders: new Set() },
    );
    const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? ''))?.[1];
    return expected === signature ? { instanceId, accessKeyId } : undefined;
  };

  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  const signalUrl = `http://127.0.0.1:${port}/`;

  // ---------------------------------------------------------------- the unit, at the end of each boot
  const awsDir = dirname(resolveAwsCli());
  /** Runs the real unit in the host's tree; resolves when it exited. */
  const unit = (run: UnitRun, hostRoot: string) =>
    new Promise<void>((ok) => {
      const child = spawn('bash', [bootUnitScript], {
        cwd: hostRoot,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: [shimsDir, awsDir, process.env.PATH].filter(Boolean).join(delimiter),
          HOME: process.env.HOME ?? tmpdir(),
          TMPDIR: process.env.TMPDIR ?? tmpdir(),
          LANG: 'C.UTF-8',
          ...defaultAwsEnv,
          VOLSD_ROOT: hostRoot,
        },
      });
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        run.stdout += c;
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        run.stderr += c;
      });
      child.on('close', (code) => {
        run.exitCode = code ?? 1;
        run.endedAt = t.cloud.clock.now();
        ok();
      });
      child.on('error', (err) => {
        run.exitCode = 127;
        run.stderr += String(err);
        ok();
      });
    });

  t.cloud.ec2.onInstance((instanceId, what) => {
    if (what !== 'os-ready' || stopped) return;
    const tags = t.cloud.ec2.instanceTags(instanceId);
    if (tags.get(roleTag) !== Role.Client || tags.get(bootUnitTag) !== '1') return;
    if (mode(instanceId) === 'missing') return;
    const hostRoot = t.cloud.hostRoot(instanceId);
    // What the user data writes (README, lib: the construct's user data).
    const config: Record<string, string> = {
      VOLSD_SIGNAL_URL: signalUrl,
      VOLSD_REGION: region,
      VOLSD_MOUNT_PATH: '/srv/www',
      VOLSD_MOUNT_OPTIONS: 'noatime',
      VOLSD_IMDS_ENDPOINT: `http://127.0.0.1:${port}/imds/${instanceId}`,
      VOLSD_S3_ENDPOINT: t.s3Endpoint,
      ...configOverride?.(instanceId),
    };
    mkdirSync(join(hostRoot, 'etc', 'volsd'), { recursive: true });
    writeFileSync(
      join(hostRoot, 'etc', 'volsd', 'boot.env'),
      Object.entries(config)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(''),
    );
    const run: UnitRun = { instanceId, startedAt: t.cloud.clock.now(), stdout: '', stderr: '' };
    runs.set(instanceId, run);
    // While the unit runs, the twins' runs of SSM documents on this host take its flock too, as the
    // scripts would: see scriptRunsOn.
    const done = (async () => {
      const release = await scriptRunsOn(hostRoot);
      try {
        await unit(run, hostRoot);
      } finally {
        release();
      }
    })();
    running.add(done);
    void done.finally(() => running.delete(done));
  });

  return {
    signalUrl,
    runs,
    signals,
    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
    setUnitMode(m) {
      mode = typeof m === 'function' ? m : () => m;
    },
    setConfigOverride(fn) {
      configOverride = fn;
    },
    credentialsOf,
    injectEventFault(fault, times = 1) {
      pendingFaults[fault] += times;
    },
    setEventFaultRates(rates) {
      faultRates = { ...rates };
    },
    eventFaults,
    async stop() {
      stopped = true;
      t.cloud.events.off('event', onEvent);
      await Promise.race([
        (async () => {
          while (running.size > 0) await Promise.all([...running]);
        })(),
        new Promise((ok) => setTimeout(ok, 5000).unref()),
      ]);
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}
