/** A client for the product API over real HTTP, with tokens minted by the host's local identity provider. */
import { join } from 'node:path';

import { loadOrCreateSigningKey, mintToken } from '../../local/identity';
import { type HostProcess, waitUntil } from './hostProcess';

export interface Envelope<T = Record<string, unknown>> {
    error_code: string | null;
    message: string;
    correlationID: string;
    data: T;
}

export interface Reply<T = any> {
    status: number;
    body: Envelope<T>;
    headers: Headers;
}

export interface User {
    sub: string;
    roles: string[];
    teams: string[];
}

export class Api {
    private readonly tokens = new Map<string, string>();

    constructor(readonly host: HostProcess) {}

    async token(u: User, extra: { expired?: boolean; foreign?: boolean } = {}): Promise<string> {
        const key = `${u.sub}|${u.roles.join(',')}|${u.teams.join(',')}|${JSON.stringify(extra)}`;
        let t = this.tokens.get(key);
        if (!t) {
            const signing = await loadOrCreateSigningKey(join(this.host.dataDir, 'keys'));
            t = await mintToken(signing, { sub: u.sub, roles: u.roles, teams: u.teams, ...extra });
            this.tokens.set(key, t);
        }
        return t;
    }

    async call<T = any>(
        method: string,
        path: string,
        opts: { user?: User; token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
    ): Promise<Reply<T>> {
        const headers: Record<string, string> = { ...opts.headers };
        const token = opts.token ?? (opts.user ? await this.token(opts.user) : undefined);
        if (token) headers.authorization = `Bearer ${token}`;
        let body: string | undefined;
        if (opts.raw !== undefined) body = opts.raw;
        else if (opts.body !== undefined) body = JSON.stringify(opts.body);
        if (body !== undefined) headers['content-type'] ??= 'application/json';
        const r = await fetch(this.host.origin + path, { method, headers, body, signal: AbortSignal.timeout(30_000) });
        const text = await r.text();
        let parsed: Envelope<T>;
        try {
            parsed = JSON.parse(text) as Envelope<T>;
        } catch {
            throw new Error(
                `${method} ${path} answered ${r.status} with a body that is not JSON: ${text.slice(0, 120)}`,
            );
        }
        return { status: r.status, body: parsed, headers: r.headers };
    }
}

export const USERS = {
    dana: { sub: 'dana', roles: ['Mesh.Developer'], teams: ['alpha'] },
    sam: { sub: 'sam', roles: ['Mesh.DataScientist'], teams: ['alpha'] },
    bob: { sub: 'bob', roles: ['Mesh.Developer'], teams: ['beta'] },
    ava: { sub: 'ava', roles: ['Mesh.Approver'], teams: ['alpha'] },
    amir: { sub: 'amir', roles: ['Mesh.Approver'], teams: ['alpha'] },
    bea: { sub: 'bea', roles: ['Mesh.Approver'], teams: ['beta'] },
    olga: { sub: 'olga', roles: ['Mesh.Operator'], teams: [] },
    carl: { sub: 'carl', roles: ['Mesh.Compliance'], teams: [] },
    ada: { sub: 'ada', roles: ['Mesh.Admin'], teams: [] },
    nobody: { sub: 'nobody', roles: [], teams: ['alpha'] },
} satisfies Record<string, User>;

/** A high-risk run of `user`'s first team, waiting at its first checkpoint: its id, that checkpoint and its status. */
export async function runAwaitingApproval(
    api: Api,
    user: User,
    title: string,
): Promise<{ id: string; checkpointId: string; waiting: any }> {
    const submitted = await api.call('POST', '/pipeline/run', {
        user,
        body: {
            input: { prompt: title },
            metadata: { team: user.teams[0] ?? 'alpha', riskLevel: 'high', complianceTags: [], title },
        },
    });
    if (submitted.status !== 202) throw new Error(`POST /pipeline/run answered ${submitted.status}`);
    const id = submitted.body.data.orchestrationID as string;
    const waiting = await waitUntil(async () => {
        const s = (await api.call('GET', `/pipeline/status/${id}`, { user })).body.data;
        return s.status === 'AwaitingApproval' && s.nextAction?.stage === 'taste' && s;
    }, 'the run to await approval before taste');
    return { id, checkpointId: waiting.nextAction.checkpointId as string, waiting };
}

/** Approves every checkpoint of `ids` as it opens (as `approver`) until every run has ended. */
export async function approveUntilEnded(api: Api, ids: readonly string[], approver: User = USERS.ava): Promise<void> {
    await waitUntil(
        async () => {
            const statuses = await Promise.all(
                ids.map(async (id) => (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.ada })).body.data),
            );
            await Promise.allSettled(
                statuses
                    .filter((s) => s.status === 'AwaitingApproval' && s.nextAction)
                    .map((s) =>
                        api.call('POST', `/pipeline/checkpoints/${s.nextAction.checkpointId}/decision`, {
                            user: approver,
                            body: { decision: 'approve' },
                        }),
                    ),
            );
            return statuses.every((s) => s.status === 'Completed' || s.status === 'Aborted');
        },
        'every run to end',
        90_000,
        200,
    );
}

/** Each run's audit trail, after checking that its hash chain verifies. */
export async function verifiedTrails(api: Api, ids: readonly string[]): Promise<Map<string, any[]>> {
    const trails = new Map<string, any[]>();
    for (const id of ids) {
        const logs = (await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl })).body.data;
        expect(logs.chain).toMatchObject({ verified: true });
        trails.set(id, logs.events);
    }
    return trails;
}
