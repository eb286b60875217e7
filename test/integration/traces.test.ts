/**
 * One trace per run on the real embedded host (SPEC "Observability (v1.1)"): the host exports OTLP/HTTP JSON to a tiny
 * receiver in this test (OTEL_EXPORTER_OTLP_ENDPOINT, a short batch delay). A high-risk run submitted with a
 * `traceparent` and approved to its end is one trace with the incoming trace id: the submit request's span, a CLIENT
 * span per engine call (distinct ids, each the parent id the engine received), the activities and each decision,
 * parented to the run's context and linked to the deciding request. The non-enveloped routes are spans and HTTP
 * durations too, by route template.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

import { engineUrlKey } from '../../adapters/engines/config';
import { STAGES } from '../../domain/pipeline';
import { type SimulatedEngines, startSimulatedEngines } from '../../local/engines/simulator';
import { Api, approveUntilEnded, USERS } from '../support/api';
import { type HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';

const TRACE_ID = '5c0d2a1e9f8b7a6c5d4e3f2a1b0c9d8e';
const INCOMING_PARENT = '1a2b3c4d5e6f7081';
const TRACEPARENT = `00-${TRACE_ID}-${INCOMING_PARENT}-01`;

/** OTLP span kinds (SPAN_KIND_*). */
const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

interface Span {
    traceId: string;
    spanId: string;
    parentSpanId?: string;
    name: string;
    kind: number;
    attributes: Record<string, unknown>;
    links: { traceId: string; spanId: string }[];
    service?: string;
}

interface OtlpValue {
    stringValue?: string;
    intValue?: string | number;
    boolValue?: boolean;
    doubleValue?: number;
}
interface OtlpKeyValue {
    key: string;
    value: OtlpValue;
}
interface OtlpExport {
    resourceSpans?: {
        resource?: { attributes?: OtlpKeyValue[] };
        scopeSpans?: {
            spans?: (Omit<Span, 'attributes' | 'links'> & {
                attributes?: OtlpKeyValue[];
                links?: { traceId: string; spanId: string }[];
            })[];
        }[];
    }[];
}

const valueOf = (v: OtlpValue): unknown =>
    v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.boolValue ?? v.doubleValue;
const attrs = (kvs: OtlpKeyValue[] = []) => Object.fromEntries(kvs.map((kv) => [kv.key, valueOf(kv.value)]));

