/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    roots: ['<rootDir>/test'],
    testMatch: ['**/*.test.ts'],
    transform: {
        '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
        // jose v6 ships ESM only. Node >= 20.19 require()s it natively, but jest's module runtime cannot
        // (before Node 24.9), so tests compile it to CommonJS.
        '^.+/node_modules/jose/.+\\.js$': [
            'ts-jest',
            { isolatedModules: true, tsconfig: { allowJs: true, module: 'commonjs', target: 'ES2022' } },
        ],
    },
    transformIgnorePatterns: ['/node_modules/(?!jose/)'],
    testTimeout: 60_000,
    // Integration suites start the embedded host as a child process; give each suite its own worker.
    maxWorkers: 2,
};
