import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const lib = join(import.meta.dirname, '..', '..', 'lib');
const imports = readdirSync(lib)
  .filter((f) => f.endsWith('.ts'))
  .flatMap((file) =>
    [...readFileSync(join(lib, file), 'utf8').matchAll(/^(?:import|export)[^;]*?from '([^']+)'/gms)].map(
      (m) => ({ file, from: m[1] ?? '' }),
    ),
  );

describe('lib/ layering', () => {
  it('imports from lambdas/ only the shared code, never a handler module', () => {
    const intoHandlers = imports.filter(
      (i) => i.from.startsWith('../lambdas/') && !i.from.startsWith('../lambdas/shared/'),
    );
    expect(intoHandlers).toEqual([]);
    expect(imports.some((i) => i.from.startsWith('../lambdas/shared/'))).toBe(true);
  });

  it('has no import circle through the pool construct: only the app stack imports it', () => {
    expect(imports.filter((i) => i.from === './volsd-pool.js').map((i) => i.file)).toEqual([
      'volsd-stack.ts',
    ]);
  });
});
