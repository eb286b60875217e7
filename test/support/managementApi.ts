/**
 * The durable management API of a test host (`/runtime/webhooks/durabletask/...`), called as an operator or attacker
 * holding the host's system key would.
 */
import { systemKeyHeaders } from './hostKeys';
import type { HostProcess } from './hostProcess';

export async function managementApi(
    host: Pick<HostProcess, 'origin' | 'dataDir'>,
    method: string,
    path: string,
    body?: unknown,
): Promise<Response> {
    return fetch(`${host.origin}/runtime/webhooks/durabletask${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...systemKeyHeaders(host) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
}
