/**
 * Issue 10: a run whose durable instance is terminated or purged behind the API's back (through the durable
 * management API) is reconciled into the run: terminated -> Aborted, purged -> Failed, with exactly one audit record
 * by `system`, and deciding, stopping or resuming it answers CONFLICT instead of 202 into a workflow that will never
 * read it. The sweep (reconcileRuns) does the same for a run nobody touches.
 */
import { Api, runAwaitingApproval, USERS } from '../support/api';
import { type HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { managementApi } from '../support/managementApi';

jest.setTimeout(180_000);

/** Never during a test (1 January): the first hosts' runs are reconciled only by what the test does. */
const NO_SWEEP = { MESH_RECONCILE_SCHEDULE: '0 0 0 1 1 *' };

async function instanceStatus(host: HostProcess, id: string): Promise<string> {
    const r = await managementApi(host, 'GET', `/instances/${id}`);
    if (r.status === 404) return 'missing';
    return ((await r.json()) as { runtimeStatus: string }).runtimeStatus;
}

/** Terminates the run's instance through the management API, as an operator with the system key could. */
async function terminate(host: HostProcess, id: string): Promise<void> {
    const r = await managementApi(host, 'POST', `/instances/${id}/terminate?reason=x`);
    expect(r.status).toBeLessThan(300);
    await waitUntil(async () => (await instanceStatus(host, id)) === 'Terminated', 'the instance to be terminated');
}

async function purge(host: HostProcess, id: string): Promise<void> {
    const r = await managementApi(host, 'DELETE', `/instances/${id}`);
    expect(r.status).toBe(200);
    expect(await instanceStatus(host, id)).toBe('missing');
}

async function trail(api: Api, id: string): Promise<{ chain: any; events: any[] }> {
    return (await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl })).body.data;
}

/** The run's trail verifies and holds exactly one reconciling record, of `type`, by system. */
async function expectOneReconciled(api: Api, id: string, type: string, how: string): Promise<void> {
    const t = await trail(api, id);
    expect(t.chain).toMatchObject({ verified: true });
    const ends = t.events.filter((e) => e.type === 'pipeline.aborted' || e.type === 'pipeline.failed');
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({
        type,
        actor: 'system',
        reason: `The run's durable instance was ${how} outside the API.`,
    });
}

const statusOf = async (api: Api, id: string) =>
    (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.ada })).body.data as Record<string, any>;

