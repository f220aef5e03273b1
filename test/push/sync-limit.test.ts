import { describe, expect, it } from 'vitest';
import { syncMaxObjectBytes } from '../../lambdas/shared/commands.js';
import { defaultMaxObjectBytes } from '../../lambdas/shared/documents.js';

// The workflows (acquire, replenish, sync-all) send Volsd-Sync the pool's push limit too: a sync they
// send must skip what the fan-out refused, or a refused object would arrive by another path.
describe('syncMaxObjectBytes', () => {
  it("takes the pool's push limit from PUSH_MAX_OBJECT_BYTES", () => {
    expect(syncMaxObjectBytes({ PUSH_MAX_OBJECT_BYTES: '1048576' })).toBe('1048576');
  });

  it("falls back to the document's default (the pool's default limit, 1 GiB) when unset", () => {
    expect(syncMaxObjectBytes({})).toBe(String(defaultMaxObjectBytes));
    expect(defaultMaxObjectBytes).toBe(1024 ** 3);
  });

  it('refuses a value that is not a positive integer', () => {
    expect(() => syncMaxObjectBytes({ PUSH_MAX_OBJECT_BYTES: '0' })).toThrow(/PUSH_MAX_OBJECT_BYTES/);
    expect(() => syncMaxObjectBytes({ PUSH_MAX_OBJECT_BYTES: '1GiB' })).toThrow(/PUSH_MAX_OBJECT_BYTES/);
  });
});
