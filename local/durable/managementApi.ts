/**
 * The Durable Functions HTTP management API, as the real DurableClient calls it: the "rpc" paths under
 * /durabletask/ and the public webhook paths under /runtime/webhooks/durabletask/ (same verbs and shapes).
 * Status codes follow the extension's: 202 accepted, 404 unknown instance, 410 instance already finished.
 */
import { randomUUID } from 'node:crypto';

import { keyMatches } from '../hostKeys';
import { DurableClientData } from '../invoke';
import { ClientError, DurableEngine } from './engine';
import { InstanceQuery, RuntimeStatus } from './store';

const PREFIXES = ['/durabletask/', '/runtime/webhooks/durabletask/'];

export function isManagementPath(path: string): boolean {
    return PREFIXES.some((p) => path.startsWith(p));
}

/**
 * Paths the Functions host keeps for itself (its management API, `/runtime/...`, `/admin/...`): only the system key
 * opens them. Compared on the decoded, lower-cased path, so no spelling of a reserved prefix slips past the check.
 */
const INTERNAL = /^\/(runtime|admin|durabletask)(\/|$)/;

export function isHostInternalPath(path: string): boolean {
    let decoded: string;
    try {
        decoded = decodeURIComponent(path);
    } catch {
        decoded = path;
    }
    return INTERNAL.test(decoded.replace(/\/{2,}/g, '/').toLowerCase()) || INTERNAL.test(path.toLowerCase());
}

/**
 * The 401 for a host-internal request without the system key (`code` query parameter, else `x-functions-key`
 * header, as the Functions host reads them), in the product envelope; undefined when the key is right. A bearer token
 * is not a key. The comparison takes constant time.
 */
export function refuseWithoutSystemKey(
    systemKey: string,
    url: URL,
    headerKey: string | null | undefined,
): ManagementResponse | undefined {
    if (keyMatches(systemKey, url.searchParams.get('code') ?? headerKey)) return undefined;
    return {
        status: 401,
        body: {
            error_code: 'UNAUTHENTICATED',
            message:
                "This host-internal route requires the host's system key (code query parameter or x-functions-key header).",
            correlationID: randomUUID(),
            data: null,
        },
    };
}

export interface ManagementResponse {
    status: number;
    body?: unknown;
    headers?: Record<string, string>;
}

const STATUSES: RuntimeStatus[] = [
    'Pending',
    'Running',
    'Completed',
    'ContinuedAsNew',
    'Failed',
    'Terminated',
    'Suspended',
];

export async function handleManagementApi(
    engine: DurableEngine,
    client: DurableClientData,
    method: string,
    url: URL,
    body: Buffer,
): Promise<ManagementResponse> {
    const prefix = PREFIXES.find((p) => url.pathname.startsWith(p))!;
    const parts = url.pathname.slice(prefix.length).split('/').map(decode);
    const q = url.searchParams;
    try {
        const [resource, a, b, c] = parts;
        if (resource === 'orchestrators' && method === 'POST' && a) {
            const input = body.length ? (JSON.parse(body.toString('utf8')) as unknown) : undefined;
            const id = await engine.startNew(a, b || undefined, input);
            const links = payload(client, id);
            return { status: 202, body: links, headers: { location: links.statusQueryGetUri ?? '' } };
        }
        if (resource === 'instances') {
            if (!a) {
                if (method === 'GET') return list(engine, q);
                if (method === 'DELETE') return await purgeBy(engine, q);
            } else if (!b) {
                if (method === 'GET') {
                    const status = engine.getStatus(a, {
                        showHistory: q.get('showHistory') === 'true',
                        showInput: q.get('showInput') !== 'false',
                    });
                    if (!status) return { status: 404, body: { message: `No instance with ID '${a}' found.` } };
                    const code =
                        status.runtimeStatus === 'Completed'
                            ? 200
                            : status.runtimeStatus === 'Failed' || status.runtimeStatus === 'Terminated'
                              ? 400
                              : 202;
                    return { status: code, body: status };
                }
                if (method === 'DELETE') {
                    const n = await engine.purge(a);
                    return n
                        ? { status: 200, body: { instancesDeleted: n } }
                        : { status: 404, body: { message: `No instance with ID '${a}' found.` } };
                }
            } else if (method === 'POST') {
                const reason = q.get('reason') ?? '';
                switch (b) {
                    case 'raiseEvent':
                        if (!c) break;
                        await engine.raiseEvent(
                            a,
                            c,
                            body.length ? (JSON.parse(body.toString('utf8')) as unknown) : null,
                        );
                        return { status: 202 };
                    case 'terminate':
                        await engine.terminate(a, reason);
                        return { status: 202 };
                    case 'suspend':
                        await engine.suspend(a, reason);
                        return { status: 202 };
                    case 'resume':
                        await engine.resume(a, reason);
                        return { status: 202 };
                    case 'rewind':
                    case 'restart':
                        return { status: 501, body: { message: `${b} is not supported by the embedded host.` } };
                }
            }
        }
        if (resource === 'entities' && a && b !== undefined) {
            const entityId = `@${a.toLowerCase()}@${b}`;
            if (method === 'POST') {
                await engine.signalEntity(entityId, q.get('op') ?? '', body.length ? body.toString('utf8') : undefined);
                return { status: 202 };
            }
            if (method === 'GET') {
                const e = engine.readEntity(entityId);
                return e.exists
                    ? { status: 200, body: e.state }
                    : { status: 404, body: { message: `Entity ${entityId} does not exist.` } };
            }
        }
        return { status: 404, body: { message: `Unknown management API call: ${method} ${url.pathname}` } };
    } catch (e: unknown) {
        if (e instanceof ClientError) return { status: e.status, body: { message: e.message } };
        if (e instanceof SyntaxError) return { status: 400, body: { message: 'The request body is not valid JSON.' } };
        throw e;
    }
}