describe('a durable instance ended outside the API is reconciled into the run', () => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess({ env: NO_SWEEP });
        api = new Api(host);
    });
    afterAll(async () => {
        await host?.stop();
    });

    const decide = (checkpointId: string) =>
        api.call('POST', `/pipeline/checkpoints/${checkpointId}/decision`, {
            user: USERS.ava,
            body: { decision: 'approve' },
        });

    it('terminated: deciding is CONFLICT, the run is Aborted with one audit record by system', async () => {
        const run = await runAwaitingApproval(api, USERS.dana, 'reconcile: terminated');
        await terminate(host, run.id);
        const r = await decide(run.checkpointId);
        expect(r.status).toBe(409);
        expect(r.body).toMatchObject({
            error_code: 'CONFLICT',
            message: "Cannot decide: the run's workflow was terminated outside the API, so the run is Aborted now.",
        });
        // Again: still CONFLICT, still one record.
        expect((await decide(run.checkpointId)).status).toBe(409);
        expect(await statusOf(api, run.id)).toMatchObject({ status: 'Aborted', nextAction: null });
        await expectOneReconciled(api, run.id, 'pipeline.aborted', 'terminated');
    });

    it('purged: deciding is CONFLICT, the run is Failed with one audit record by system', async () => {
        const run = await runAwaitingApproval(api, USERS.dana, 'reconcile: purged');
        await purge(host, run.id);
        const r = await decide(run.checkpointId);
        expect(r.status).toBe(409);
        expect(r.body).toMatchObject({ error_code: 'CONFLICT' });
        expect(r.body.message).toContain('purged outside the API');
        expect(await statusOf(api, run.id)).toMatchObject({
            status: 'Failed',
            error: { code: 'WORKFLOW_PURGED' },
        });
        await expectOneReconciled(api, run.id, 'pipeline.failed', 'purged');
    });

    it('stop (pause and abort) on a terminated instance is CONFLICT and reconciles once', async () => {
        const run = await runAwaitingApproval(api, USERS.dana, 'reconcile: stop');
        await terminate(host, run.id);
        for (const action of ['pause', 'abort']) {
            const r = await api.call('POST', '/pipeline/stop', {
                user: USERS.olga,
                body: { orchestrationID: run.id, action, reason: 'operator stop' },
            });
            expect(r.status).toBe(409);
            expect(r.body).toMatchObject({ error_code: 'CONFLICT' });
        }
        expect((await statusOf(api, run.id)).status).toBe('Aborted');
        await expectOneReconciled(api, run.id, 'pipeline.aborted', 'terminated');
    });

    it('resume of a paused run whose instance was purged is CONFLICT and reconciles once', async () => {
        const run = await runAwaitingApproval(api, USERS.dana, 'reconcile: resume');
        const paused = await api.call('POST', '/pipeline/stop', {
            user: USERS.olga,
            body: { orchestrationID: run.id, action: 'pause', reason: 'hold on' },
        });
        expect(paused.status).toBe(202);
        await purge(host, run.id);
        const r = await api.call('POST', '/pipeline/resume', {
            user: USERS.olga,
            body: { orchestrationID: run.id, reason: 'go on' },
        });
        expect(r.status).toBe(409);
        expect(r.body.message).toContain('purged outside the API');
        const status = await statusOf(api, run.id);
        expect(status.status).toBe('Failed');
        await expectOneReconciled(api, run.id, 'pipeline.failed', 'purged');
    });

    it('a status read reconciles a terminated run; our own abort is never reconciled', async () => {
        const run = await runAwaitingApproval(api, USERS.dana, 'reconcile: status read');
        await terminate(host, run.id);
        await waitUntil(async () => (await statusOf(api, run.id)).status === 'Aborted', 'the status to show Aborted');
        await expectOneReconciled(api, run.id, 'pipeline.aborted', 'terminated');

        const own = await runAwaitingApproval(api, USERS.dana, 'reconcile: our abort');
        const aborted = await api.call('POST', '/pipeline/stop', {
            user: USERS.olga,
            body: { orchestrationID: own.id, action: 'abort', reason: 'not needed' },
        });
        expect(aborted.status).toBe(202);
        await waitUntil(async () => (await instanceStatus(host, own.id)) === 'Terminated', 'our abort to terminate');
        expect((await statusOf(api, own.id)).status).toBe('Aborted');
        const t = await trail(api, own.id);
        expect(t.chain).toMatchObject({ verified: true });
        expect(t.events.filter((e) => e.type === 'pipeline.aborted').map((e) => e.actor)).toEqual([USERS.olga.sub]);
        expect(t.events.filter((e) => e.type === 'pipeline.failed')).toEqual([]);
    });
});

describe('the reconcileRuns sweep', () => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess({ env: { MESH_RECONCILE_SCHEDULE: '*/1 * * * * *' } });
        api = new Api(host);
    });
    afterAll(async () => {
        await host?.stop();
    });

    it('reconciles a run nobody reads', async () => {
        const run = await runAwaitingApproval(api, USERS.dana, 'reconcile: sweep');
        await terminate(host, run.id);
        // Only the audit trail is read (it does not reconcile): the sweep must find the run on its own.
        await waitUntil(
            async () => (await trail(api, run.id)).events.some((e) => e.type === 'pipeline.aborted'),
            'the sweep to record the end',
        );
        await expectOneReconciled(api, run.id, 'pipeline.aborted', 'terminated');
        expect((await statusOf(api, run.id)).status).toBe('Aborted');
    });
});
