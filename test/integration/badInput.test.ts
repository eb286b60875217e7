/** Bad input never reaches a 5xx, always answers a 4xx in the envelope, and changes nothing. */
import { connect } from 'node:net';

import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess } from '../support/hostProcess';

let host: HostProcess;
let api: Api;
/** A run of team alpha, which bob (team beta) may not see. */
let alphaRun: string;

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '0' } });
    api = new Api(host);
    const r = await api.call('POST', '/pipeline/run', { user: USERS.dana, body: valid });
    alphaRun = r.body.data.orchestrationID as string;
});

afterAll(async () => {
    await host?.stop();
});

const valid: { input: object; metadata: object } = {
    input: { prompt: 'p' },
    metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] },
};

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
    [
        'events of an unknown run',
        () => api.call('GET', '/pipeline/events?orchestrationID=run-unknown', { user: USERS.ada }),
        404,
        'NOT_FOUND',
    ],
    [
        "events of another team's run",
        () => api.call('GET', `/pipeline/events?orchestrationID=${alphaRun}`, { user: USERS.bob }),
        404,
        'NOT_FOUND',
    ],
    [
        'list since a word',
        () => api.call('GET', '/pipeline?since=yesterday', { user: USERS.ada }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'list since a day that does not exist',
        () => api.call('GET', '/pipeline?since=2026-02-30T00:00:00Z', { user: USERS.ada }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'list since a month that does not exist',
        () => api.call('GET', '/pipeline?since=2026-13-01', { user: USERS.ada }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'an over-long URL',
        () => api.call('GET', `/pipeline?q=${'x'.repeat(20_000)}`, { user: USERS.ada }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'over-large headers',
        () => api.call('GET', '/pipeline', { user: USERS.ada, headers: { 'x-padding': 'y'.repeat(20_000) } }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'a body in ISO-8859-1',
        () =>
            api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                raw: JSON.stringify(valid),
                headers: { 'content-type': 'application/json; charset=iso-8859-1' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'a body in UTF-16',
        () =>
            api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                raw: JSON.stringify(valid),
                headers: { 'content-type': 'application/json; charset="UTF-16"' },
            }),
        400,
        'VALIDATION_FAILED',
    ],
    [
        'a decision in ISO-8859-1',
        () =>
            api.call('POST', '/pipeline/checkpoints/run-x.1.taste.before.0/decision', {
                user: USERS.ava,
                raw: JSON.stringify({ decision: 'approve' }),
                headers: { 'content-type': 'application/json;charset=latin1' },
            }),
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

it('names /since in the errors of a date that is not real', async () => {
    for (const since of ['yesterday', '2026-02-30T00:00:00Z', '2026-13-01', '2026-01-01T25:00:00Z']) {
        const r = await api.call('GET', `/pipeline?since=${encodeURIComponent(since)}`, { user: USERS.ada });
        expect(r.status).toBe(400);
        expect(r.body.data.errors).toEqual([expect.objectContaining({ path: '/query/since' })]);
    }
    for (const since of ['2026-02-28T23:59:59Z', '2026-02-01', '2024-02-29T10:00:00.123+02:00']) {
        expect(
            (await api.call('GET', `/pipeline?since=${encodeURIComponent(since)}`, { user: USERS.ada })).status,
        ).toBe(200);
    }
});

it('names the content type of a body in another charset, and accepts utf-8 in any case', async () => {
    const r = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        raw: JSON.stringify(valid),
        headers: { 'content-type': 'application/json; charset=iso-8859-1' },
    });
    expect(r.body.data.errors).toEqual([expect.objectContaining({ path: '/headers/content-type' })]);
    for (const type of ['application/json; charset=UTF-8', 'application/json;charset=utf-8', 'application/json']) {
        const ok = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            raw: JSON.stringify(valid),
            headers: { 'content-type': type },
        });
        expect(ok.status).toBe(202);
    }
});

it('answers a too-long URL in the envelope, saying so', async () => {
    const r = await api.call('GET', `/pipeline?q=${'x'.repeat(20_000)}`, { user: USERS.ada });
    expect(r.body).toEqual({
        error_code: 'VALIDATION_FAILED',
        message: expect.stringMatching(/URL or headers are too long/),
        correlationID: expect.any(String),
        data: { errors: [expect.objectContaining({ path: '/' })] },
    });
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
});

it('answers a malformed request in the envelope where it still can', async () => {
    const origin = new URL(host.origin);
    const text = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(origin.port), origin.hostname, () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
        let out = '';
        socket.on('data', (d: Buffer) => (out += d.toString()));
        socket.on('end', () => resolve(out));
        socket.on('error', reject);
        socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
    });
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error_code: string; data: unknown };
    expect(body.error_code).toBe('VALIDATION_FAILED');
});
