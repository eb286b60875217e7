/**
 * The host-internal routes (the Durable management API under /runtime/webhooks/durabletask/ and /durabletask/,
 * anything else under /runtime/ or /admin/) answer 401 in the envelope without the host's system key, as the
 * Functions host does: no key, a bearer token, a wrong key and the function key are all refused, and nothing
 * changes. With the system key they work; the app's own DurableClient carries it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { Api, runAwaitingApproval, USERS } from '../support/api';
import { hostKeys } from '../support/hostKeys';
import { HostProcess, json, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(60_000);

const WEBHOOKS = '/runtime/webhooks/durabletask';

let host: HostProcess;
let api: Api;
let waiting: { id: string; checkpointId: string };

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '0' } });
    api = new Api(host);
    waiting = await runAwaitingApproval(api, USERS.dana, 'host keys');
});

afterAll(async () => {
    await host?.stop();
});

const systemKey = (): string => hostKeys(join(host.dataDir, 'keys')).masterKey;

/** Every host-internal call an attacker would try, against the waiting run (`ID`, `CP` filled in per call). */
const ROUTES: [string, string, string, unknown?][] = [
    ['list instances', 'GET', `${WEBHOOKS}/instances`],
    ['list instances by status', 'GET', `${WEBHOOKS}/instances/?runtimeStatus=Running,Pending`],
    ['get status', 'GET', `${WEBHOOKS}/instances/ID`],
    ['get history', 'GET', `${WEBHOOKS}/instances/ID?showHistory=true&showHistoryOutput=true`],
    [
        'raise the decision as the submitter',
        'POST',
        `${WEBHOOKS}/instances/ID/raiseEvent/Decision:CP`,
        { decisionId: 'forged', checkpointId: 'CP', decision: 'approve', actorId: 'dana', channel: 'api' },
    ],
    ['terminate', 'POST', `${WEBHOOKS}/instances/ID/terminate?reason=gone`],
    ['suspend', 'POST', `${WEBHOOKS}/instances/ID/suspend?reason=hold`],
    ['resume', 'POST', `${WEBHOOKS}/instances/ID/resume?reason=go`],
    ['rewind', 'POST', `${WEBHOOKS}/instances/ID/rewind?reason=again`],
    ['restart', 'POST', `${WEBHOOKS}/instances/ID/restart`],
    ['purge one', 'DELETE', `${WEBHOOKS}/instances/ID`],
    ['purge by filter', 'DELETE', `${WEBHOOKS}/instances/?runtimeStatus=Running,Pending,Suspended`],
    ['start an orchestration', 'POST', `${WEBHOOKS}/orchestrators/meshPipeline/run-forged`, { runId: 'run-forged' }],
    ['signal an entity', 'POST', `${WEBHOOKS}/entities/probe/x?op=set`, 1],
    ['read an entity', 'GET', `${WEBHOOKS}/entities/probe/x`],
    ['rpc: list instances', 'GET', '/durabletask/instances/'],
    ['rpc: raise the decision', 'POST', '/durabletask/instances/ID/raiseEvent/Decision:CP', { decision: 'approve' }],
    ['rpc: terminate', 'POST', '/durabletask/instances/ID/terminate?reason=gone'],
    ['another spelling of the prefix', 'GET', '/Runtime/Webhooks/DurableTask/instances/ID'],
    ['an encoded prefix', 'GET', '/%72untime/webhooks/durabletask/instances/ID'],
    ['another /runtime/ route', 'GET', '/runtime/webhooks/eventgrid?functionName=forwardEvents'],
    ['an admin route', 'GET', '/admin/host/status'],
];

type Credential = [string, () => Promise<Record<string, string>>, (path: string) => string];
const CREDENTIALS: Credential[] = [
    ['no key', () => Promise.resolve({}), (p) => p],
    ["an admin's bearer token", async () => ({ authorization: `Bearer ${await api.token(USERS.ada)}` }), (p) => p],
    ['a wrong key in x-functions-key', () => Promise.resolve({ 'x-functions-key': `${systemKey()}x` }), (p) => p],
    [
        'a wrong key in code',
        () => Promise.resolve({}),
        (p) =>
            withCode(
                p,
                systemKey().replace(/^./, (c) => (c === 'A' ? 'B' : 'A')),
            ),
    ],
    [
        'the function key (not the system key)',
        () => Promise.resolve({}),
        (p) => withCode(p, hostKeys(join(host.dataDir, 'keys')).functionKey),
    ],
];

