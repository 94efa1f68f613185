import { configDefaults, defineConfig } from 'vitest/config';

// Test tiers are chosen by file name, never by guessing:
//   test/**/*-qemu.test.ts   runs real QEMU (and guests)
//   test/**/*-root.test.ts   needs root (switches uid)
//   everything else          the unit tier: neither root nor QEMU
// CXL_MHD_TIER=unit (`make unit`) leaves out the first two; unset runs all.
const NEEDS_QEMU = 'test/**/*-qemu.test.ts';
const NEEDS_ROOT = 'test/**/*-root.test.ts';
const tier = process.env.CXL_MHD_TIER;
if (tier !== undefined && tier !== '' && tier !== 'unit') throw new Error(`CXL_MHD_TIER=${tier}: only "unit" (or unset) is known`);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: tier === 'unit' ? [...configDefaults.exclude, NEEDS_QEMU, NEEDS_ROOT] : configDefaults.exclude,
    globalSetup: ['test/global-setup.ts'],
    // Hang guards, not speed checks: real QEMU and multi-process tests need
    // time and none asserts on it. These cover work of a fixed size (hooks only
    // start, stop and clean up heads); a test whose work grows with a count
    // (kill points, fuzz frames, CLI runs) passes its own limit derived from
    // that count, which also holds under `make soak`'s larger counts.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // QEMU tests share /dev/shm and the two cores: one file at a time. The
    // unit tier has no QEMU and every pool name carries its process id, so
    // its files run side by side (the tier's point is a quick answer).
    fileParallelism: tier === 'unit',
    // Vitest's default leaves one core idle; the unit tier wants both.
    ...(tier === 'unit' ? { maxWorkers: 2 } : {}),
    pool: 'forks',
  },
});
