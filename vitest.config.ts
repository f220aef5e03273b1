import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
    // No global retry: a retry hides a flaky test. A test that must retry says why, with its own
    // `{ retry: n }`; a test that needs wall-clock slack waits on conditions instead of budgets.
  },
});