function withCode(path: string, code: string): string {
    return `${path}${path.includes('?') ? '&' : '?'}code=${encodeURIComponent(code)}`;
}

function fill(path: string): string {
    return path.replace(/ID/g, waiting.id).replace(/CP/g, waiting.checkpointId);
}

async function snapshot(): Promise<{ status: string; stage: unknown; events: number; head: unknown; runs: number }> {
    const status = await api.call('GET', `/pipeline/status/${waiting.id}`, { user: USERS.ada });
    const logs = await api.call('GET', `/pipeline/logs/${waiting.id}`, { user: USERS.ada });
    const list = await api.call('GET', '/pipeline?limit=200', { user: USERS.ada });
    return {
        status: status.body.data.status as string,
        stage: status.body.data.nextAction,
        events: (logs.body.data.events as unknown[]).length,
        head: logs.body.data.chain,
        runs: (list.body.data.items as unknown[]).length,
    };
}

describe.each(CREDENTIALS)('with %s', (_name, headers, path) => {
    // One argument per row: jest would take a fourth parameter for a `done` callback when a row omits the body.
    it.each(ROUTES.map((r) => ({ name: r[0], route: r })))(
        '$name → 401 UNAUTHENTICATED, nothing changes',
        async ({ route }) => {
            const [, method, template, body] = route;
            const before = await snapshot();
            const r = await json<{ error_code: string; message: string; correlationID: string; data: unknown }>(
                host.origin,
                method,
                path(fill(template)),
                body === undefined ? undefined : JSON.parse(fill(JSON.stringify(body))),
                await headers(),
            );
            expect(r.status).toBe(401);
            expect(r.body).toEqual({
                error_code: 'UNAUTHENTICATED',
                message: expect.stringContaining('system key'),
                correlationID: expect.any(String),
                data: null,
            });
            expect(JSON.stringify(r.body)).not.toContain(waiting.id);
            expect(await snapshot()).toEqual(before);
        },
    );
});

it('the attack from issue 10: a forged approval by the submitter is refused and nothing is recorded', async () => {
    const before = await snapshot();
    expect(before.status).toBe('AwaitingApproval');
    const event = {
        decisionId: 'forged-1',
        checkpointId: waiting.checkpointId,
        decision: 'approve',
        actorId: USERS.dana.sub,
        channel: 'api',
        correlationID: 'forged',
    };
    const r = await json(
        host.origin,
        'POST',
        `${WEBHOOKS}/instances/${waiting.id}/raiseEvent/${encodeURIComponent(`Decision:${waiting.checkpointId}`)}`,
        event,
        { authorization: `Bearer ${await api.token(USERS.dana)}` },
    );
    expect(r.status).toBe(401);
    // Give a wrongly accepted event time to be processed before looking: the run must still wait, audit unchanged.
    const stable = await waitUntil(async () => {
        const a = await snapshot();
        await new Promise((res) => setTimeout(res, 300));
        const b = await snapshot();
        return JSON.stringify(a) === JSON.stringify(b) && b;
    }, 'a stable state');
    expect(stable).toEqual(before);
    const logs = await api.call('GET', `/pipeline/logs/${waiting.id}`, { user: USERS.ada });
    expect(logs.body.data.events.some((e: { type: string }) => e.type === 'checkpoint.decided')).toBe(false);
});

