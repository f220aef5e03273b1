import type { z } from 'zod';
import { fanOutEnv } from '../fanout/config.js';
import { loadConfig } from '../shared/config.js';

/**
 * Configuration only sync-all reads, beside the workflow configuration: the fan-out's rate control of
 * the tag-targeted command (the same variables, set from the same pool settings, so a sync-all loads
 * the fleet exactly as a push does).
 */
export const syncAllConfigShape = {
  FANOUT_MAX_CONCURRENCY: fanOutEnv.FANOUT_MAX_CONCURRENCY,
  FANOUT_MAX_ERRORS: fanOutEnv.FANOUT_MAX_ERRORS,
  FANOUT_DELIVERY_TIMEOUT: fanOutEnv.FANOUT_DELIVERY_TIMEOUT,
};

/** Sync-all's own configuration. */
export type SyncAllConfig = z.infer<z.ZodObject<typeof syncAllConfigShape>>;

/** Reads sync-all's own configuration from `source` (default `process.env`); throws naming bad variables. */
export const loadSyncAllConfig = (source?: Record<string, string | undefined>): SyncAllConfig =>
  loadConfig(syncAllConfigShape, source);
