/**
 * SPEC's endpoint table, role by role and team by team: every cell is asserted, so one wrong permission fails.
 * State-changing cells act on finished runs, where an authorized caller gets 409 (authorization passed,
 * nothing changed) and an unauthorized one 403, or 404 when the run is not theirs to see.
 */
import { Api, User, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { STORES } from '../support/stores';

jest.setTimeout(60_000);

type Name = keyof typeof USERS;
const NAMES = Object.keys(USERS) as Name[];
describe.each(STORES)('pipeline permissions on the %s store', (store) => {
    let host: HostProcess;
    let api: Api;
    let done: string; // a completed low-risk run of dana (team alpha)
    let decidedCheckpoint: string; // an approved checkpoint of a finished high-risk run of dana

    beforeAll(async () => {
        host = await startHostProcess({ store, env: { MESH_ENGINE_LATENCY_MS: '0' } });
        api = new Api(host);
        done = await run('low');
        const high = await run('high');
        const cp = await waitUntil(
            async () => (await status(high)).nextAction?.checkpointId as string | undefined,
            'checkpoint',
        );
        expect(
            (
                await api.call('POST', `/pipeline/checkpoints/${cp}/decision`, {
                    user: USERS.ava,
                    body: { decision: 'reject', comment: 'no' },
                })
            ).status,
        ).toBe(202);
        await waitUntil(async () => (await status(high)).status === 'Rejected', 'rejected');
        decidedCheckpoint = cp;
        await waitUntil(async () => (await status(done)).status === 'Completed', 'completed');
    });

    afterAll(async () => {
        await host?.stop();
    });

    async function run(riskLevel: string): Promise<string> {
        const r = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            body: { input: { prompt: 'p' }, metadata: { team: 'alpha', riskLevel, complianceTags: [] } },
        });
        expect(r.status).toBe(202);
        return r.body.data.orchestrationID as string;
    }

    async function status(id: string): Promise<any> {
        return (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.ada })).body.data;
    }

    //                                dana sam  bob  ava  amir bea  olga carl ada  nobody
    const TABLE: [string, (u: User) => Promise<number>, number[]][] = [
        [
            'POST /pipeline/run (team alpha)',
            async (u) =>
                (
                    await api.call('POST', '/pipeline/run', {
                        user: u,
                        body: { input: {}, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } },
                    })
                ).status,
            [202, 202, 403, 403, 403, 403, 202, 403, 202, 403],
        ],
        [
            'GET /pipeline/status/{id}',
            async (u) => (await api.call('GET', `/pipeline/status/${done}`, { user: u })).status,
            [200, 200, 404, 200, 200, 404, 200, 200, 200, 403],
        ],
        [
            'GET /pipeline/logs/{id}',
            async (u) => (await api.call('GET', `/pipeline/logs/${done}`, { user: u })).status,
            [200, 200, 404, 200, 200, 404, 200, 200, 200, 403],
        ],
        [
            'GET /pipeline',
            async (u) => (await api.call('GET', '/pipeline', { user: u })).status,
            [200, 200, 200, 200, 200, 200, 200, 200, 200, 403],
        ],
        [
            'POST /pipeline/stop pause',
            async (u) =>
                (
                    await api.call('POST', '/pipeline/stop', {
                        user: u,
                        body: { orchestrationID: done, action: 'pause', reason: 'r' },
                    })
                ).status,
            [403, 403, 404, 403, 403, 404, 409, 403, 409, 403],
        ],
        [
            'POST /pipeline/stop abort',
            async (u) =>
                (
                    await api.call('POST', '/pipeline/stop', {
                        user: u,
                        body: { orchestrationID: done, action: 'abort', reason: 'r' },
                    })
                ).status,
            [409, 403, 404, 403, 403, 404, 409, 403, 409, 403],
        ],
        [
            'POST /pipeline/resume',
            async (u) =>
                (await api.call('POST', '/pipeline/resume', { user: u, body: { orchestrationID: done, reason: 'r' } }))
                    .status,
            [403, 403, 404, 403, 403, 404, 409, 403, 409, 403],
        ],
        [
            'POST /pipeline/checkpoints/{id}/decision',
            async (u) =>
                (
                    await api.call('POST', `/pipeline/checkpoints/${decidedCheckpoint}/decision`, {
                        user: u,
                        body: { decision: 'approve' },
                    })
                ).status,
            [403, 403, 404, 409, 409, 404, 403, 403, 403, 403],
        ],
        [
            'GET /checkpoint-policies',
            async (u) => (await api.call('GET', '/checkpoint-policies', { user: u })).status,
            [403, 403, 403, 403, 403, 403, 200, 200, 200, 403],
        ],
        [
            'PUT /checkpoint-policies (stale version)',
            async (u) =>
                (await api.call('PUT', '/checkpoint-policies', { user: u, body: { expectedVersion: 999, rules: [] } }))
                    .status,
            [403, 403, 403, 403, 403, 403, 403, 409, 409, 403],
        ],
    ];

    describe.each(TABLE)('%s', (_name, call, expected) => {
        it.each(NAMES.map((n, i) => [n, expected[i]!] as const))('as %s → %i', async (name, want) => {
            expect(await call(USERS[name])).toBe(want);
        });
    });

    it('refuses missing, expired and foreign-signed tokens with UNAUTHENTICATED', async () => {
        for (const token of [
            undefined,
            await api.token(USERS.ada, { expired: true }),
            await api.token(USERS.ada, { foreign: true }),
            'not-a-jwt',
        ]) {
            const r = await api.call('GET', `/pipeline/status/${done}`, token ? { token } : {});
            expect(r.status).toBe(401);
            expect(r.body.error_code).toBe('UNAUTHENTICATED');
        }
    });
});