/** A minimal OTLP/HTTP JSON trace receiver: POST /v1/traces, every span kept. */
async function startReceiver(): Promise<{ url: string; spans: Span[]; server: Server }> {
    const spans: Span[] = [];
    const server = createServer((req: IncomingMessage, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
            if (req.method !== 'POST' || req.url !== '/v1/traces') {
                res.writeHead(404).end();
                return;
            }
            let body = Buffer.concat(chunks);
            if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
            const payload = JSON.parse(body.toString('utf8')) as OtlpExport;
            for (const rs of payload.resourceSpans ?? []) {
                const service = attrs(rs.resource?.attributes)['service.name'] as string | undefined;
                for (const ss of rs.scopeSpans ?? [])
                    for (const s of ss.spans ?? [])
                        spans.push({
                            ...s,
                            attributes: attrs(s.attributes),
                            links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
                            ...(service ? { service } : {}),
                        });
            }
            res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let engines: SimulatedEngines;
const engineCalls: { stage: string; traceparent: string | undefined }[] = [];
let host: HostProcess;
let api: Api;

beforeAll(async () => {
    receiver = await startReceiver();
    engines = await startSimulatedEngines({ latencyMs: 5, onInvoke: (c) => engineCalls.push(c) });
    host = await startHostProcess({
        env: {
            OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
            OTEL_BSP_SCHEDULE_DELAY: '100',
            OTEL_SERVICE_NAME: 'mesh-trace-test',
            ...Object.fromEntries(STAGES.map((s) => [engineUrlKey(s), engines.urls[s]])),
        },
    });
    api = new Api(host);
}, 60_000);

afterAll(async () => {
    await host?.stop();
    await engines?.stop();
    receiver?.server.closeAllConnections();
    await new Promise((resolve) => receiver?.server.close(resolve));
});

it('a high-risk run approved to its end is one trace from the submitting request through every engine call and decision', async () => {
    const submitted = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        headers: { traceparent: TRACEPARENT },
        body: {
            input: { prompt: 'traces' },
            metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [], title: 'traces' },
        },
    });
    expect(submitted.status).toBe(202);
    const id = submitted.body.data.orchestrationID as string;
    await approveUntilEnded(api, [id]);
    const status = (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana })).body.data;
    expect(status.status).toBe('Completed');
    const decisions = (status.checkpoints as { decisions: unknown[] }[]).reduce((n, c) => n + c.decisions.length, 0);
    expect(decisions).toBeGreaterThanOrEqual(1);

    // Poll until every engine call's client span and every decision span has been exported.
    const received = engineCalls.map((c) => c.traceparent ?? '');
    const spans = await waitUntil(
        () => {
            const all = receiver.spans;
            const ids = new Set(all.map((s) => s.spanId));
            const decided = all.filter((s) => s.name === 'checkpoint.decide').length;
            const allCalls = received.every((tp) => ids.has(tp.split('-')[2] ?? ''));
            return Promise.resolve(allCalls && decided >= decisions && [...all]);
        },
        'the spans of the run to be exported',
        30_000,
        100,
    );
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['mesh-trace-test']));

    // The submitting request: a SERVER span under the incoming traceparent, its context the run's root.
    const submit = spans.find((s) => s.name === 'POST pipeline/run')!;
    expect(submit).toBeDefined();
    expect(submit.kind).toBe(KIND.server);
    expect(submit.traceId).toBe(TRACE_ID);
    expect(submit.parentSpanId).toBe(INCOMING_PARENT);
    expect(submit.attributes['http.route']).toBe('pipeline/run');

    // Everything done for the run is in that one trace.
    const ofRun = spans.filter((s) => s.attributes['mesh.run_id'] === id);
    expect(ofRun.length).toBeGreaterThan(10);
    expect(new Set(ofRun.map((s) => s.traceId))).toEqual(new Set([TRACE_ID]));

    // Activities: each a span in the trace; runStage ones are the engine calls' parents.
    const runStages = ofRun.filter((s) => s.name === 'activity meshPipeline_runStage');
    const records = ofRun.filter((s) => s.name === 'activity meshPipeline_record');
    expect(runStages.length).toBeGreaterThanOrEqual(5);
    expect(records.length).toBeGreaterThanOrEqual(3);
    for (const a of [...runStages, ...records]) expect(a.parentSpanId).toBe(submit.spanId);

    // Engine calls: a CLIENT span each, all five stages, distinct ids, each the parent id its engine received.
    const calls = ofRun.filter((s) => s.kind === KIND.client && s.name.startsWith('engine '));
    expect(new Set(calls.map((s) => s.attributes['mesh.stage']))).toEqual(new Set(STAGES));
    const callIds = calls.map((s) => s.spanId);
    expect(new Set(callIds).size).toBe(callIds.length);
    const runStageIds = new Set(runStages.map((s) => s.spanId));
    for (const c of calls) expect(runStageIds.has(c.parentSpanId ?? '')).toBe(true);
    expect(received.length).toBe(calls.length);
    expect(received.sort()).toEqual(callIds.map((sid) => `00-${TRACE_ID}-${sid}-01`).sort());

    // Decisions: in the run's trace under its root context, linked to the deciding request (another trace).
    const decides = ofRun.filter((s) => s.name === 'checkpoint.decide');
    expect(decides.length).toBeGreaterThanOrEqual(decisions);
    const decisionRequests = spans.filter((s) => s.name === 'POST pipeline/checkpoints/{checkpointId}/decision');
    for (const d of decides) {
        expect(d.parentSpanId).toBe(submit.spanId);
        expect(d.attributes['mesh.decision']).toBe('approve');
        expect(d.links).toHaveLength(1);
        const request = decisionRequests.find((r) => r.spanId === d.links[0]!.spanId);
        expect(request).toBeDefined();
        expect(request!.traceId).toBe(d.links[0]!.traceId);
        expect(request!.traceId).not.toBe(TRACE_ID);
    }

    // No concrete ids in span names: route templates only.
    for (const s of spans) expect(s.name.includes(id) ? s.name : '').toBe('');
}, 150_000);

it('non-enveloped routes are server spans and HTTP durations by route template', async () => {
    const origin = host.origin;
    const answers = await Promise.all([
        fetch(`${origin}/openapi.json`),
        fetch(`${origin}/dashboard`),
        fetch(`${origin}/widget/mesh-dashboard.js`),
        fetch(`${origin}/approvals/not-a-token`),
        fetch(`${origin}/pipeline/events`),
        fetch(`${origin}/pipeline/logs/run-x?format=ndjson`),
    ]);
    await Promise.all(answers.map((r) => r.arrayBuffer()));
    const routes = [
        'openapi.json',
        'dashboard',
        'widget/mesh-dashboard.js',
        'approvals/{token}',
        'pipeline/events',
        'pipeline/logs/{id}',
    ];
    const text = await (await fetch(`${origin}/metrics`)).text();
    for (const route of routes)
        expect([
            route,
            text.includes(`mesh_http_request_duration_seconds_count{route="${route}",method="GET"`),
        ]).toEqual([route, true]);
    expect(text).not.toContain('not-a-token');
    expect(text).not.toContain('run-x');

    const names = await waitUntil(
        () => {
            const n = new Set(receiver.spans.filter((s) => s.kind === KIND.server).map((s) => s.name));
            return Promise.resolve(routes.every((r) => n.has(`GET ${r}`)) && n);
        },
        'the server spans of the non-enveloped routes',
        20_000,
        100,
    );
    expect(names.has('GET metrics')).toBe(false);
}, 60_000);
