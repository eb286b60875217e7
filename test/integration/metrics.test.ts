/**
 * GET /metrics on the embedded host (SPEC "Observability (v1.1)"): after a high-risk run is approved to completion, the
 * scrape has every SPEC name with sensible values, HTTP durations by route template, and no run or checkpoint id in
 * any label value.
 */
import { Api, approveUntilEnded, USERS } from '../support/api';
import { type HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';

interface Sample {
    name: string;
    labels: Record<string, string>;
    value: number;
}

/** The Prometheus text format (0.0.4), as far as prom-client writes it: `name{l="v",...} value` lines and comments. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
    const samples: Sample[] = [];
    const types = new Map<string, string>();
    for (const line of text.split('\n')) {
        if (line.startsWith('# TYPE ')) {
            const [, , name, type] = line.split(' ');
            types.set(name!, type!);
            continue;
        }
        if (line === '' || line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        if (!m) throw new Error(`not a sample line: ${line}`);
        const labels: Record<string, string> = {};
        for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
            labels[k!] = v!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        samples.push({ name: m[1]!, labels, value: Number(m[3]!.toLowerCase() === 'nan' ? NaN : m[3]) });
    }
    return { samples, types };
}

const SPEC_NAMES = [
    'mesh_runs_submitted_total',
    'mesh_runs_finished_total',
    'mesh_runs',
    'mesh_stage_duration_seconds',
    'mesh_checkpoints_open',
    'mesh_checkpoint_oldest_wait_seconds',
    'mesh_checkpoint_decision_seconds',
    'mesh_admission_queue_depth',
    'mesh_events_pending',
    'mesh_event_deliveries_total',
    'mesh_notifications_total',
    'mesh_http_request_duration_seconds',
];
const STAGES = ['generation', 'filtering', 'creativity', 'taste', 'improvement'];

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '5' } });
    api = new Api(host);
});

afterAll(async () => {
    await host.stop();
});

async function scrape(): Promise<{ samples: Sample[]; types: Map<string, string>; text: string }> {
    const r = await fetch(`${host.origin}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await r.text();
    return { ...parse(text), text };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number =>
    samples
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((sum, s) => sum + s.value, 0);

it('exposes the SPEC metrics after a high-risk run is approved to completion, with no ids in labels', async () => {
    const submitted = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        body: {
            input: { prompt: 'metrics' },
            metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [], title: 'metrics' },
        },
    });
    expect(submitted.status).toBe(202);
    const id = submitted.body.data.orchestrationID as string;

    // While it waits on a person, the store gauges see the open checkpoint.
    await waitUntil(
        async () =>
            (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana })).body.data.status ===
            'AwaitingApproval',
        'the run to await approval',
    );
    const waiting = (await scrape()).samples;
    expect(value(waiting, 'mesh_checkpoints_open')).toBe(1);
    expect(value(waiting, 'mesh_runs', { status: 'AwaitingApproval' })).toBe(1);
    expect(value(waiting, 'mesh_checkpoint_oldest_wait_seconds')).toBeGreaterThanOrEqual(0);

    await approveUntilEnded(api, [id]);
    const checkpointIds = (
        (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana })).body.data.checkpoints as {
            checkpointId: string;
        }[]
    ).map((c) => c.checkpointId);

    // Event deliveries happen in the background (the local Event Grid): wait for them, then read everything.
    const { samples, types, text } = await waitUntil(async () => {
        const s = await scrape();
        const delivered = value(s.samples, 'mesh_event_deliveries_total', { outcome: 'delivered' }) > 0;
        return delivered && value(s.samples, 'mesh_notifications_total') > 0 && s;
    }, 'events to be delivered and approvers notified');

    for (const name of SPEC_NAMES) expect([name, types.has(name)]).toEqual([name, true]);
    expect(types.get('mesh_stage_duration_seconds')).toBe('histogram');
    expect(types.get('mesh_runs')).toBe('gauge');
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);

    expect(value(samples, 'mesh_runs_submitted_total', { team: 'alpha', risk: 'high' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'mesh_runs_finished_total', { status: 'Completed' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'mesh_runs', { status: 'Completed' })).toBe(1);
    expect(value(samples, 'mesh_runs', { status: 'AwaitingApproval' })).toBe(0);
    expect(value(samples, 'mesh_checkpoints_open')).toBe(0);
    expect(value(samples, 'mesh_checkpoint_oldest_wait_seconds')).toBe(0);
    expect(value(samples, 'mesh_admission_queue_depth')).toBe(0);
    for (const stage of STAGES)
        expect(
            value(samples, 'mesh_stage_duration_seconds_count', { stage, outcome: 'success' }),
        ).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'mesh_stage_duration_seconds_count', { outcome: 'success' })).toBeGreaterThanOrEqual(5);
    expect(value(samples, 'mesh_checkpoint_decision_seconds_count', { decision: 'approve' })).toBeGreaterThanOrEqual(2);
    expect(value(samples, 'mesh_event_deliveries_total', { outcome: 'delivered' })).toBeGreaterThanOrEqual(1);
    // The approvers were told of each checkpoint (locally: kept in the outbox, the channels not configured).
    expect(value(samples, 'mesh_notifications_total')).toBeGreaterThanOrEqual(1);

    // HTTP durations by route template, never the concrete path.
    const routes = new Set(
        samples.filter((s) => s.name === 'mesh_http_request_duration_seconds_count').map((s) => s.labels.route),
    );
    expect(routes).toContain('pipeline/run');
    expect(routes).toContain('pipeline/status/{id}');
    expect(routes).toContain('pipeline/checkpoints/{checkpointId}/decision');
    expect(
        value(samples, 'mesh_http_request_duration_seconds_count', {
            route: 'pipeline/run',
            method: 'POST',
            status: '202',
        }),
    ).toBe(1);

    // No label value carries a run or checkpoint id.
    for (const s of samples)
        for (const v of Object.values(s.labels))
            for (const secret of [id, ...checkpointIds]) expect(v.includes(secret) ? `${s.name}: ${v}` : '').toBe('');
    expect(text).not.toContain(id);
}, 120_000);
