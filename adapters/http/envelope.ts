/**
 * The one place HTTP answers are shaped. Every enveloped function is `app.http(..., { handler: enveloped(fn) })`,
 * so correlation ids, api-version checks, error mapping and the envelope itself cannot drift between handlers.
 */
import { randomUUID } from 'node:crypto';

import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
    ATTR_HTTP_REQUEST_METHOD,
    ATTR_HTTP_RESPONSE_STATUS_CODE,
    ATTR_HTTP_ROUTE,
} from '@opentelemetry/semantic-conventions';

import { correlationIdFrom } from '../../domain/correlation';
import { type Envelope, fail, ok } from '../../domain/envelope';
import {
    DomainError,
    PayloadTooLargeError,
    RateLimitedError,
    UnavailableError,
    UnsupportedApiVersionError,
    ValidationError,
} from '../../domain/errors';
import { meshMetrics } from '../telemetry/metrics';
import { contextOf, inSpan } from '../telemetry/tracing';
import { readCapped } from './streams';

/** What the wrapper tells a handler about the call. */
export interface CallInfo {
    correlationID: string;
}

/** What a handler returns on success; the wrapper puts `data` in the envelope. */
export interface Result<T> {
    /** HTTP status, default 200. */
    status?: number;
    data: T;
    /** Envelope `message`, default 'ok'. */
    message?: string;
    /** Extra response headers (e.g. `Location`); they cannot override content-type or x-correlation-id. */
    headers?: Record<string, string>;
}

export type EnvelopedHandler<T> = (req: HttpRequest, ctx: InvocationContext, call: CallInfo) => Promise<Result<T>>;

/** The api-versions this app serves; a request without one gets the first. */
export const SUPPORTED_API_VERSIONS: readonly string[] = ['1'];

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const OWNED_HEADERS = new Set(['content-type', 'x-correlation-id']);
const ONE_MIB = 1024 * 1024;

/**
 * Wraps a handler so it answers in the envelope: computes the correlation id, rejects unknown api-versions before
 * the handler runs, maps `DomainError`s to their status and code, and turns anything else into a logged,
 * opaque 500 `INTERNAL`.
 */
export function enveloped<T>(
    fn: EnvelopedHandler<T>,
): (req: HttpRequest, ctx: InvocationContext) => Promise<HttpResponseInit> {
    return observed(async (req, ctx) => {
        const correlationID = correlationIdFrom(req.headers, randomUUID);
        try {
            requireApiVersion(req);
            const result = await fn(req, ctx, { correlationID });
            const body = ok(result.data, correlationID, result.message);
            return jsonResponse(result.status ?? 200, body, correlationID, result.headers);
        } catch (e: unknown) {
            return toHttpResponse(e, ctx, correlationID);
        }
    });
}

type HttpHandler = (req: HttpRequest, ctx: InvocationContext) => Promise<HttpResponseInit>;

/** Invocations already inside `observed`: an inner wrapper (enveloped inside corsRoute) counts nothing twice. */
const observing = new WeakSet<InvocationContext>();

/** Routes counted in the duration metric but without spans: probes every few seconds would flood the traces. */
const UNTRACED_ROUTES = new Set(['health/live', 'health/ready']);

/**
 * Wraps any HTTP handler, enveloped or not (SSE, NDJSON, pages, the widget module), so each request is a SERVER span
 * named `METHOD route-template` and counts in `mesh_http_request_duration_seconds`. The span's parent is the host's
 * trace context for the invocation (`InvocationContext.traceContext` on the Functions host), else the request's
 * `traceparent`, else none (a new trace). For a streamed answer both end when the headers are ready.
 */
export function observed(handler: HttpHandler): HttpHandler {
    return async (req, ctx) => {
        if (observing.has(ctx)) return handler(req, ctx);
        observing.add(ctx);
        const started = performance.now();
        const route = routeOf(ctx);
        const method = req.method.toUpperCase();
        const answer = async (span?: Span): Promise<HttpResponseInit> => {
            let status = 500;
            try {
                const response = await handler(req, ctx);
                status = response.status ?? 200;
                return response;
            } finally {
                span?.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
                if (status >= 500) span?.setStatus({ code: SpanStatusCode.ERROR });
                observeRequest(req, ctx, status, started);
            }
        };
        if (UNTRACED_ROUTES.has(route)) return answer();
        const host = ctx.traceContext;
        const parent = host?.traceParent
            ? contextOf(host.traceParent, host.traceState)
            : contextOf(req.headers.get('traceparent'), req.headers.get('tracestate'));
        return inSpan(
            `${method} ${route}`,
            {
                kind: SpanKind.SERVER,
                parent,
                attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_HTTP_ROUTE]: route },
            },
            answer,
        );
    };
}

/** The function's route template (`pipeline/status/{id}`), never the concrete path; else the function's name. */
function routeOf(ctx: Pick<InvocationContext, 'options' | 'functionName'>): string {
    const trigger = ctx.options?.trigger as { route?: unknown } | undefined;
    return typeof trigger?.route === 'string' ? trigger.route : ctx.functionName;
}

/**
 * Counts the request in `mesh_http_request_duration_seconds`, labelled by the function's route template
 * (`pipeline/status/{id}`, never the concrete path: ids must not become label values), method and status.
 */
export function observeRequest(
    req: Pick<HttpRequest, 'method'>,
    ctx: Pick<InvocationContext, 'options' | 'functionName'>,
    status: number,
    startedMs: number,
): void {
    meshMetrics().httpDuration.observe(
        { route: routeOf(ctx), method: req.method.toUpperCase(), status: String(status) },
        (performance.now() - startedMs) / 1000,
    );
}

