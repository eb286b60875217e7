/** An engine that keeps failing: the stage is retried with back-off, then the run fails with ENGINE_FAILED. */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';

jest.setTimeout(60_000);

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_FAILURE_RATE: '1' } });
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
});

it('retries the first stage with back-off, then fails the run with ENGINE_FAILED, all audited', async () => {
    const r = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        body: { input: { prompt: 'p' }, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } },
    });
    const id = r.body.data.orchestrationID as string;
    const failed = await waitUntil(
        async () => {
            const s = (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana })).body.data;
            return s.status === 'Failed' && s;
        },
        'the run to fail',
        40_000,
        250,
    );
    expect(failed.error).toMatchObject({ code: 'ENGINE_FAILED' });
    expect(failed.stages[0]).toMatchObject({ name: 'generation', status: 'Failed', attempts: 4 });
    expect(failed.stages.slice(1).every((s: any) => s.status === 'Pending')).toBe(true);
    const types = (await api.call('GET', `/pipeline/logs/${id}`, { user: USERS.carl })).body.data.events.map(
        (e: any) => e.type,
    );
    expect(types).toEqual(['pipeline.queued', 'pipeline.started', 'stage.started', 'stage.failed', 'pipeline.failed']);
});
