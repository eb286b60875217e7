/**
 * Loads the app as the Azure Functions Node worker does: every file matched by package.json#main (a glob),
 * in order, with `@azure/functions-core` provided so each registration reaches this host.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import fg from 'fast-glob';

import { FunctionRegistry, installFunctionsCore } from './functionsCore';

export interface LoadedApp {
    registry: FunctionRegistry;
    files: string[];
}

export function loadApp(root: string, log: (level: string, message: string) => void, mainOverride?: string): LoadedApp {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main?: string };
    // One glob, as the worker takes it; an override may list several separated by ';'.
    const patterns = (mainOverride ?? pkg.main ?? 'index.js').split(';').map((p) => p.trim());
    const files = fg.sync(patterns, { cwd: root, absolute: true, onlyFiles: true }).sort();
    if (!files.length)
        throw new Error(`No app files match '${patterns.join(', ')}' under ${root}: run 'npm run build' first.`);
    const registry = new FunctionRegistry();
    installFunctionsCore(registry, log);
    // The worker require()s each file; so does this host (CommonJS output, as package.json#main says).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    for (const file of files) require(resolve(file));
    return { registry, files };
}
