import { countingNotifications, countingRuns, timedEngine } from '../../adapters/telemetry/countingStores';
import { createMetrics, type StateSource } from '../../adapters/telemetry/metrics';
import type { NotificationLog, NotificationRecord } from '../../domain/ports';
import { MemoryRuns } from '../support/domainFakes';

/** SPEC "Observability (v1.1)": the names dashboards and alerts depend on, with their label sets. */
const SPEC_METRICS: Record<string, { type: string; labels: string[] }> = {
    mesh_runs_submitted_total: { type: 'counter', labels: ['team', 'risk'] },
    mesh_runs_finished_total: { type: 'counter', labels: ['status'] },
    mesh_runs: { type: 'gauge', labels: ['status'] },
    mesh_stage_duration_seconds: { type: 'histogram', labels: ['stage', 'outcome'] },
    mesh_checkpoints_open: { type: 'gauge', labels: [] },
    mesh_checkpoint_oldest_wait_seconds: { type: 'gauge', labels: [] },
    mesh_checkpoint_decision_seconds: { type: 'histogram', labels: ['decision'] },
    mesh_admission_queue_depth: { type: 'gauge', labels: [] },
    mesh_events_pending: { type: 'gauge', labels: [] },
    mesh_event_deliveries_total: { type: 'counter', labels: ['outcome'] },
    mesh_notifications_total: { type: 'counter', labels: ['channel', 'outcome'] },
    mesh_http_request_duration_seconds: { type: 'histogram', labels: ['route', 'method', 'status'] },
};
const ID_LIKE = /(^|_)(id|run|checkpoint|user|person|email|actor|correlation)/i;

const source = (over: Partial<StateSource> = {}): StateSource => ({
    runsByStatus: () => Promise.resolve({ Running: 2, AwaitingApproval: 1, Queued: 3 }),
    openCheckpoints: () => Promise.resolve({ open: 1, oldestOpenedAt: '2026-01-01T00:00:00.000Z' }),
    admissionQueueDepth: () => Promise.resolve(3),
    eventsPending: () => Promise.resolve(7),
    ...over,
});

