import {
  type _InstanceType,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { InstanceGone } from './errors.js';
import { poolTag, Role, roleTag } from './tags.js';

/** The running sync worker of a pool in an AZ (tagged `volsd:pool` and `volsd:role=worker`). */
export async function findWorker(ec2: EC2Client, pool: string, az: string): Promise<Instance> {
  const out = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${poolTag}`, Values: [pool] },
        { Name: `tag:${roleTag}`, Values: [Role.Worker] },
        { Name: 'availability-zone', Values: [az] },
        { Name: 'instance-state-name', Values: ['running'] },
      ],
    }),
  );
  const workers = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  // Two running workers happen while the worker group replaces one: take the newest.
  workers.sort((a, b) => (b.LaunchTime?.getTime() ?? 0) - (a.LaunchTime?.getTime() ?? 0));
  const worker = workers[0];
  if (!worker?.InstanceId) throw new InstanceGone(`pool ${pool} has no running sync worker in ${az}`);
  return worker;
}

/** EBS attachments the instance type allows (root included), or `fallback` when EC2 does not say. */
export async function attachmentLimit(
  ec2: EC2Client,
  instanceType: string | undefined,
  fallback = 27,
): Promise<number> {
  if (!instanceType) return fallback;
  const out = await ec2.send(
    new DescribeInstanceTypesCommand({ InstanceTypes: [instanceType as _InstanceType] }),
  );
  const ebs = out.InstanceTypes?.[0]?.EbsInfo as { MaximumEbsAttachments?: number } | undefined;
  return ebs?.MaximumEbsAttachments ?? fallback;
}
