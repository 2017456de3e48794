import { defineConfig } from 'vitest/config';

// Tests start real redis-server, redis-sentinel, etcd and kube-apiserver processes on a
// 2-core machine: files run one at a time and get generous timeouts; speed is measured
// by the benchmarks, never asserted here.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
