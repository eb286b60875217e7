/**
 * The durable management API of a test host (`/runtime/webhooks/durabletask/...`), called as an operator or attacker
 * would, with the host's system key when the host has one (`<MESH_KEYS_DIR>/host-keys.json`, the hostkeys change).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { HostProcess } from './hostProcess';

export async function managementApi(
    host: Pick<HostProcess, 'origin' | 'dataDir'>,
    method: string,
    path: string,
    body?: unknown,
): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    try {
        const keys = JSON.parse(readFileSync(join(host.dataDir, 'keys', 'host-keys.json'), 'utf8')) as {
            masterKey?: string;
        };
        if (keys.masterKey) headers['x-functions-key'] = keys.masterKey;
    } catch {
        // no host keys on this branch: the route is open
    }
    return fetch(`${host.origin}/runtime/webhooks/durabletask${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
}
