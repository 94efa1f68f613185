import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Real QEMU and multi-process tests need time; none asserts on it.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests share /dev/shm and spawn QEMU; two cores do not want parallel files fighting.
    fileParallelism: false,
    pool: 'forks',
  },
});
