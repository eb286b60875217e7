/** Bad input never reaches a 5xx, always answers a 4xx in the envelope, and changes nothing. */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess } from '../support/hostProcess';

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '0' } });
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
});

const valid = { input: { prompt: 'p' }, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } };

async function runCount(): Promise<number> {
    const r = await api.call('GET', '/pipeline?limit=200', { user: USERS.ada });
    return (r.body.data.items as unknown[]).length;
}

const CASES: [
    string,
    () => Promise<{ status: number; body: { error_code: string | null; data: any } }>,
    number,
    string,
][] = [
    [
        'malformed JSON',
        () => api.call('POST', '/pipeline/run', { user: USERS.dana, raw: '{"input": {' }),
        400,
        'VALIDATION_FAILED',
    ],
    ['empty body', () => api.call('POST', '/pipeline/run', { user: USERS.dana, raw: '' }), 400, 'VALIDATION_FAILED'],
    [
        'wrong content type',
        () =>
            api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                raw: JSON.stringify(valid),
                headers: { 'content-type': 'text/plain' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'unknown field',
        () => api.call('POST', '/pipeline/run', { user: USERS.dana, body: { ...valid, colour: 'red' } }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'unknown nested field',
        () =>
            api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                body: { ...valid, metadata: { ...valid.metadata, owner: 'x' } },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'wrong type',
        () => api.call('POST', '/pipeline/run', { user: USERS.dana, body: { ...valid, input: 'text' } }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'bad enum',
        () =>
            api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                body: { ...valid, metadata: { ...valid.metadata, riskLevel: 'extreme' } },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'missing metadata',
        () => api.call('POST', '/pipeline/run', { user: USERS.dana, body: { input: {} } }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'maxIterations out of range',
        () => api.call('POST', '/pipeline/run', { user: USERS.dana, body: { ...valid, maxIterations: 0 } }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'oversize body',
        () =>
            api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                body: { ...valid, input: { blob: 'x'.repeat(1_100_000) } },
            }),
        413,
        'PAYLOAD_TOO_LARGE',
    ],
    [
        'unsupported api-version',
        () => api.call('POST', '/pipeline/run?api-version=2', { user: USERS.dana, body: valid }),
        400,
        'UNSUPPORTED_API_VERSION',
    ],
    [
        'bad Idempotency-Key',
        () =>
            api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                body: valid,
                headers: { 'idempotency-key': 'x'.repeat(200) },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'path traversal in a run id',
        () => api.call('GET', '/pipeline/status/..%2F..%2Fetc%2Fpasswd', { user: USERS.ada }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'quotes in a run id',
        () => api.call('GET', `/pipeline/logs/${encodeURIComponent("x' OR '1'='1")}`, { user: USERS.ada }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'unknown run',
        () => api.call('GET', '/pipeline/status/run-does-not-exist', { user: USERS.ada }),
        404,
        'NOT_FOUND',
    ],
    [
        'malformed checkpoint id',
        () =>
            api.call('POST', '/pipeline/checkpoints/..%2Fx/decision', {
                user: USERS.ava,
                body: { decision: 'approve' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'bad decision',
        () =>
            api.call('POST', '/pipeline/checkpoints/run-x.1.taste.before.0/decision', {
                user: USERS.ava,
                body: { decision: 'maybe' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'stop without reason',
        () =>
            api.call('POST', '/pipeline/stop', {
                user: USERS.olga,
                body: { orchestrationID: 'run-x', action: 'abort' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'stop with blank reason',
        () =>
            api.call('POST', '/pipeline/stop', {
                user: USERS.olga,
                body: { orchestrationID: 'run-x', action: 'abort', reason: ' \t ' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'stop with bad action',
        () =>
            api.call('POST', '/pipeline/stop', {
                user: USERS.olga,
                body: { orchestrationID: 'run-x', action: 'explode', reason: 'r' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'policy with bad duration',
        () =>
            api.call('PUT', '/checkpoint-policies', {
                user: USERS.carl,
                body: {
                    expectedVersion: 0,
                    rules: [
                        {
                            name: 'r',
                            match: {},
                            position: 'before',
                            requiredRoles: ['Mesh.Approver'],
                            approvals: 1,
                            timeout: 'one day',
                            onTimeout: 'reject',
                            channels: ['email'],
                        },
                    ],
                },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'policy escalating to nobody',
        () =>
            api.call('PUT', '/checkpoint-policies', {
                user: USERS.carl,
                body: {
                    expectedVersion: 0,
                    rules: [
                        {
                            name: 'r',
                            match: {},
                            position: 'before',
                            requiredRoles: ['Mesh.Approver'],
                            approvals: 1,
                            timeout: 'PT1H',
                            onTimeout: 'escalate',
                            channels: ['email'],
                        },
                    ],
                },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'list with a bad limit',
        () => api.call('GET', '/pipeline?limit=100000', { user: USERS.ada }),
        400,
        'VALIDATION_FAILED',
    ],
];

it.each(CASES)('%s → %i %s, nothing changes', async (_name, call, status, code) => {
    const before = await runCount();
    const r = await call();
    expect(r.status).toBe(status);
    expect(r.body.error_code).toBe(code);
    if (code === 'VALIDATION_FAILED' && r.body.data) expect(Array.isArray(r.body.data.errors)).toBe(true);
    expect(await runCount()).toBe(before);
});

it('names the offending field', async () => {
    const r = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        body: { ...valid, metadata: { ...valid.metadata, colour: 'red' } },
    });
    expect(r.body.data.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: '/metadata/colour' })]));
});
