import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
    // The sandbox's end-to-end tests run real scripts and the AWS CLI at wall speed beside a modelled
    // clock; on a loaded 2-core machine a wait budget can run out. One retry absorbs that; a real defect
    // fails both attempts.
    retry: 1,
  },
});
