/**
 * Per-user and per-team rate limits (issue 5): RATE_LIMITED with Retry-After on every authenticated endpoint, counted
 * in the store, so on Cosmos DB two instances share one limit.
 */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess } from '../support/hostProcess';
import { STORES } from '../support/stores';

jest.setTimeout(60_000);

const LIMITS = { MESH_RATE_LIMIT_USER: '5/60', MESH_RATE_LIMIT_TEAM: '8/60' };

describe.each(STORES)('rate limits on the %s store', (store) => {
    const hosts: HostProcess[] = [];
    let api: Api;

    beforeAll(async () => {
        hosts.push(await startHostProcess({ store, env: { ...LIMITS } }));
        api = new Api(hosts[0]!);
    });

    afterAll(async () => {
        // The first host started the Cosmos server and closes it when it exits: stop it last.
        for (const h of hosts.reverse()) await h.stop();
    });

    it('answers RATE_LIMITED with Retry-After once a user exceeds theirs, on any endpoint, and spares others', async () => {
        for (let i = 0; i < 5; i++) expect((await api.call('GET', '/pipeline', { user: USERS.bob })).status).toBe(200);
        const limited = await api.call('GET', '/pipeline/status/run-nope', { user: USERS.bob });
        expect(limited.status).toBe(429);
        expect(limited.body).toMatchObject({ error_code: 'RATE_LIMITED', data: null });
        const retryAfter = Number(limited.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);
        // Someone else (another team) is not affected.
        expect((await api.call('GET', '/pipeline', { user: USERS.olga })).status).toBe(200);
    });

    it('counts every member of a team against the team limit', async () => {
        for (let i = 0; i < 4; i++) expect((await api.call('GET', '/pipeline', { user: USERS.dana })).status).toBe(200);
        for (let i = 0; i < 4; i++) expect((await api.call('GET', '/pipeline', { user: USERS.sam })).status).toBe(200);
        const limited = await api.call('GET', '/pipeline', { user: USERS.ava });
        expect(limited.status).toBe(429);
        expect(limited.body.error_code).toBe('RATE_LIMITED');
    });

    if (store === 'cosmos')
        it('holds across instances that share the store', async () => {
            const second = await startHostProcess({
                store,
                cosmos: hosts[0]!.cosmos,
                env: { ...LIMITS, COSMOS_DATABASE: `mesh-${hosts[0]!.dataDir.split('/').pop()}` },
            });
            hosts.push(second);
            const other = new Api(second);
            // Carl has made no request yet: 3 here and 2 there use his 5.
            for (let i = 0; i < 3; i++)
                expect((await api.call('GET', '/pipeline', { user: USERS.carl })).status).toBe(200);
            for (let i = 0; i < 2; i++)
                expect((await other.call('GET', '/pipeline', { user: USERS.carl })).status).toBe(200);
            expect((await other.call('GET', '/pipeline', { user: USERS.carl })).status).toBe(429);
            expect((await api.call('GET', '/pipeline', { user: USERS.carl })).status).toBe(429);
        });
});
