/**
 * Starts the embedded host as a child process (`node dist/local/main.js`, what `npm start` runs after
 * building) on a free port, so tests talk to it only over real HTTP and can kill -9 it.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

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

export async function startHostProcess(
    opts: { dataDir?: string; appMain?: string; env?: Record<string, string>; nodeArgs?: string[] } = {},
): Promise<HostProcess> {
    const dataDir = opts.dataDir ?? tempDataDir();
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), join(ROOT, 'dist/local/main.js')], {
        cwd: ROOT,
        env: {
            ...process.env,
            PORT: '0',
            MESH_DATA_DIR: dataDir,
            MESH_KEYS_DIR: join(dataDir, 'keys'),
            MESH_LOG_INFO: '0',
            ...(opts.appMain ? { MESH_APP_MAIN: opts.appMain } : {}),
            ...opts.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
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