function filterFrom(q: URLSearchParams): InstanceQuery {
    const statuses = (q.get('runtimeStatus') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((s) => STATUSES.find((x) => x.toLowerCase() === s.toLowerCase()))
        .filter((s): s is RuntimeStatus => s !== undefined);
    const time = (name: string): number | undefined => {
        const v = q.get(name);
        return v ? Date.parse(v) : undefined;
    };
    return {
        statuses: statuses.length ? statuses : undefined,
        createdFrom: time('createdTimeFrom'),
        createdTo: time('createdTimeTo'),
        prefix: q.get('instanceIdPrefix') ?? undefined,
        top: q.get('top') ? Number(q.get('top')) : undefined,
    };
}

function list(engine: DurableEngine, q: URLSearchParams): ManagementResponse {
    const filter = filterFrom(q);
    const after = q.get('continuationToken') ?? undefined;
    const { instances, continuation } = engine.query({ ...filter, after }, q.get('showInput') !== 'false');
    return {
        status: 200,
        body: instances,
        headers: continuation ? { 'x-ms-continuation-token': continuation } : undefined,
    };
}

async function purgeBy(engine: DurableEngine, q: URLSearchParams): Promise<ManagementResponse> {
    const filter = filterFrom(q);
    let deleted = 0;
    for (;;) {
        const { instances, continuation } = engine.query({ ...filter, top: 1000 }, false);
        for (const i of instances) deleted += await engine.purge(i.instanceId);
        if (!continuation || !instances.length) break;
    }
    return deleted
        ? { status: 200, body: { instancesDeleted: deleted } }
        : { status: 404, body: { instancesDeleted: 0 } };
}

function payload(client: DurableClientData, id: string): Record<string, string> {
    const m = client.managementUrls;
    const sub = (s: string | undefined): string => (s ?? '').replace('INSTANCEID', encodeURIComponent(id));
    return {
        id,
        statusQueryGetUri: sub(m.statusQueryGetUri),
        sendEventPostUri: sub(m.sendEventPostUri),
        terminatePostUri: sub(m.terminatePostUri),
        rewindPostUri: sub(m.rewindPostUri),
        purgeHistoryDeleteUri: sub(m.purgeHistoryDeleteUri),
        restartPostUri: sub(m.restartPostUri),
        suspendPostUri: sub(m.suspendPostUri),
        resumePostUri: sub(m.resumePostUri),
    };
}

function decode(s: string): string {
    try {
        return decodeURIComponent(s);
    } catch {
        return s;
    }
}
