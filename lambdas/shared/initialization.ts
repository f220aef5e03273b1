import {
  DescribeVolumeStatusCommand,
  type DescribeVolumeStatusCommandOutput,
  type EC2Client,
} from '@aws-sdk/client-ec2';

/** Where a volume stands in its EBS initialization, as DescribeVolumeStatus reports it. */
export interface InitializationReport {
  /** Every block is downloaded (or the volume never needed it: created empty). */
  initialized: boolean;
  /** Progress in percent, as reported (AWS refreshes it up to 5 minutes late). */
  progress: number;
  /** `default` or `provisioned-rate`; undefined for a volume created empty. */
  type?: string;
  /** Seconds left, reported for the provisioned rate only. */
  estimatedSeconds?: number;
}

/**
 * Reads a volume's initialization from DescribeVolumeStatus (`InitializationStatusDetails`: "Only
 * available for volumes created from snapshots"). No details means a volume created empty, which needs
 * no initialization; a volume the API does not know yet (eventual consistency) is reported not
 * initialized, so a caller polls again rather than handing it out.
 */
export async function readInitialization(ec2: EC2Client, volumeId: string): Promise<InitializationReport> {
  let out: DescribeVolumeStatusCommandOutput;
  try {
    out = await ec2.send(new DescribeVolumeStatusCommand({ VolumeIds: [volumeId] }));
  } catch (err) {
    if ((err as { name?: string }).name === 'InvalidVolume.NotFound')
      return { initialized: false, progress: 0 };
    throw err;
  }
  const item = out.VolumeStatuses?.find((s) => s.VolumeId === volumeId);
  if (!item) return { initialized: false, progress: 0 };
  const details = item.InitializationStatusDetails;
  if (!details) return { initialized: true, progress: 100 };
  const progress = details.Progress ?? 0;
  return {
    initialized: progress >= 100,
    progress,
    ...(details.InitializationType ? { type: details.InitializationType } : {}),
    ...(details.EstimatedTimeToCompleteInSeconds !== undefined
      ? { estimatedSeconds: details.EstimatedTimeToCompleteInSeconds }
      : {}),
  };
}
