/**
 * The one place spans are set up and their trace context moves between text and OpenTelemetry (SPEC "Observability
 * (v1.1)", STYLE.md §11). Code elsewhere asks for `tracer()` and the helpers below; nothing else configures an
 * exporter.
 *
 * `startTracing` runs once per process (functions/hooks/tracing.ts, an `appStart` hook, so on the Functions host and
 * the embedded host alike): `APPLICATIONINSIGHTS_CONNECTION_STRING` → Azure Monitor through `applicationinsights`
 * (which registers its own provider; an OTLP processor joins it when both are set), `OTEL_EXPORTER_OTLP_ENDPOINT` →
 * OTLP/HTTP JSON with a batch processor, neither → no provider at all: the API's no-op tracer answers, and a span
 * started from a run's `traceparent` is that traceparent again (what engines got before spans existed).
 *
 * Spans are made by hand through `@opentelemetry/api` at the edges (HTTP, activities, engine calls, publishing,
 * notifications, decisions), never in orchestrator code: a replay would repeat them.
 */
import {
    type Attributes,
    type Context,
    context,
    type Link,
    ROOT_CONTEXT,
    type Span,
    SpanKind,
    SpanStatusCode,
    trace,
    type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';

import type { Notifier } from '../../domain/ports';
import { DEFAULT_SERVICE_NAME, type TracingConfig, tracingConfig } from '../config';

/** The instrumentation scope of every span of this app. */
export const TRACER_NAME = 'mesh-orchestrator';

const propagator = new W3CTraceContextPropagator();
const getter = {
    keys: (carrier: Record<string, string>) => Object.keys(carrier),
    get: (carrier: Record<string, string>, key: string) => carrier[key],
};
const setter = {
    set: (carrier: Record<string, string>, key: string, value: string) => {
        carrier[key] = value;
    },
};

export type TracingMode = 'none' | 'otlp' | 'azure-monitor' | 'azure-monitor+otlp' | 'custom';

interface Started {
    mode: TracingMode;
    shutdown: () => Promise<void>;
}

let started: Started | undefined;

/**
 * Sets up export as `cfg` says, once per process (later calls answer the mode chosen first). Logs the mode and, for
 * OTLP, the collector URL; never the connection string.
 */
export async function startTracing(cfg: TracingConfig = tracingConfig()): Promise<TracingMode> {
    if (started) return started.mode;
    const appInsights = cfg.appInsightsConnectionString;
    const otlp = cfg.otlpTracesUrl;
    if (!appInsights && !otlp) {
        started = { mode: 'none', shutdown: () => Promise.resolve() };
        return 'none';
    }
    // Loaded only when exporting: a host that exports nothing pays for none of it.
    const { resourceFromAttributes } = await import('@opentelemetry/resources');
    const { ATTR_SERVICE_NAME } = await import('@opentelemetry/semantic-conventions');
    const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: cfg.serviceName });
    const processors = [];
    if (otlp) {
        const { BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
        const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
        // OTLP/HTTP JSON; OTEL_BSP_* and OTEL_EXPORTER_OTLP_HEADERS apply as the SDK reads them.
        processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: otlp })));
    }
    if (appInsights) {
        const ai = await import('applicationinsights');
        ai.useAzureMonitor({
            azureMonitorExporterOptions: { connectionString: appInsights },
            resource,
            // Whole traces or none: a ratio (hash of the trace id, the same in every process), not a rate limit
            // that would keep some spans of a run and drop others.
            samplingRatio: 1,
            tracesPerSecond: 0,
            // Our own server spans cover HTTP; the Azure SDK spans (Cosmos DB, Service Bus, Key Vault) stay on.
            instrumentationOptions: { http: { enabled: false } },
            spanProcessors: processors,
        });
        started = {
            mode: otlp ? 'azure-monitor+otlp' : 'azure-monitor',
            shutdown: async () => {
                await ai.flushAzureMonitor();
                await ai.shutdownAzureMonitor();
            },
        };
    } else {
        await startTracingWith(processors, cfg.serviceName, 'otlp');
    }
    console.info(
        `tracing: exporting spans as ${cfg.serviceName} to ${[
            ...(appInsights ? ['Azure Monitor'] : []),
            ...(otlp ? [`OTLP ${otlp}`] : []),
        ].join(' and ')}`,
    );
    return started?.mode ?? 'none';
}

/**
 * Registers a Node tracer provider with `processors` (the OTLP path; tests pass an in-memory exporter's processor).
 * Sampling: ParentBased(AlwaysOn) unless OTEL_TRACES_SAMPLER says otherwise (the SDK reads it).
 */
export async function startTracingWith(
    processors: SpanProcessor[],
    serviceName = DEFAULT_SERVICE_NAME,
    mode: TracingMode = 'custom',
): Promise<void> {
    const { NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node');
    const { resourceFromAttributes } = await import('@opentelemetry/resources');
    const { ATTR_SERVICE_NAME } = await import('@opentelemetry/semantic-conventions');
    const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName });
    const provider = new NodeTracerProvider({ resource, spanProcessors: processors });
    provider.register();
    started = { mode, shutdown: () => provider.shutdown() };
}

