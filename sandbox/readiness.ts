/**
 * What each instance served at the moment it went InService, compared with the push bucket at that
 * same moment: the ground truth of "never serve stale content" (docs/sandbox.md, "Invariants").
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type S3rver from 's3rver';
import { DocumentName } from '../lambdas/shared/documents.js';
import { announceMultiDeletes } from './push-wiring.js';
import type { Cloud } from './sim/cloud.js';
import { bucketTreeNow, type ContentTree, evidenceFor, servedTree, treeDifferences } from './truth.js';

/** Where the web instances mount their volume (the workflows' default MOUNT_PATH). */
export const webMountPath = 'srv/www';

/** One instance entering service. */
export interface ReadyRecord {
  instanceId: string;
  groupName: string;
  /** Modelled second it went InService. */
  at: number;
  /** Where its served tree differed from the bucket then (`missing|changed|extra <path>`); empty: current. */
  differences: string[];
  /**
   * A push pipeline is wired and either an object write to the bucket was still unanswered, or the bucket
   * had changed after its last fan-out went out (the last Volsd-Sync sent by tag), or that fan-out went out
   * while this instance was launching (it reaches the instance by its tag): the difference is the
   * pipeline's to deliver, not the acquire's. Its delivery is checked at the end
   * (`inServiceHasCurrentVolume`). Not caught so: a fan-out whose run on the instance came before the
   * mount, when a later push repairs the instance before the end. Without a pipeline nothing is ever in
   * flight: a test that changes the bucket bumps the generation itself, as the fan-out would.
   */
  pushInFlight: boolean;
  /** Per differing path, what the bucket's store and the host held at that moment (`evidenceFor`). */
  evidence?: Record<string, { store: string[]; served: string }>;
}

/**
 * Watches every group member entering InService (the simulator calls back synchronously at that
 * moment) and records how its served tree compared with the bucket then.
 */
export class ReadinessWatch {
  readonly records: ReadyRecord[] = [];
  /** Modelled second of the last change to an object of the bucket (s3rver's object events). */
  private lastBucketChange = Number.NEGATIVE_INFINITY;
  /** Object writes to the bucket that S3 has received and not yet answered. */
  private writesInProgress = 0;
  private pipeline = false;

  constructor(
    cloud: Cloud,
    s3: { server: S3rver; directory: string },
    private readonly bucket: string,
    private readonly prefix = 'live/',
  ) {
    // DeleteObjects is announced as S3 announces it (one event per key), as in the push pipeline.
    announceMultiDeletes();
    s3.server.on('event', (event: { Records?: { s3?: { bucket?: { name?: string } } }[] }) => {
      if ((event.Records ?? []).some((r) => r.s3?.bucket?.name === bucket))
        this.lastBucketChange = cloud.clock.now();
    });
    // A write S3 has received but not answered may already be visible in the store (s3rver renames the
    // object into place, then writes its metadata, then announces it), and its event is still to come:
    // the push is in flight from the moment the write arrives.
    const http = (s3.server as unknown as { httpServer?: Server }).httpServer;
    http?.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!isObjectWrite(req.method, req.url, bucket, req.headers.host)) return;
      this.writesInProgress++;
      let answered = false;
      const end = () => {
        if (answered) return;
        answered = true;
        this.writesInProgress--;
      };
      res.on('finish', end);
      res.on('close', end);
    });
    cloud.autoscaling.onInService((instanceId, groupName) => {
      let differences: string[];
      try {
        differences = treeDifferences(
          servedTree(cloud.hostRoot(instanceId), webMountPath),
          this.bucketTree(s3.directory),
        );
      } catch (err) {
        // The watch never changes what the simulator does: an unreadable tree is recorded, not thrown.
        differences = [`unreadable: ${(err as Error).message}`];
      }
      const lastPush = cloud.ssm.lastSentByTag(DocumentName.Sync) ?? Number.NEGATIVE_INFINITY;
      const launchedAt =
        cloud
          .lifecycleActions()
          .find((a) => a.instanceId === instanceId && a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING')
          ?.startedAt ?? Number.POSITIVE_INFINITY;
      const evidence: Record<string, { store: string[]; served: string }> = {};
      for (const d of differences) {
        const path = d.replace(/^(missing|changed|extra) /, '');
        if (path === d) continue;
        try {
          evidence[path] = evidenceFor(
            s3.directory,
            bucket,
            `${prefix}${path}`,
            cloud.hostRoot(instanceId),
            webMountPath,
            path,
          );
        } catch {}
      }
      this.records.push({
        instanceId,
        groupName,
        at: cloud.clock.now(),
        differences,
        ...(Object.keys(evidence).length > 0 ? { evidence } : {}),
        pushInFlight:
          this.pipeline &&
          (this.writesInProgress > 0 || this.lastBucketChange > lastPush || lastPush >= launchedAt),
      });
    });
  }

  /** Object writes to the bucket received and not yet answered (for tests). */
  get writesPending(): number {
    return this.writesInProgress;
  }

  /** Called once the push pipeline is wired (sandbox/push-wiring.ts): from now on pushes can be in flight. */
  pushPipelineWired(): void {
    this.pipeline = true;
  }

  private bucketTree(directory: string): ContentTree {
    return bucketTreeNow(directory, this.bucket, this.prefix);
  }

  /** Instances that went InService behind the bucket with no push in flight to excuse it. */
  staleAtReady(groupName?: string): ReadyRecord[] {
    return this.records.filter(
      (r) =>
        (groupName === undefined || r.groupName === groupName) && r.differences.length > 0 && !r.pushInFlight,
    );
  }
}

/**
 * A request that writes an object of `bucket`: `PUT|DELETE /bucket/key`, `POST /bucket?delete` or a
 * multipart upload's `POST /bucket/key?...`, path-style or virtual-hosted (`Host: bucket.<endpoint>`);
 * bucket configuration (`PUT /bucket?...`) is not.
 */
export function isObjectWrite(
  method: string | undefined,
  url: string | undefined,
  bucket: string,
  host = '',
): boolean {
  if (method !== 'PUT' && method !== 'DELETE' && method !== 'POST') return false;
  const [rawPath = '', query = ''] = (url ?? '').split('?', 2);
  const path = host.startsWith(`${bucket}.`) ? `/${bucket}${rawPath}` : rawPath;
  if (path.startsWith(`/${bucket}/`) && path.length > bucket.length + 2) return true;
  return (
    method === 'POST' && (path === `/${bucket}` || path === `/${bucket}/`) && /(^|&)delete(=|&|$)/.test(query)
  );
}
