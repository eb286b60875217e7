/**
 * A burst well past capacity (issue 5): 2,000 run requests from 20 concurrent clients against a capacity of 200.
 * Every request is answered 202 or 429 (never 5xx, never lost), every admitted run reaches its checkpoint or
 * completes, the queue drains, the number of runs equals the number of 202s, and runs wait `Queued` while the slots
 * are taken and are admitted in the order they were queued.
 */
import { Api, type User } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';

jest.setTimeout(240_000);

const CLIENTS = 20;
const REQUESTS = 2_000;
const CAPACITY = 200;

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess({
        env: {
            MESH_RUN_CAPACITY: String(CAPACITY),
            MESH_ENGINE_LATENCY_MS: '2',
            // Tight enough that some clients are told to slow down; 429 is a valid answer, a 5xx never is.
            MESH_RATE_LIMIT_USER: '90/60',
            MESH_RATE_LIMIT_TEAM: 'off',
        },
    });
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
});

const client = (i: number): User => ({
    sub: `burst-${i}`,
    roles: ['Mesh.Developer'],
    teams: [i % 2 ? 'alpha' : 'beta'],
});

/** Operators watching the burst, taken in turn so their own reads stay under the per-user limit. */
let watch = 0;
const operator = (): User => ({ sub: `watcher-${watch++ % 100}`, roles: ['Mesh.Operator'], teams: [] });

async function listAll(status?: string): Promise<any[]> {
    const items: any[] = [];
    let token: string | undefined;
    do {
        const q = new URLSearchParams({ limit: '200', ...(status ? { status } : {}) });
        if (token) q.set('continuationToken', token);
        const r = await api.call('GET', `/pipeline?${q.toString()}`, { user: operator() });
        expect(r.status).toBe(200);
        items.push(...r.body.data.items);
        token = r.body.data.continuationToken;
    } while (token);
    return items;
}

it('answers every request 202 or 429, loses none, and admits every accepted run in order', async () => {
    const answers = new Map<number, number>();
    const accepted: { id: string; high: boolean }[] = [];
    let sawQueued = 0;
    let next = 0;
    const started = Date.now();
    // Watch the queue while the burst lands: runs must wait Queued once the slots are taken.
    let bursting = true;
    const watcher = (async () => {
        while (bursting) {
            const r = await api.call('GET', '/pipeline?status=Queued&limit=200', { user: operator() });
            sawQueued = Math.max(sawQueued, r.body.data.items.length);
            await new Promise((res) => setTimeout(res, 100));
        }
    })();
    await Promise.all(
        Array.from({ length: CLIENTS }, async (_, c) => {
            const user = client(c);
            while (next < REQUESTS) {
                const n = next++;
                const high = n % 10 === 0;
                const r = await api.call('POST', '/pipeline/run', {
                    user,
                    body: {
                        input: { prompt: `burst ${n}` },
                        metadata: { team: user.teams[0], riskLevel: high ? 'high' : 'low', complianceTags: [] },
                    },
                });
                answers.set(r.status, (answers.get(r.status) ?? 0) + 1);
                if (r.status === 202) accepted.push({ id: r.body.data.orchestrationID, high });
                else {
                    expect(r.status).toBe(429);
                    expect(r.body.error_code).toBe('RATE_LIMITED');
                    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
                }
            }
        }),
    );
    bursting = false;
    await watcher;
    const burstMs = Date.now() - started;

    const total = [...answers.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(REQUESTS);
    expect([...answers.keys()].every((s) => s === 202 || s === 429)).toBe(true);
    expect(accepted.length).toBeGreaterThan(CAPACITY);
    expect(sawQueued).toBeGreaterThan(0);

    // The queue drains: every accepted run completes or waits at its checkpoint; none is Queued or Running.
    const settled = await waitUntil(
        async () => {
            const runs = await listAll();
            const open = runs.filter((r) => r.status !== 'Completed' && r.status !== 'AwaitingApproval');
            return open.length === 0 && runs;
        },
        'every accepted run to complete or reach its checkpoint',
        180_000,
        1_000,
    );
    expect(settled).toHaveLength(accepted.length);
    expect(new Set(settled.map((r) => r.orchestrationID))).toEqual(new Set(accepted.map((a) => a.id)));
    const statusOf = new Map(settled.map((r) => [r.orchestrationID as string, r.status as string]));
    for (const a of accepted)
        expect([a.id, statusOf.get(a.id)]).toEqual([a.id, a.high ? 'AwaitingApproval' : 'Completed']);

    // Admitted in order: pipeline.started follows queue order (sampled: every 50th accepted run).
    const sample = accepted.filter((_, i) => i % 50 === 0);
    const startedAt: number[] = [];
    for (const { id } of sample) {
        const logs = (
            await api.call('GET', `/pipeline/logs/${id}`, { user: { ...operator(), roles: ['Mesh.Compliance'] } })
        ).body.data;
        expect(logs.chain.verified).toBe(true);
        const ev = logs.events.find((e: any) => e.type === 'pipeline.started');
        startedAt.push(Date.parse(ev.at));
    }
    const sorted = [...startedAt].sort((a, b) => a - b);
    expect(startedAt).toEqual(sorted);
    console.log(
        `burst: ${REQUESTS} requests in ${burstMs} ms (${Math.round(REQUESTS / (burstMs / 1000))}/s): ` +
            `${answers.get(202) ?? 0} × 202, ${answers.get(429) ?? 0} × 429; up to ${sawQueued}+ queued at once`,
    );
});
