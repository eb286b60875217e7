/** Checkpoint deadlines on durable timers: each onTimeout, and escalation that widens roles once. */
import { Api } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';

jest.setTimeout(60_000);

const dev = { sub: 'gil', roles: ['Mesh.Developer'], teams: ['gamma'] };
const compliance = { sub: 'cora', roles: ['Mesh.Compliance'], teams: [] };
const admin = { sub: 'adam', roles: ['Mesh.Admin'], teams: [] };

let host: HostProcess;
let api: Api;

const rule = (name: string, riskLevels: string[], onTimeout: string, extra: Record<string, unknown> = {}) => ({
    name,
    match: { teams: ['gamma'], riskLevels, stages: ['filtering'] },
    position: 'before',
    requiredRoles: ['Mesh.Approver'],
    approvals: 1,
    timeout: 'PT1S',
    onTimeout,
    channels: ['email'],
    ...extra,
});

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '0' } });
    api = new Api(host);
    const current = await api.call('GET', '/checkpoint-policies', { user: compliance });
    const put = await api.call('PUT', '/checkpoint-policies', {
        user: compliance,
        body: {
            expectedVersion: current.body.data.version,
            rules: [
                rule('auto-approve', ['low'], 'approve'),
                rule('expire', ['medium'], 'reject'),
                rule('escalate', ['high'], 'escalate', { escalateTo: ['Mesh.Admin'] }),
            ],
        },
    });
    expect(put.status).toBe(200);
    expect(put.body.data.version).toBe(current.body.data.version + 1);
});

afterAll(async () => {
    await host?.stop();
});

async function submit(riskLevel: string): Promise<string> {
    const r = await api.call('POST', '/pipeline/run', {
        user: dev,
        body: { input: { prompt: 'p' }, metadata: { team: 'gamma', riskLevel, complianceTags: [] } },
    });
    expect(r.status).toBe(202);
    return r.body.data.orchestrationID as string;
}

async function settled(id: string): Promise<any> {
    return waitUntil(
        async () => {
            const s = (await api.call('GET', `/pipeline/status/${id}`, { user: dev })).body.data;
            return ['Completed', 'TimedOut', 'Rejected', 'Failed', 'Aborted'].includes(s.status) && s;
        },
        `${id} to settle`,
        20_000,
    );
}

async function types(id: string): Promise<string[]> {
    return (await api.call('GET', `/pipeline/logs/${id}`, { user: compliance })).body.data.events.map(
        (e: any) => e.type,
    );
}

it('onTimeout approve: the checkpoint expires approved and the run completes', async () => {
    const id = await submit('low');
    expect((await settled(id)).status).toBe('Completed');
    expect(await types(id)).toEqual(
        expect.arrayContaining(['checkpoint.opened', 'checkpoint.expired', 'pipeline.completed']),
    );
});

it('onTimeout reject: the run times out', async () => {
    const id = await submit('medium');
    const s = await settled(id);
    expect(s.status).toBe('TimedOut');
    expect(s.checkpoints[0].status).toBe('Expired');
    expect((await types(id)).slice(-2)).toEqual(['checkpoint.expired', 'pipeline.timedout']);
});

it('onTimeout escalate: widens the roles once with a new deadline, then an escalation approver decides', async () => {
    const id = await submit('high');
    const escalated = await waitUntil(
        async () => {
            const s = (await api.call('GET', `/pipeline/status/${id}`, { user: dev })).body.data;
            return s.nextAction?.requiredRoles?.includes('Mesh.Admin') && s;
        },
        'escalation',
        10_000,
    );
    expect(escalated.status).toBe('AwaitingApproval');
    expect(escalated.nextAction.requiredRoles).toEqual(['Mesh.Approver', 'Mesh.Admin']);
    const r = await api.call('POST', `/pipeline/checkpoints/${escalated.nextAction.checkpointId}/decision`, {
        user: admin,
        body: { decision: 'approve' },
    });
    expect(r.status).toBe(202);
    expect((await settled(id)).status).toBe('Completed');
    expect(await types(id)).toEqual(expect.arrayContaining(['checkpoint.escalated', 'checkpoint.decided']));
});

it('onTimeout escalate: a second expiry times the run out', async () => {
    const id = await submit('high');
    expect((await settled(id)).status).toBe('TimedOut');
    const t = await types(id);
    expect(t.indexOf('checkpoint.escalated')).toBeLessThan(t.indexOf('checkpoint.expired'));
    expect(t.at(-1)).toBe('pipeline.timedout');
});

it('refuses a policy save against a stale version', async () => {
    const r = await api.call('PUT', '/checkpoint-policies', {
        user: compliance,
        body: { expectedVersion: 0, rules: [] },
    });
    expect(r.status).toBe(409);
    expect(r.body.error_code).toBe('CONFLICT');
});
