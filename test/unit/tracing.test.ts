/**
 * Spans made in-process (adapters/telemetry/tracing.ts and its callers), caught by an in-memory exporter: each engine
 * call is a CLIENT span whose own context is the traceparent the engine receives; a decision is a span in the run's
 * trace linked to the deciding request; an HTTP request is a SERVER span under the incoming traceparent (or the host's
 * trace context) named by its route template, and a submit inside it hands the run that span's context.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { HttpRequest, InvocationContext } from '@azure/functions';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { HttpEngineClient } from '../../adapters/engines/httpEngineClient';
import { enveloped, observed } from '../../adapters/http/envelope';
import { meshMetrics } from '../../adapters/telemetry/metrics';
import {
    activeTraceparent,
    decisionSpan,
    publishSpan,
    startTracing,
    startTracingWith,
    tracedNotifier,
    tracingEnabled,
} from '../../adapters/telemetry/tracing';
import { type Stage, STAGES } from '../../domain/pipeline';
import type { Notifier } from '../../domain/ports';
import { hostConfig } from '../../local/hostConfig';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const RUN_PARENT = '00f067aa0ba902b7';
const RUN_TRACEPARENT = `00-${TRACE_ID}-${RUN_PARENT}-01`;

const exporter = new InMemorySpanExporter();

beforeAll(async () => {
    await startTracingWith([new SimpleSpanProcessor(exporter)]);
});
afterEach(() => exporter.reset());

const spans = (name?: string): ReadableSpan[] =>
    exporter.getFinishedSpans().filter((s) => name === undefined || s.name === name);
const parentId = (s: ReadableSpan) => s.parentSpanContext?.spanId;

describe('engine calls', () => {
    let server: Server;
    const received: string[] = [];
    let base = '';

    beforeAll(async () => {
        server = createServer((req, res) => {
            received.push(String(req.headers.traceparent));
            req.resume();
            req.on('end', () => {
                res.writeHead(200, { 'content-type': 'application/json' });
                res.end(JSON.stringify({ error_code: null, message: 'ok', data: { output: { x: 1 } } }));
            });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
    });

    it('each call is a CLIENT span in the run trace whose own id is the parent id the engine receives', async () => {
        const urls = Object.fromEntries(STAGES.map((s) => [s, `${base}/${s}`])) as Record<Stage, string>;
        const client = new HttpEngineClient({ urls, timeoutMs: 2_000 });
        for (const stage of STAGES)
            await client.invoke({
                runId: 'run-1',
                stage,
                iteration: 1,
                input: {},
                metadata: {},
                correlationID: 'c',
                traceparent: RUN_TRACEPARENT,
                idempotencyKey: `run-1:${stage}:1`,
            });

        const calls = spans().filter((s) => s.kind === SpanKind.CLIENT);
        expect(calls.map((s) => s.name)).toEqual(STAGES.map((s) => `engine ${s}`));
        for (const s of calls) {
            expect(s.spanContext().traceId).toBe(TRACE_ID);
            expect(parentId(s)).toBe(RUN_PARENT);
            expect(s.attributes['mesh.run_id']).toBe('run-1');
            expect(s.attributes['http.response.status_code']).toBe(200);
        }
        const ids = calls.map((s) => s.spanContext().spanId);
        expect(new Set(ids).size).toBe(5);
        // What each engine got names its own client span, never the run's parent id again.
        expect(received).toEqual(ids.map((id) => `00-${TRACE_ID}-${id}-01`));
    });
});

describe('decisions', () => {
    it("checkpoint.decide is a child of the run's stored context, linked to the deciding request's span", async () => {
        const handler = observed(async () => {
            await decisionSpan({ id: 'run-9', traceparent: RUN_TRACEPARENT }, 'approve', 'api', () =>
                Promise.resolve(),
            );
            return { status: 202 };
        });
        const requestTrace = '0af7651916cd43dd8448eb211c80319c';
        await handler(
            new HttpRequest({
                method: 'POST',
                url: 'http://localhost/pipeline/checkpoints/cp-1/decision',
                headers: { traceparent: `00-${requestTrace}-b7ad6b7169203331-01` },
            }),
            invocation('pipeline/checkpoints/{checkpointId}/decision'),
        );

        const [decide] = spans('checkpoint.decide');
        const [request] = spans('POST pipeline/checkpoints/{checkpointId}/decision');
        expect(decide!.spanContext().traceId).toBe(TRACE_ID);
        expect(parentId(decide!)).toBe(RUN_PARENT);
        expect(decide!.attributes).toMatchObject({ 'mesh.run_id': 'run-9', 'mesh.decision': 'approve' });
        expect(request!.spanContext().traceId).toBe(requestTrace);
        expect(decide!.links.map((l) => l.context.spanId)).toEqual([request!.spanContext().spanId]);
    });
});

function invocation(route: string, traceParent?: string): InvocationContext {
    return new InvocationContext({
        functionName: 'fn',
        options: { trigger: { type: 'httpTrigger', name: 'req', route }, extraInputs: [], extraOutputs: [] },
        ...(traceParent ? { traceContext: { traceParent, traceState: undefined, attributes: {} } } : {}),
    });
}

describe('HTTP requests', () => {
    it('a SERVER span per request under the incoming traceparent, named by the route template', async () => {
        let stored: string | undefined;
        const handler = enveloped(() => {
            stored = activeTraceparent();
            return Promise.resolve({ status: 202, data: { ok: true } });
        });
        await handler(
            new HttpRequest({
                method: 'POST',
                url: 'http://localhost/pipeline/run',
                headers: { traceparent: RUN_TRACEPARENT },
            }),
            invocation('pipeline/run'),
        );
        const [server] = spans();
        expect(server!.name).toBe('POST pipeline/run');
        expect(server!.kind).toBe(SpanKind.SERVER);
        expect(server!.spanContext().traceId).toBe(TRACE_ID);
        expect(parentId(server!)).toBe(RUN_PARENT);
        expect(server!.attributes).toMatchObject({
            'http.request.method': 'POST',
            'http.route': 'pipeline/run',
            'http.response.status_code': 202,
        });
        // What runPipeline stores as the run's trace context: this span, in the incoming trace.
        expect(stored).toBe(`00-${TRACE_ID}-${server!.spanContext().spanId}-01`);
    });

    it("prefers the Functions host's trace context for the invocation, and marks 5xx as errors", async () => {
        const hostParent = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
        await observed(() => Promise.resolve({ status: 503 }))(
            new HttpRequest({ method: 'GET', url: 'http://localhost/x', headers: { traceparent: RUN_TRACEPARENT } }),
            invocation('pipeline/events', hostParent),
        );
        const [server] = spans();
        expect(server!.spanContext().traceId).toBe('1'.repeat(32));
        expect(parentId(server!)).toBe('2'.repeat(16));
        expect(server!.status.code).toBe(SpanStatusCode.ERROR);
    });

    it('a request wrapped twice (enveloped inside observed) is one span and one observation', async () => {
        const before = await countOf('openapi.json');
        await observed(enveloped(() => Promise.resolve({ data: 1 })))(
            new HttpRequest({ method: 'GET', url: 'http://localhost/openapi.json' }),
            invocation('openapi.json'),
        );
        expect(spans()).toHaveLength(1);
        expect(spans()[0]!.parentSpanContext).toBeUndefined();
        expect((await countOf('openapi.json')) - before).toBe(1);
    });

    it('health probes are counted but not traced', async () => {
        const before = await countOf('health/live');
        await enveloped(() => Promise.resolve({ data: 1 }))(
            new HttpRequest({ method: 'GET', url: 'http://localhost/health/live' }),
            invocation('health/live'),
        );
        expect(spans()).toHaveLength(0);
        expect((await countOf('health/live')) - before).toBe(1);
    });
});

async function countOf(route: string): Promise<number> {
    const m = await meshMetrics().httpDuration.get();
    return m.values
        .filter((v) => v.metricName === 'mesh_http_request_duration_seconds_count' && v.labels.route === route)
        .reduce((sum, v) => sum + v.value, 0);
}

describe('notifications and publishing', () => {
    it('each channel send is a CLIENT span with the run id and channel, never the address', async () => {
        const inner: Notifier = {
            channel: 'email',
            configured: true,
            addressOf: () => 'ava@example.com',
            send: () => Promise.reject(new Error('smtp down for ava@example.com')),
        };
        const n = tracedNotifier(inner);
        expect(n.configured).toBe(true);
        await expect(
            n.send(
                {
                    eventId: 'e',
                    eventType: 'mesh.checkpoint.opened',
                    runId: 'run-3',
                    checkpointId: 'cp',
                    recipient: { id: 'ava', name: 'Ava' } as never,
                    subject: 's',
                    lines: [],
                    links: [],
                },
                'ava@example.com',
            ),
        ).rejects.toThrow('smtp down');
        const [span] = spans('notify email');
        expect(span!.kind).toBe(SpanKind.CLIENT);
        expect(span!.attributes).toMatchObject({ 'mesh.run_id': 'run-3', 'mesh.channel': 'email' });
        expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Error' });
        expect(JSON.stringify(span!.attributes)).not.toContain('ava@example.com');
    });

    it('a published batch is a PRODUCER span of its own trace', async () => {
        await publishSpan(3, 2, () => Promise.resolve());
        const [span] = spans('publish mesh-events');
        expect(span!.kind).toBe(SpanKind.PRODUCER);
        expect(span!.attributes).toMatchObject({ 'messaging.system': 'eventgrid', 'messaging.batch.message_count': 3 });
    });
});

describe('set-up', () => {
    it('starts once: a later start keeps the provider chosen first', async () => {
        expect(tracingEnabled()).toBe(true);
        expect(await startTracing({ serviceName: 'x' })).toBe('custom');
    });

    it("host.json turns on the Durable extension's distributed tracing V2, and the embedded host still reads it", () => {
        const root = join(__dirname, '..', '..');
        const hostJson = JSON.parse(readFileSync(join(root, 'host.json'), 'utf8')) as {
            extensions: { durableTask: { tracing?: unknown } };
        };
        expect(hostJson.extensions.durableTask.tracing).toEqual({ DistributedTracingEnabled: true, Version: 'V2' });
        expect(hostConfig({}, root).taskHub).toBe('MeshHub');
    });
});
