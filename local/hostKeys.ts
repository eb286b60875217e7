/**
 * The embedded host's keys, as the Functions host keeps them: a function key for `authLevel: function` routes and a
 * master (system) key for the host-internal routes (the Durable management API, anything under `/runtime/` or
 * `/admin/`). They live in `<MESH_KEYS_DIR>/host-keys.json`, not with the app's state, created once (mode 0600),
 * race-safe across processes. A `host-keys.json` left in the data dir by an older build is moved there.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

import { loadOrCreateKeyFile } from '../adapters/secrets/keyFile';

export const HOST_KEYS_FILE = 'host-keys.json';

export interface HostKeys {
    /** Opens `authLevel: function` routes (so does the master key). */
    readonly functionKey: string;
    /** The system key: host-internal routes and `authLevel: admin` routes, and what the DurableClient URLs carry. */
    readonly masterKey: string;
}

/**
 * Loads `<keysDir>/host-keys.json`, creating it if absent. An old `<dataDir>/host-keys.json` (function key only) is
 * taken over: its function key is kept (callers that know it keep working), a master key is added, and the old file
 * is deleted once the new one exists.
 */
export async function loadOrCreateHostKeys(keysDir: string, dataDir?: string): Promise<HostKeys> {
    const file = join(keysDir, HOST_KEYS_FILE);
    const legacy = dataDir !== undefined && join(dataDir, HOST_KEYS_FILE) !== file ? join(dataDir, HOST_KEYS_FILE) : '';
    const keys = await loadOrCreateKeyFile(
        file,
        () => {
            const old = legacy ? readLegacy(legacy) : {};
            const created: HostKeys = {
                functionKey: old.functionKey ?? newKey(),
                masterKey: old.masterKey ?? newKey(),
            };
            return `${JSON.stringify(created, null, 2)}\n`;
        },
        parseHostKeys,
    );
    if (legacy) {
        try {
            unlinkSync(legacy);
        } catch (e: unknown) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
    }
    return keys;
}

/** Whether `given` is `expected`, compared in constant time (for equal lengths; the length itself is not secret). */
export function keyMatches(expected: string, given: string | null | undefined): boolean {
    if (!given) return false;
    const a = Buffer.from(expected);
    const b = Buffer.from(given);
    return a.length === b.length && timingSafeEqual(a, b);
}

function newKey(): string {
    return randomBytes(32).toString('base64url');
}

function readLegacy(file: string): Partial<HostKeys> {
    let text: string;
    try {
        text = readFileSync(file, 'utf8');
    } catch (e: unknown) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
        throw e;
    }
    const old = JSON.parse(text) as Partial<Record<keyof HostKeys, unknown>>;
    return {
        ...(isKey(old.functionKey) ? { functionKey: old.functionKey } : {}),
        ...(isKey(old.masterKey) ? { masterKey: old.masterKey } : {}),
    };
}

/** The keys a key file holds. A broken file is an error, never replaced. */
function parseHostKeys(text: string, file: string): HostKeys {
    let v: Partial<Record<keyof HostKeys, unknown>> | undefined;
    try {
        v = JSON.parse(text) as Partial<Record<keyof HostKeys, unknown>>;
    } catch {
        v = undefined;
    }
    if (!v || !isKey(v.functionKey) || !isKey(v.masterKey))
        throw new Error(`${file} does not hold a functionKey and a masterKey; delete it to create new keys`);
    return Object.freeze({ functionKey: v.functionKey, masterKey: v.masterKey });
}

function isKey(v: unknown): v is string {
    return typeof v === 'string' && /^[A-Za-z0-9_-]{16,}$/.test(v);
}
