import { LaunchHistory } from './adaptive-sizing.js';
import { dynamoDoc } from './clients.js';
import { nowMs } from './time.js';
import type { WorkflowConfig } from './workflow-config.js';

/** Counts an acquire's launch in its AZ's hour for adaptive sizing, once per instance (nothing when it is off). */
export async function recordLaunch(
  config: WorkflowConfig,
  launch: { pool: string; az: string; instanceId: string },
  history = new LaunchHistory(dynamoDoc, config.TABLE_NAME),
): Promise<void> {
  if (!config.ADAPTIVE_SIZING) return;
  await history.recordLaunch(launch.pool, launch.az, nowMs(), launch.instanceId);
}
