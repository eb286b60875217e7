/** Interventions while a stage is running (engines with latency): pause holds before the next stage; abort is immediate. */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { STORES } from '../support/stores';

jest.setTimeout(60_000);

describe.each(STORES)('pipeline control on the %s store', (store) => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess({ store, env: { MESH_ENGINE_LATENCY_MS: '300' } });
        api = new Api(host);
    });

    afterAll(async () => {
        await host?.stop();
    });

    async function submit(): Promise<string> {
        const r = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            body: { input: { prompt: 'p' }, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } },
        });
        return r.body.data.orchestrationID as string;
    }

    const status = async (id: string): Promise<any> =>
        (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.olga })).body.data;
    const events = async (id: string): Promise<any[]> =>
        (await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl })).body.data.events;

    it('a pause during a stage lets that stage finish, holds the next one, and resume carries on', async () => {
        const id = await submit();
        await waitUntil(async () => (await status(id)).stages[1].status === 'Running' && true, 'filtering to run');
        const paused = await api.call('POST', '/pipeline/stop', {
            user: USERS.olga,
            body: { orchestrationID: id, action: 'pause', reason: 'look first' },
        });
        expect(paused.status).toBe(202);
        expect((await status(id)).status).toBe('Paused');
        await waitUntil(async () => (await status(id)).stages[1].status === 'Completed' && true, 'filtering to finish');
        await new Promise((r) => setTimeout(r, 800));
        const held = await status(id);
        expect(held.status).toBe('Paused');
        expect(held.stages[2].status).toBe('Pending'); // creativity did not start
        expect(
            (
                await api.call('POST', '/pipeline/resume', {
                    user: USERS.olga,
                    body: { orchestrationID: id, reason: 'looked' },
                })
            ).status,
        ).toBe(202);
        await waitUntil(async () => (await status(id)).status === 'Completed', 'completion after resume', 20_000);
        const types = (await events(id)).map((e) => e.type);
        expect(types.indexOf('pipeline.paused')).toBeLessThan(types.indexOf('pipeline.resumed'));
        expect(types.filter((t) => t === 'stage.started')).toHaveLength(5);
    });

    it('an abort during a stage ends the run at once and nothing runs after it', async () => {
        const id = await submit();
        await waitUntil(async () => (await status(id)).stages[0].status === 'Running' && true, 'generation to run');
        const r = await api.call('POST', '/pipeline/stop', {
            user: USERS.olga,
            body: { orchestrationID: id, action: 'abort', reason: 'runaway' },
        });
        expect(r.status).toBe(202);
        expect(r.body.data.status).toBe('Aborted');
        await new Promise((res) => setTimeout(res, 1_000));
        const s = await status(id);
        expect(s.status).toBe('Aborted');
        const types = (await events(id)).map((e) => e.type);
        expect(types.at(-1)).toBe('pipeline.aborted');
        expect(types.filter((t) => t === 'stage.started')).toHaveLength(1);
    });
});
