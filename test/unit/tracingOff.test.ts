/**
 * Neither exporter configured (adapters/telemetry/tracing.ts): no provider is registered, spans do not record, and an
 * engine still receives the run's traceparent unchanged (what it got before spans existed).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { HttpRequest, InvocationContext } from '@azure/functions';
import { trace } from '@opentelemetry/api';

import { parseTracingConfig } from '../../adapters/config';
import { HttpEngineClient } from '../../adapters/engines/httpEngineClient';
import { enveloped } from '../../adapters/http/envelope';
import { activeTraceparent, startTracing, tracer, tracingEnabled } from '../../adapters/telemetry/tracing';
import { type Stage, STAGES } from '../../domain/pipeline';

const RUN_TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

it('reads the settings: service name default, OTLP URL by the OpenTelemetry rule', () => {
    expect(parseTracingConfig({})).toEqual({ serviceName: 'mesh-orchestrator' });
    expect(parseTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318/', OTEL_SERVICE_NAME: 'm' })).toEqual({
        serviceName: 'm',
        otlpTracesUrl: 'http://otel:4318/v1/traces',
    });
    expect(
        parseTracingConfig({
            OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318',
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://other:4318/traces',
        }).otlpTracesUrl,
    ).toBe('http://other:4318/traces');
    expect(() => parseTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'otel:4318' })).toThrow(
        /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    );
});

describe('with nothing set', () => {
    let server: Server;
    const received: string[] = [];

    beforeAll(async () => {
        expect(await startTracing(parseTracingConfig({}))).toBe('none');
        server = createServer((req, res) => {
            received.push(String(req.headers.traceparent));
            req.resume();
            req.on('end', () => {
                res.writeHead(200, { 'content-type': 'application/json' });
                res.end(JSON.stringify({ error_code: null, message: 'ok', data: { output: 1 } }));
            });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
    });

    it('registers no provider: spans do not record', () => {
        expect(tracingEnabled()).toBe(false);
        const span = tracer().startSpan('x');
        expect(span.isRecording()).toBe(false);
        span.end();
        expect(trace.getTracerProvider().getTracer('y').startSpan('z').isRecording()).toBe(false);
    });

    it("forwards the run's traceparent to engines unchanged, and a submit keeps the request's own", async () => {
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        const urls = Object.fromEntries(STAGES.map((s) => [s, base])) as Record<Stage, string>;
        await new HttpEngineClient({ urls, timeoutMs: 2_000 }).invoke({
            runId: 'r',
            stage: 'generation',
            iteration: 1,
            input: {},
            metadata: {},
            correlationID: 'c',
            traceparent: RUN_TRACEPARENT,
            idempotencyKey: 'k',
        });
        expect(received).toEqual([RUN_TRACEPARENT]);

        let active: string | undefined = 'unset';
        await enveloped(() => {
            active = activeTraceparent();
            return Promise.resolve({ data: 1 });
        })(
            new HttpRequest({
                method: 'POST',
                url: 'http://l/pipeline/run',
                headers: { traceparent: RUN_TRACEPARENT },
            }),
            new InvocationContext({ functionName: 'runPipeline' }),
        );
        expect(active).toBeUndefined();
    });
});