describe('the metrics registry', () => {
    it('registers exactly the SPEC names, with their types and label sets, and no id-like labels', async () => {
        const m = createMetrics({ defaults: false });
        const json = await m.registry.getMetricsAsJSON();
        const mesh = json.filter((j) => j.name.startsWith('mesh_'));
        expect(mesh.map((j) => j.name).sort()).toEqual(Object.keys(SPEC_METRICS).sort());
        for (const [name, spec] of Object.entries(SPEC_METRICS)) {
            const metric = m.registry.getSingleMetric(name) as unknown as { labelNames: string[]; type?: string };
            expect([name, [...metric.labelNames].sort()]).toEqual([name, [...spec.labels].sort()]);
            expect([name, json.find((j) => j.name === name)!.type]).toEqual([name, spec.type]);
            for (const l of metric.labelNames) expect(l).not.toMatch(ID_LIKE);
        }
    });

    it('adds the Node process defaults unless told not to', async () => {
        const text = await createMetrics().registry.metrics();
        expect(text).toMatch(/^process_cpu_user_seconds_total /m);
        expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
    });

    it('computes the store gauges at scrape time, from one read of the source', async () => {
        const now = Date.parse('2026-01-01T00:10:00.000Z');
        const m = createMetrics({ defaults: false, now: () => now });
        const runsByStatus = jest.fn(() => Promise.resolve({ Running: 2, AwaitingApproval: 1, Queued: 3 }));
        m.useStateSource(() => source({ runsByStatus }));
        const text = await m.registry.metrics();
        expect(text).toContain('mesh_runs{status="Running"} 2');
        expect(text).toContain('mesh_runs{status="Completed"} 0');
        expect(text).toContain('mesh_checkpoints_open 1');
        expect(text).toContain('mesh_checkpoint_oldest_wait_seconds 600');
        expect(text).toContain('mesh_admission_queue_depth 3');
        expect(text).toContain('mesh_events_pending 7');
        expect(runsByStatus).toHaveBeenCalledTimes(1);
        // The next scrape reads afresh.
        runsByStatus.mockResolvedValueOnce({ Running: 0, AwaitingApproval: 0, Queued: 0 });
        expect(await m.registry.metrics()).toContain('mesh_runs{status="Running"} 0');
        expect(runsByStatus).toHaveBeenCalledTimes(2);
    });

    it('still answers a scrape when the stores fail (the store gauges say NaN, not 0)', async () => {
        const m = createMetrics({ defaults: false });
        m.useStateSource(() => source({ eventsPending: () => Promise.reject(new Error('store down')) }));
        const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
        const text = await m.registry.metrics();
        warn.mockRestore();
        // prom-client writes `Nan`; Prometheus parses NaN case-insensitively.
        expect(text).toMatch(/^mesh_events_pending nan$/im);
        expect(text).toMatch(/^mesh_checkpoints_open nan$/im);
        expect(text).not.toMatch(/^mesh_runs\{/m);
    });
});

describe('the counting adapters', () => {
    it('count a submission with team and risk, a finish by status and each decision by its wait', async () => {
        const m = createMetrics({ defaults: false });
        const runs = countingRuns(new MemoryRuns(), () => m);
        const run = {
            id: 'run-secret-1',
            status: 'AwaitingApproval',
            metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [] },
            checkpoints: [
                {
                    checkpointId: 'run-secret-1.1.cp',
                    openedAt: '2026-01-01T00:00:00.000Z',
                    status: 'Open',
                    decisions: [],
                },
            ],
        } as never;
        await runs.create(run);
        await runs.update('run-secret-1', (r) => ({
            ...r,
            status: 'Completed',
            checkpoints: [
                {
                    ...r.checkpoints[0]!,
                    status: 'Approved',
                    decisions: [{ actorId: 'u1', decision: 'approve', channel: 'api', at: '2026-01-01T00:01:00.000Z' }],
                },
            ],
        }));
        const text = await m.registry.metrics();
        expect(text).toContain('mesh_runs_submitted_total{team="alpha",risk="high"} 1');
        expect(text).toContain('mesh_runs_finished_total{status="Completed"} 1');
        expect(text).toContain('mesh_checkpoint_decision_seconds_count{decision="approve"} 1');
        expect(text).toContain('mesh_checkpoint_decision_seconds_sum{decision="approve"} 60');
        expect(text).not.toContain('run-secret-1');
    });

    it('time engine calls by stage and outcome', async () => {
        const m = createMetrics({ defaults: false });
        const ok = timedEngine({ invoke: () => Promise.resolve({ ok: true, output: 1, continue: false }) }, () => m);
        const bad = timedEngine({ invoke: () => Promise.resolve({ ok: false, code: 'X', message: 'x' }) }, () => m);
        const down = timedEngine({ invoke: () => Promise.reject(new Error('down')) }, () => m);
        const req = { runId: 'r', stage: 'taste', iteration: 1 } as never;
        await ok.invoke(req);
        await bad.invoke(req);
        await expect(down.invoke(req)).rejects.toThrow('down');
        const text = await m.registry.metrics();
        for (const outcome of ['success', 'failure', 'error'])
            expect(text).toContain(`mesh_stage_duration_seconds_count{stage="taste",outcome="${outcome}"} 1`);
    });

    it('count notifications by channel and outcome (outbox: kept locally)', async () => {
        const m = createMetrics({ defaults: false });
        const inner: NotificationLog = { has: () => Promise.resolve(false), record: () => Promise.resolve() };
        const log = countingNotifications(inner, () => m);
        await log.record({ channel: 'email', status: 'sent', note: 'kept locally' } as NotificationRecord);
        await log.record({ channel: 'teams', status: 'failed' } as NotificationRecord);
        const text = await m.registry.metrics();
        expect(text).toContain('mesh_notifications_total{channel="email",outcome="outbox"} 1');
        expect(text).toContain('mesh_notifications_total{channel="teams",outcome="failed"} 1');
    });
});
