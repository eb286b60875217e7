/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    roots: ['<rootDir>/test'],
    testMatch: ['**/*.test.ts'],
    transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: 'tsconfig.json' }] },
    testTimeout: 60_000,
    // Integration suites start the embedded host as a child process; give each suite its own worker.
    maxWorkers: 2,
};
