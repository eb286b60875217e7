// ESLint flat config (ESLint 10, typescript-eslint 8). STYLE.md §1 (layering), §3 (orchestrator determinism), §8.
import { defineConfig, globalIgnores } from 'eslint/config';
import simpleImportSort from 'eslint-plugin-simple-import-sort';
import tseslint from 'typescript-eslint';

// ---------------------------------------------------------------------------------------------------------------
// Import restrictions, composed per folder. `@typescript-eslint/no-restricted-imports` replaces its options
// wholesale in each matching block (it does not merge), so every block lists all the patterns that apply to it.
// ---------------------------------------------------------------------------------------------------------------

/** Nothing in production imports the embedded host (DESIGN.md "Layout"; STYLE.md §1). */
const noLocalHost = {
    regex: '(^|/)local(/|$)',
    message:
        'local/ is the embedded single-machine host; production code must not import it (STYLE.md §1). ' +
        'Depend on a port in domain/ and let local/ wire its adapter in.',
};

/** domain/ is pure TypeScript: no SDKs, no adapters (STYLE.md §1). */
const domainPurity = [
    {
        group: ['@azure/*'],
        message: 'domain/ is pure TypeScript and never imports Azure SDKs (STYLE.md §1). Define a port here instead.',
    },
    {
        group: ['durable-functions', 'durable-functions/*'],
        message: 'domain/ never imports durable-functions (STYLE.md §1); orchestrators/ and entities/ call domain/.',
    },
    {
        regex: '(^|/)adapters(/|$)',
        message: 'domain/ defines ports; adapters/ implement them. domain/ must not import adapters/ (STYLE.md §1).',
    },
    noLocalHost,
];

const REPLAY = 'Orchestrators are replayed from history and must be deterministic (STYLE.md §3).';

/** Orchestrators replay: no I/O, SDKs, adapters or ambient state (STYLE.md §3). */
const orchestratorImports = [
    {
        group: [
            'fs',
            'fs/*',
            'node:*',
            'http',
            'https',
            'http2',
            'child_process',
            'net',
            'tls',
            'dgram',
            'dns',
            'os',
            'crypto',
            'perf_hooks',
            'timers',
            'timers/*',
            'worker_threads',
        ],
        message: `${REPLAY} Node built-ins do I/O or read clocks/entropy; do that work in an activity.`,
    },
    {
        regex: '(^|/)adapters(/|$)',
        message: `${REPLAY} Adapters do I/O; call them from an activity (<wf>.activities.ts), not the orchestrator.`,
    },
    {
        group: ['@azure/*', '!@azure/functions'],
        message: `${REPLAY} Azure SDK calls are I/O; put them behind a port and call it from an activity.`,
    },
    {
        // Types from @azure/functions (e.g. InvocationContext) are harmless; runtime values are not needed here.
        group: ['@azure/functions'],
        allowTypeImports: true,
        message: `${REPLAY} Only type imports from @azure/functions are allowed in an orchestrator.`,
    },
    noLocalHost,
];

const orchestratorGlobals = [
    ['setTimeout', 'Use ctx.df.createTimer(fireAt).'],
    ['setInterval', 'Use ctx.df.createTimer in a loop, or an eternal orchestration with continueAsNew.'],
    ['setImmediate', 'Yield a ctx.df task instead.'],
    ['fetch', 'HTTP is I/O: call an activity.'],
    ['process', 'No env or process state: pass config in the orchestration input or read it in an activity.'],
    ['crypto', 'Use ctx.df.newGuid(ctx.df.instanceId) for ids; hash in domain/ code called from an activity.'],
    ['performance', 'Use ctx.df.currentUtcDateTime.'],
    ['queueMicrotask', 'Yield a ctx.df task instead.'],
].map(([name, hint]) => ({ name, message: `${REPLAY} ${hint}` }));

const orchestratorProperties = [
    { object: 'Date', property: 'now', message: `${REPLAY} Use ctx.df.currentUtcDateTime.` },
    { object: 'Math', property: 'random', message: `${REPLAY} Randomness differs on replay; use an activity.` },
    { object: 'crypto', property: 'randomUUID', message: `${REPLAY} Use ctx.df.newGuid(ctx.df.instanceId).` },
    { object: 'globalThis', property: 'setTimeout', message: `${REPLAY} Use ctx.df.createTimer(fireAt).` },
    { object: 'globalThis', property: 'fetch', message: `${REPLAY} HTTP is I/O: call an activity.` },
    { object: 'globalThis', property: 'process', message: `${REPLAY} No env or process state in orchestrators.` },
    { object: 'globalThis', property: 'crypto', message: `${REPLAY} Use ctx.df.newGuid(ctx.df.instanceId).` },
];

