/**
 * Starts the embedded host as a child process (`node dist/local/main.js`, what `npm start` runs after
 * building) on a free port, so tests talk to it only over real HTTP and can kill -9 it.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { type CosmosServer, startCosmosServer } from './cosmosServer';
import type { StoreKind } from './stores';

/** The project root, from test/support or its compiled copy under dist/. */
export const ROOT = projectRoot(__dirname);

function projectRoot(from: string): string {
    let dir = from;
    while (!existsSync(join(dir, 'host.json'))) {
        const up = dirname(dir);
        if (up === dir) throw new Error(`no host.json above ${from}`);
        dir = up;
    }
    return dir;
}
export const FIXTURE_APP = 'dist/test/fixtures/durableApp/**/*.js';

export interface HostProcess {
    origin: string;
    child: ChildProcess;
    dataDir: string;
    output: () => string;
    /** The Cosmos-API server the host's store is on (`store: 'cosmos'`). */
    cosmos?: CosmosServer;
    stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Hosts still running when the test process exits (a timed-out test) are killed with it, never orphaned. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
});

export function tempDataDir(prefix = 'mesh-test-'): string {
    return mkdtempSync(join(tmpdir(), prefix));
}

export interface HostOptions {
    dataDir?: string;
    appMain?: string;
    env?: Record<string, string>;
    nodeArgs?: string[];
    /**
     * The app's store. `cosmos` starts a local Cosmos-API server (in this test process, on loopback) unless `cosmos`
     * passes one in; it is stopped with the host when the host started it.
     */
    store?: StoreKind;
    cosmos?: CosmosServer;
    /** The host's working directory (default the project root): where default keys and local.settings.json are found. */
    cwd?: string;
}

export async function startHostProcess(opts: HostOptions = {}): Promise<HostProcess> {
    const dataDir = opts.dataDir ?? tempDataDir();
    const ownCosmos = opts.store === 'cosmos' && !opts.cosmos ? await startCosmosServer() : undefined;
    const cosmos = opts.cosmos ?? ownCosmos;
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), join(ROOT, 'dist/local/main.js')], {
        cwd: opts.cwd ?? ROOT,
        env: {
            ...process.env,
            PORT: '0',
            MESH_DATA_DIR: dataDir,
            MESH_KEYS_DIR: join(dataDir, 'keys'),
            MESH_LOG_INFO: '0',
            // Tests poll hard; the rate-limit tests turn the limits on.
            MESH_RATE_LIMIT_USER: 'off',
            MESH_RATE_LIMIT_TEAM: 'off',
            ...(opts.appMain ? { MESH_APP_MAIN: opts.appMain } : {}),
            ...(cosmos
                ? {
                      MESH_STORE: 'cosmos',
                      COSMOS_ENDPOINT: cosmos.endpoint,
                      COSMOS_KEY: cosmos.key,
                      // One database per data dir: a restarted host (same data dir) finds its data again.
                      COSMOS_DATABASE: `mesh-${basename(dataDir)}`,
                  }
                : {}),
            ...opts.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (ownCosmos) child.once('exit', () => void ownCosmos.close());
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const origin = await new Promise<string>((resolveOrigin, reject) => {
        const timer = setTimeout(() => reject(new Error(`host did not start in 30 s:\n${out}`)), 30_000);
        const onData = (): void => {
            const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolveOrigin(m[1]!);
            }
        };
        child.stdout.on('data', onData);
        child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`host exited with ${code} before listening:\n${out}`));
        });
    });
    return {
        origin,
        child,
        dataDir,
        output: () => out,
        ...(cosmos ? { cosmos } : {}),
        stop(signal: NodeJS.Signals = 'SIGTERM') {
            return new Promise((res) => {
                if (child.exitCode !== null || child.signalCode !== null) return res(child.exitCode);
                child.once('exit', (code) => res(code));
                child.kill(signal);
            });
        },
    };
}

export async function json<T = unknown>(
    origin: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
): Promise<{ status: number; body: T; headers: Headers }> {
    const r = await fetch(origin + path, {
        method,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: (text ? JSON.parse(text) : undefined) as T, headers: r.headers };
}

export async function waitUntil<T>(
    fn: () => Promise<T | undefined | false>,
    what: string,
    timeoutMs = 20_000,
    everyMs = 50,
): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: T | undefined | false;
    while (Date.now() < deadline) {
        last = await fn();
        if (last) return last;
        await new Promise((r) => setTimeout(r, everyMs));
    }
    throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
}