/**
 * The envelope answer for a thrown error. Exported for the few non-enveloped answers (SSE, NDJSON) whose
 * errors before the stream starts are still enveloped.
 */
export function toHttpResponse(e: unknown, ctx: InvocationContext, correlationID: string): HttpResponseInit {
    if (e instanceof DomainError) {
        // 5xx domain errors are ours or a dependency's fault: log what the client is not told.
        if (e.status >= 500) ctx.warn(`[${correlationID}] ${e.code}: ${e.message}`, e.details ?? {});
        const headers: Record<string, string> = {};
        if (e instanceof RateLimitedError) headers['retry-after'] = String(e.retryAfterSeconds);
        if (e instanceof UnavailableError) headers['retry-after'] = '1';
        return jsonResponse(e.status, fail(e, correlationID), correlationID, headers);
    }
    if (isOverloaded(e)) {
        // A store or service that timed out or is throttling: the request may succeed later, so say so (503 with
        // Retry-After) rather than report an internal fault.
        ctx.warn(`[${correlationID}] a dependency is overloaded or timed out: ${(e as Error).message}`);
        return toHttpResponse(new UnavailableError('A dependency is busy; retry shortly.'), ctx, correlationID);
    }
    ctx.error(`[${correlationID}] unhandled error`, e);
    const body: Envelope<null> = {
        error_code: 'INTERNAL',
        message: 'An internal error occurred.',
        correlationID,
        data: null,
    };
    return jsonResponse(500, body, correlationID);
}

/**
 * Whether `e` is an Azure SDK failure that retrying later may cure: a client-side timeout (`TimeoutError`), or a
 * service answering 408, 429 (after the SDK's own retries) or 503.
 */
function isOverloaded(e: unknown): boolean {
    if (!(e instanceof Error)) return false;
    if (e.name === 'TimeoutError') return true;
    const status = (e as { code?: unknown; statusCode?: unknown }).statusCode ?? (e as { code?: unknown }).code;
    return status === 408 || status === 429 || status === 503;
}

/**
 * The request's api-version (query parameter first, as Azure REST APIs do, then the `api-version` header;
 * default '1'). Throws `UnsupportedApiVersionError` for anything not in `SUPPORTED_API_VERSIONS`.
 */
export function requireApiVersion(req: HttpRequest): string {
    const requested = req.query.get('api-version') ?? req.headers.get('api-version') ?? SUPPORTED_API_VERSIONS[0]!;
    if (!SUPPORTED_API_VERSIONS.includes(requested)) {
        throw new UnsupportedApiVersionError(requested, SUPPORTED_API_VERSIONS);
    }
    return requested;
}

/**
 * Reads and parses a JSON request body. Requires `content-type: application/json`, refuses bodies over
 * `maxBytes` (by `content-length` first, then by counting while reading, so a lying or missing header cannot
 * make us buffer more) and reports malformed JSON as `VALIDATION_FAILED`. The result is unvalidated `unknown`.
 */
export async function readJson(req: HttpRequest, maxBytes = ONE_MIB): Promise<unknown> {
    const mediaType = (req.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (mediaType !== 'application/json') throw new ValidationError('content-type must be application/json');
    requireUtf8(req);
    const declared = Number(req.headers.get('content-length') ?? NaN);
    if (declared > maxBytes) throw new PayloadTooLargeError(maxBytes);

    const bytes = await readLimited(req, maxBytes);
    let text: string;
    try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
        throw new ValidationError('request body is not valid UTF-8');
    }
    try {
        return JSON.parse(text) as unknown;
    } catch {
        // The parser's message quotes the input; a fixed message is enough and echoes nothing.
        throw new ValidationError(text.trim() === '' ? 'request body is required' : 'request body is not valid JSON');
    }
}

/**
 * Refuses a body whose content-type names a charset other than UTF-8 (`charset=iso-8859-1`, `utf-16`): its bytes
 * would be read as UTF-8 and mean something else. No charset, or `utf-8` in any case, is accepted.
 */
export function requireUtf8(req: HttpRequest): void {
    const contentType = req.headers.get('content-type') ?? '';
    for (const param of contentType.split(';').slice(1)) {
        const eq = param.indexOf('=');
        if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
        const charset = param
            .slice(eq + 1)
            .trim()
            .replace(/^"(.*)"$/, '$1')
            .toLowerCase();
        if (charset !== 'utf-8')
            throw new ValidationError([
                {
                    path: '/headers/content-type',
                    message: `charset must be utf-8 (or absent), not '${charset.slice(0, 40)}'`,
                },
            ]);
    }
}

async function readLimited(req: HttpRequest, maxBytes: number): Promise<Uint8Array> {
    return readCapped(
        req.body as ReadableStream<Uint8Array> | null,
        maxBytes,
        () => new PayloadTooLargeError(maxBytes),
    );
}

function jsonResponse(
    status: number,
    body: unknown,
    correlationID: string,
    extra: Record<string, string> = {},
): HttpResponseInit {
    // Header names are case-insensitive: drop any handler spelling of the two headers the envelope owns.
    const kept = Object.entries(extra).filter(([k]) => !OWNED_HEADERS.has(k.toLowerCase()));
    return {
        status,
        jsonBody: body,
        headers: { ...Object.fromEntries(kept), 'content-type': JSON_CONTENT_TYPE, 'x-correlation-id': correlationID },
    };
}
