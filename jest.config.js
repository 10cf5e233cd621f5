// Jest runs on tsc's output (dist/), in its ESM mode (see bin/dev).
// "unit" tests use in-memory seams and may run in parallel; "e2e" tests build
// namespaces, TUN devices and FUSE mounts and run one at a time.
export default {
  projects: [
    {
      displayName: 'unit',
      testMatch: ['<rootDir>/dist/test/unit/**/*.test.js'],
      testEnvironment: 'node',
      transform: {},
    },
    {
      displayName: 'e2e',
      testMatch: ['<rootDir>/dist/test/e2e/**/*.test.js'],
      // Removes namespaces and processes of earlier runs whose owner died.
      globalSetup: '<rootDir>/dist/test/bed/sweep.js',
      testEnvironment: 'node',
      transform: {},
    },
  ],
  testTimeout: 120000,
};