const orchestratorSyntax = [
    {
        selector: "NewExpression[callee.name='Date'][arguments.length=0]",
        message: `${REPLAY} new Date() reads the wall clock; use ctx.df.currentUtcDateTime.`,
    },
    {
        selector: "CallExpression[callee.name='Date']",
        message: `${REPLAY} Date() reads the wall clock; use ctx.df.currentUtcDateTime.`,
    },
    {
        selector: ':function[async=true]',
        message: `${REPLAY} Orchestrators are sync generators (function*), never async; yield ctx.df tasks.`,
    },
    {
        selector: 'AwaitExpression',
        message: `${REPLAY} Do not await in an orchestrator; yield a ctx.df task.`,
    },
    {
        selector: 'ForOfStatement[await=true]',
        message: `${REPLAY} Do not await in an orchestrator; yield a ctx.df task.`,
    },
    {
        selector: "NewExpression[callee.name='Promise']",
        message: `${REPLAY} Promises escape the durable scheduler; yield ctx.df tasks (Task.all / Task.any).`,
    },
    {
        // Module state outlives one replay, so a replay can see a value the original execution did not.
        selector:
            "Program > VariableDeclaration[kind!='const'], Program > ExportNamedDeclaration > VariableDeclaration[kind!='const']",
        message: `${REPLAY} No mutable module state (let/var at top level); keep state in the orchestration input or an entity.`,
    },
];

export default defineConfig(
    globalIgnores(['dist/', 'node_modules/', 'coverage/', '.mesh-data/', 'infra/']),

    // --- TypeScript: type-aware rules for every file in tsconfig.json -----------------------------------------
    {
        files: ['**/*.ts'],
        extends: [tseslint.configs.recommendedTypeChecked],
        languageOptions: {
            parserOptions: {
                projectService: true,
                tsconfigRootDir: import.meta.dirname,
            },
        },
        plugins: { 'simple-import-sort': simpleImportSort },
        rules: {
            '@typescript-eslint/no-floating-promises': 'error',
            '@typescript-eslint/return-await': ['error', 'in-try-catch'],
            '@typescript-eslint/no-unused-vars': [
                'error',
                { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
            ],
            eqeqeq: ['error', 'always'],
            'simple-import-sort/imports': 'error',
            'simple-import-sort/exports': 'error',
        },
    },

    // --- Root config files (eslint.config.mjs, jest.config.js): not in tsconfig, linted without type info -----
    {
        files: ['*.js', '*.mjs', '*.cjs'],
        extends: [tseslint.configs.recommended, tseslint.configs.disableTypeChecked],
        plugins: { 'simple-import-sort': simpleImportSort },
        rules: {
            '@typescript-eslint/no-require-imports': 'off',
            eqeqeq: ['error', 'always'],
            'simple-import-sort/imports': 'error',
            'simple-import-sort/exports': 'error',
        },
    },

    // --- Layering (STYLE.md §1) ------------------------------------------------------------------------------
    {
        files: ['functions/**/*.ts', 'orchestrators/**/*.ts', 'entities/**/*.ts', 'adapters/**/*.ts'],
        rules: {
            '@typescript-eslint/no-restricted-imports': ['error', { patterns: [noLocalHost] }],
        },
    },
    {
        files: ['domain/**/*.ts'],
        rules: {
            '@typescript-eslint/no-restricted-imports': ['error', { patterns: domainPurity }],
        },
    },

    // --- Orchestrators: deterministic by construction (STYLE.md §3) ------------------------------------------
    {
        files: ['**/*.orchestrator.ts', 'test/fixtures/**/*.orchestrator.ts'],
        rules: {
            'no-restricted-globals': ['error', ...orchestratorGlobals],
            'no-restricted-properties': ['error', ...orchestratorProperties],
            'no-restricted-syntax': ['error', ...orchestratorSyntax],
            '@typescript-eslint/no-restricted-imports': ['error', { patterns: orchestratorImports }],
        },
    },

    // --- Tests: jest mocks and fixtures are loosely typed by nature -----------------------------------------
    {
        files: ['test/**/*.ts'],
        rules: {
            '@typescript-eslint/no-unsafe-argument': 'off',
            '@typescript-eslint/no-unsafe-assignment': 'off',
            '@typescript-eslint/no-unsafe-call': 'off',
            '@typescript-eslint/no-unsafe-member-access': 'off',
            '@typescript-eslint/no-unsafe-return': 'off',
            '@typescript-eslint/unbound-method': 'off',
            // API tests read JSON answers whose shape is what they assert.
            '@typescript-eslint/no-explicit-any': 'off',
        },
    },
);