/** Whether spans are exported in this process (worth a store read to find a span's parent). */
export function tracingEnabled(): boolean {
    return started !== undefined && started.mode !== 'none';
}

/**
 * The parent for work on behalf of a run whose trace context is `traceparent`: the active span when it is in that
 * trace already (an engine call inside its activity's span), else the run's context itself.
 */
export function runParent(traceparent: string | undefined): Context {
    const active = trace.getSpanContext(context.active());
    const run = contextOf(traceparent);
    const runTrace = trace.getSpanContext(run)?.traceId;
    return active && trace.isSpanContextValid(active) && active.traceId === runTrace ? context.active() : run;
}

/**
 * A decision on a checkpoint as a span in the run's trace (`checkpoint.decide`): parented to the run's stored trace
 * context, linked to the deciding request's span (another trace, or none), around handing the decision to the
 * workflow.
 */
export function decisionSpan<T>(
    run: { id: string; traceparent?: string },
    decision: string,
    channel: 'api' | 'link',
    fn: () => Promise<T>,
): Promise<T> {
    return inSpan(
        'checkpoint.decide',
        {
            parent: contextOf(run.traceparent),
            links: activeLink({ 'mesh.link': 'deciding request' }),
            attributes: { 'mesh.run_id': run.id, 'mesh.decision': decision, 'mesh.channel': channel },
        },
        fn,
    );
}

/** A channel whose every send is a CLIENT span `notify {channel}` (run id as an attribute; never the address). */
export function tracedNotifier(n: Notifier): Notifier {
    return {
        channel: n.channel,
        get configured() {
            return n.configured;
        },
        addressOf: (person) => n.addressOf(person),
        send: (message, to) =>
            inSpan(
                `notify ${n.channel}`,
                {
                    kind: SpanKind.CLIENT,
                    attributes: {
                        'mesh.run_id': message.runId,
                        'mesh.channel': n.channel,
                        'mesh.event_type': message.eventType,
                    },
                },
                () => n.send(message, to),
            ),
    };
}

/**
 * One batch handed to Event Grid as a PRODUCER span. A batch mixes runs and is drained in the background, so it starts
 * its own trace, linked to the span that nudged the drain (if any), rather than joining one run's trace.
 */
export function publishSpan<T>(events: number, runs: number, fn: () => Promise<T>): Promise<T> {
    return inSpan(
        'publish mesh-events',
        {
            kind: SpanKind.PRODUCER,
            parent: ROOT_CONTEXT,
            links: activeLink(),
            attributes: {
                'messaging.system': 'eventgrid',
                'messaging.operation.type': 'send',
                'messaging.batch.message_count': events,
                'mesh.runs': runs,
            },
        },
        fn,
    );
}

/** Sends what is still buffered and stops exporting (the `appTerminate` hook). */
export async function stopTracing(): Promise<void> {
    const s = started;
    if (!s) return;
    try {
        await s.shutdown();
    } catch (e: unknown) {
        console.warn(`tracing: flushing spans at shutdown failed: ${e instanceof Error ? e.message : String(e)}`);
    }
}

/** The tracer every span of this app comes from. */
export function tracer(): Tracer {
    return trace.getTracer(TRACER_NAME);
}

/** A context whose parent is `traceparent` (W3C), or the root context when it is missing or malformed. */
export function contextOf(traceparent: string | null | undefined, tracestate?: string | null): Context {
    if (!traceparent) return ROOT_CONTEXT;
    return propagator.extract(ROOT_CONTEXT, { traceparent, ...(tracestate ? { tracestate } : {}) }, getter);
}

/** The W3C `traceparent` naming `span` as the parent, or undefined when its context is invalid. */
export function traceparentOfSpan(span: Span): string | undefined {
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    return carrier.traceparent;
}

/**
 * The `traceparent` of the span active now if it records (a traced request: the run's trace continues from it), else
 * undefined.
 */
export function activeTraceparent(): string | undefined {
    const span = trace.getSpan(context.active());
    return span?.isRecording() ? traceparentOfSpan(span) : undefined;
}

/** The span context of the span active now, for a link (undefined when none is valid). */
export function activeLink(attributes?: Attributes): Link[] {
    const sc = trace.getSpan(context.active())?.spanContext();
    return sc && trace.isSpanContextValid(sc) ? [{ context: sc, ...(attributes ? { attributes } : {}) }] : [];
}

export interface SpanOptions {
    kind?: SpanKind;
    attributes?: Attributes;
    links?: Link[];
    /** The parent; default the active context. */
    parent?: Context;
}

/**
 * Runs `fn` in a new active span and ends it: a thrown error is recorded on the span (its type only: messages may
 * carry what a span must not) and rethrown.
 */
export function inSpan<T>(name: string, opts: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
    const { parent, ...options } = opts;
    return tracer().startActiveSpan(name, options, parent ?? context.active(), async (span) => {
        try {
            return await fn(span);
        } catch (e: unknown) {
            span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.name : 'error' });
            throw e;
        } finally {
            span.end();
        }
    });
}

/** Forgets the started state (tests only: each test file has its own process-wide provider). */
export function resetTracingForTests(): void {
    started = undefined;
}
