import { z } from 'zod';
import { poolNameSchema } from './validate.js';

/**
 * Environment-variable configuration of the Lambda functions. Each handler reads and validates the
 * part it needs once, at cold start (`loadConfig(schema)`), and fails loudly when something is missing.
 */
export const env = {
  tableName: z.string().min(3),
  poolName: poolNameSchema,
  arn: z.string().regex(/^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$/, 'not an ARN'),
  optionalArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$/, 'not an ARN')
    .optional(),
  csv: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  seconds: (fallback: number) => z.coerce.number().int().positive().default(fallback),
};

/** Parses `process.env` (or `source`) with `shape`; a failure names every bad variable. */
export function loadConfig<S extends z.ZodRawShape>(
  shape: S,
  source: Record<string, string | undefined> = process.env,
): z.infer<z.ZodObject<S>> {
  const result = z.object(shape).safeParse(source);
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`configuration error: ${detail}`);
  }
  return result.data;
}

/** Memoises a factory: the first call builds, later calls return the same value (cold-start init). */
export function once<T>(factory: () => T): () => T {
  let value: { v: T } | undefined;
  return () => {
    value ??= { v: factory() };
    return value.v;
  };
}
