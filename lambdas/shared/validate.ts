import { z } from 'zod';
import { InvalidInput } from './errors.js';

/** EC2 ids: a prefix and 8 or 17 lowercase hex digits. */
export const volumeIdSchema = z.string().regex(/^vol-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, 'malformed volume id');
export const instanceIdSchema = z.string().regex(/^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, 'malformed instance id');
export const snapshotIdSchema = z
  .string()
  .regex(/^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, 'malformed snapshot id');
/** An Availability Zone name such as us-east-1a (or a local-zone style suffix). */
export const azSchema = z.string().regex(/^[a-z]{2}(?:-[a-z0-9]+)+-\d[a-z](?:-[a-z0-9-]+)?$/, 'malformed AZ');
/** Pool names are used in tags, parameter paths and resource names: keep them short and plain. */
export const poolNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'pool name must be 1-32 of [a-z0-9-]');

/** Parses `value` with `schema`, turning a failure into a named InvalidInput with the field's name. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join('.') || what}: ${i.message}`).join('; ');
    throw new InvalidInput(`invalid ${what}: ${detail}`);
  }
  return result.data;
}