describe('with the system key', () => {
    const key = (): Record<string, string> => ({ 'x-functions-key': systemKey() });

    it('lists instances, reads status and history (header or code query)', async () => {
        const list = await json<{ instanceId: string }[]>(
            host.origin,
            'GET',
            `${WEBHOOKS}/instances`,
            undefined,
            key(),
        );
        expect(list.status).toBe(200);
        expect(list.body.map((i) => i.instanceId)).toContain(waiting.id);
        const status = await json<{ runtimeStatus: string; history: unknown[] }>(
            host.origin,
            'GET',
            withCode(`${WEBHOOKS}/instances/${waiting.id}?showHistory=true`, systemKey()),
        );
        expect(status.status).toBe(202);
        expect(status.body.runtimeStatus).toBe('Running');
        expect(Array.isArray(status.body.history)).toBe(true);
        const rpc = await json(host.origin, 'GET', `/durabletask/instances/${waiting.id}`, undefined, key());
        expect(rpc.status).toBe(202);
        expect((await json(host.origin, 'GET', '/admin/host/status', undefined, key())).status).toBe(404);
    });

    it('suspends, resumes and terminates an instance; the app still drives runs (its client carries the key)', async () => {
        const other = await runAwaitingApproval(api, USERS.sam, 'host keys 2');
        const at = (op: string): string => `${WEBHOOKS}/instances/${other.id}/${op}?reason=test`;
        const runtime = async (): Promise<string> =>
            (
                await json<{ runtimeStatus: string }>(
                    host.origin,
                    'GET',
                    `${WEBHOOKS}/instances/${other.id}`,
                    undefined,
                    key(),
                )
            ).body.runtimeStatus;
        expect((await json(host.origin, 'POST', at('suspend'), undefined, key())).status).toBe(202);
        await waitUntil(async () => (await runtime()) === 'Suspended', 'suspended');
        expect((await json(host.origin, 'POST', at('resume'), undefined, key())).status).toBe(202);
        await waitUntil(async () => (await runtime()) === 'Running', 'running again');
        // The product's own decision path goes through the app's DurableClient, which must carry the key.
        const decided = await api.call('POST', `/pipeline/checkpoints/${other.checkpointId}/decision`, {
            user: USERS.ava,
            body: { decision: 'approve' },
        });
        expect(decided.status).toBe(202);
        await waitUntil(async () => {
            const s = await api.call('GET', `/pipeline/status/${other.id}`, { user: USERS.ada });
            return s.body.data.nextAction?.checkpointId !== other.checkpointId && s;
        }, 'the decision to be taken');
        expect((await json(host.origin, 'POST', at('terminate'), undefined, key())).status).toBe(202);
        await waitUntil(async () => (await runtime()) === 'Terminated', 'terminated');
    });
});

it('keeps the keys in MESH_KEYS_DIR (0600), not in the data dir', () => {
    const file = join(host.dataDir, 'keys', 'host-keys.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const keys = hostKeys(join(host.dataDir, 'keys'));
    expect(keys.functionKey).not.toBe(keys.masterKey);
    expect(() => statSync(join(host.dataDir, 'host-keys.json'))).toThrow();
    // The local Event Grid topic's access key too: no key of any kind directly under the data dir.
    expect(statSync(join(host.dataDir, 'keys', 'eventgrid-key.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(host.dataDir).filter((f) => /key/i.test(f))).toEqual(['keys']);
});

it('keeps public what is public: JWKS and health answer without a key', async () => {
    expect((await fetch(`${host.origin}/.well-known/jwks.json`)).status).toBe(200);
    expect((await fetch(`${host.origin}/health/live`)).status).toBe(200);
});

it('moves an old data-dir host-keys.json into MESH_KEYS_DIR, keeping its function key', async () => {
    const dataDir = tempDataDir();
    const { writeFileSync } = await import('node:fs');
    const old = 'legacy-function-key-0123456789abcdef';
    writeFileSync(join(dataDir, 'host-keys.json'), JSON.stringify({ functionKey: old }), { mode: 0o600 });
    const topicKey = 'legacy-topic-key-0123456789abcdef0123456789';
    writeFileSync(join(dataDir, 'eventgrid-key.json'), JSON.stringify({ key: topicKey }), { mode: 0o600 });
    const legacy = await startHostProcess({ dataDir, appMain: 'dist/test/fixtures/durableApp/**/*.js' });
    try {
        const keys = hostKeys(join(dataDir, 'keys'));
        expect(keys.functionKey).toBe(old);
        expect(keys.masterKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(() => statSync(join(dataDir, 'host-keys.json'))).toThrow();
        expect((await fetch(`${legacy.origin}/test/keyed?code=${old}`)).status).toBe(200);
        const moved = JSON.parse(readFileSync(join(dataDir, 'keys', 'eventgrid-key.json'), 'utf8')) as { key: string };
        expect(moved.key).toBe(topicKey);
        expect(() => statSync(join(dataDir, 'eventgrid-key.json'))).toThrow();
    } finally {
        await legacy.stop();
    }
});
