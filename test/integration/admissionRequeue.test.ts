/**
 * A run that waits for a slot through nearly every delivery the queue allows goes to the back of the queue instead of
 * being dead-lettered: it is admitted once capacity frees, never stranded `Queued`.
 */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';

jest.setTimeout(60_000);

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess({
        env: {
            MESH_RUN_CAPACITY: '1',
            MESH_ADMISSION_WAIT_MS: '50',
            MESH_ADMISSION_REQUEUE_AFTER: '3',
            MESH_QUEUE_MAX_DELIVERY: '5',
            MESH_ENGINE_LATENCY_MS: '300',
        },
    });
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
});

it('requeues instead of dead-lettering, and every run completes', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
        const r = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            body: { input: { prompt: `${i}` }, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } },
        });
        expect(r.status).toBe(202);
        ids.push(r.body.data.orchestrationID as string);
    }
    await waitUntil(
        async () => {
            const s = await Promise.all(
                ids.map(
                    async (id) => (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana })).body.data,
                ),
            );
            return s.every((x) => x.status === 'Completed');
        },
        'every run to complete',
        45_000,
        200,
    );
    expect(host.output()).toMatch(/queued again at the back/);
    expect(host.output()).not.toMatch(/dead-letter/i);
});
