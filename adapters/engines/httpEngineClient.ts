/**
 * The HTTP adapter of `EngineClient`: one `POST {url}/v1/invoke` per stage, as docs/engine-contract.md defines.
 * It sorts every answer into the three outcomes the orchestrator needs: a result, a permanent refusal
 * (returned, so the run fails without retrying) or a transient failure (thrown, so the activity retry policy
 * applies). Messages name the stage and what happened; they never carry URLs' paths or queries, request
 * bodies or more than `MAX_DETAIL` characters of what the engine sent.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
    ATTR_HTTP_REQUEST_METHOD,
    ATTR_HTTP_RESPONSE_STATUS_CODE,
    ATTR_SERVER_ADDRESS,
} from '@opentelemetry/semantic-conventions';

import { type Stage, STAGES } from '../../domain/pipeline';
import type { EngineClient, EngineRequest, EngineResult } from '../../domain/ports';
import { readCapped } from '../http/streams';
import { inSpan, runParent, traceparentOfSpan } from '../telemetry/tracing';

export interface HttpEngineClientOptions {
    /** Base URL of each stage's engine; the client appends `/v1/invoke`. */
    urls: Readonly<Record<Stage, string>>;
    /** Budget for one call, connection to last byte of the answer. */
    timeoutMs: number;
}

/** Engine-provided text quoted in an error message is cut to this many characters. */
export const MAX_DETAIL = 200;
/** Larger answers are not read: no engine answer in this contract comes near it. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
/** Error codes that mean "try again later" whatever HTTP status carries them (contract "Errors"). */
const TRANSIENT_CODES = new Set(['UNAVAILABLE', 'RATE_LIMITED']);
/** Envelope code per HTTP status, for a permanent answer that is not enveloped (e.g. a proxy's 404 page). */
const CODE_OF_STATUS: Readonly<Record<number, string>> = {
    400: 'VALIDATION_FAILED',
    401: 'UNAUTHENTICATED',
    403: 'FORBIDDEN',
    404: 'NOT_FOUND',
    409: 'CONFLICT',
    413: 'PAYLOAD_TOO_LARGE',
};

interface EngineEnvelope {
    error_code: string | null;
    message: string;
    data: unknown;
}

export class HttpEngineClient implements EngineClient {
    private readonly endpoints: ReadonlyMap<Stage, string>;
    private readonly timeoutMs: number;

    constructor(options: HttpEngineClientOptions) {
        if (!Number.isInteger(options.timeoutMs) || options.timeoutMs <= 0) {
            throw new RangeError(`timeoutMs must be a positive integer, got ${options.timeoutMs}.`);
        }
        this.endpoints = new Map(STAGES.map((stage) => [stage, invokeUrl(stage, options.urls[stage])]));
        this.timeoutMs = options.timeoutMs;
    }

    /**
     * One engine call as a CLIENT span (`engine {stage}`) in the run's trace: its parent is the run's `traceparent`,
     * and the `traceparent` the engine receives names this span, so every call has its own parent id. Without a
     * tracer provider the span is the run's context itself and the run's `traceparent` goes out unchanged.
     */
    async invoke(req: EngineRequest): Promise<EngineResult> {
        const endpoint = this.endpoints.get(req.stage);
        if (!endpoint) throw new Error(`Unknown stage '${String(req.stage)}'.`);
        return inSpan(
            `engine ${req.stage}`,
            {
                kind: SpanKind.CLIENT,
                parent: runParent(req.traceparent),
                attributes: {
                    [ATTR_HTTP_REQUEST_METHOD]: 'POST',
                    [ATTR_SERVER_ADDRESS]: new URL(endpoint).hostname,
                    'mesh.run_id': req.runId,
                    'mesh.stage': req.stage,
                    'mesh.iteration': req.iteration,
                },
            },
            async (span) => {
                const result = await this.call(endpoint, req, traceparentOfSpan(span) ?? req.traceparent, (status) =>
                    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status),
                );
                if (!result.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: result.code });
                return result;
            },
        );
    }

    private async call(
        endpoint: string,
        req: EngineRequest,
        traceparent: string,
        answered: (status: number) => void,
    ): Promise<EngineResult> {
        // Built outside the try below: a malformed header value is our bug, not an unreachable engine.
        const headers = new Headers({
            accept: 'application/json',
            'content-type': 'application/json',
            traceparent,
            'x-correlation-id': req.correlationID,
            'Idempotency-Key': req.idempotencyKey,
        });
        const body = JSON.stringify({
            runId: req.runId,
            stage: req.stage,
            iteration: req.iteration,
            input: req.input,
            metadata: req.metadata,
        });

        // One signal for the whole exchange: it also aborts reading a body that trickles in.
        const signal = AbortSignal.timeout(this.timeoutMs);
        let status: number;
        let text: string;
        try {
            // redirect: 'manual', because following one would silently turn the POST into a GET elsewhere.
            const res = await fetch(endpoint, { method: 'POST', headers, body, signal, redirect: 'manual' });
            status = res.status;
            answered(status);
            text = await readText(res);
        } catch (e: unknown) {
            throw new Error(`${req.stage} engine: ${describeFailure(e, this.timeoutMs)}`);
        }
        return interpret(req.stage, status, text);
    }
}

/**
 * `{base}/v1/invoke`, keeping the base URL's query (e.g. an Azure Functions `?code=` key). Throws, without
 * quoting the URL, when it is not an absolute http(s) URL.
 */
function invokeUrl(stage: Stage, base: string | undefined): string {
    let url: URL;
    try {
        url = new URL(base ?? '');
    } catch {
        throw new TypeError(`The ${stage} engine URL is not an absolute URL.`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new TypeError(`The ${stage} engine URL must be http or https.`);
    }
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/invoke`;
    return url.toString();
}

/** Sorts one HTTP answer into a result, a permanent refusal (returned) or a transient failure (thrown). */
function interpret(stage: Stage, status: number, text: string): EngineResult {
    const envelope = parseEnvelope(text);
    if (status === 408 || status === 429 || status >= 500) {
        const what = envelope?.error_code ? `${envelope.error_code}: ${clip(envelope.message)}` : clip(text);
        throw new Error(`${stage} engine: HTTP ${status}${what ? ` ${what}` : ''}`);
    }
    if (status >= 300 && status < 400) {
        return {
            ok: false,
            code: 'ENGINE_FAILED',
            message: `the engine URL answered with a redirect (HTTP ${status}).`,
        };
    }
    if (status >= 400) {
        if (envelope?.error_code && TRANSIENT_CODES.has(envelope.error_code)) {
            throw new Error(`${stage} engine: HTTP ${status} ${envelope.error_code}: ${clip(envelope.message)}`);
        }
        const code = envelope?.error_code ?? CODE_OF_STATUS[status] ?? 'ENGINE_FAILED';
        const message = envelope ? describeError(envelope) : `HTTP ${status}${clip(text) ? `: ${clip(text)}` : ''}`;
        return { ok: false, code, message };
    }
    if (status < 200 || !envelope) {
        throw new Error(`${stage} engine: HTTP ${status} answer is not a JSON envelope: ${clip(text) || '(empty)'}`);
    }
    if (envelope.error_code !== null) {
        if (TRANSIENT_CODES.has(envelope.error_code)) {
            throw new Error(`${stage} engine: HTTP ${status} ${envelope.error_code}: ${clip(envelope.message)}`);
        }
        return { ok: false, code: envelope.error_code, message: describeError(envelope) };
    }
    const data = envelope.data;
    if (!isObject(data) || !('output' in data) || (data.continue !== undefined && typeof data.continue !== 'boolean')) {
        throw new Error(`${stage} engine: HTTP ${status} envelope data is not { output, continue? }`);
    }
    return { ok: true, output: data.output, continue: data.continue === true };
}

/** The envelope in `text`, or undefined when it is not JSON or not shaped like one. */
function parseEnvelope(text: string): EngineEnvelope | undefined {
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch {
        return undefined;
    }
    if (!isObject(value) || !('error_code' in value) || !('data' in value)) return undefined;
    const code = value.error_code;
    if (code !== null && (typeof code !== 'string' || code === '')) return undefined;
    const message = typeof value.message === 'string' ? value.message : '';
    return { error_code: code, message, data: value.data };
}

/** The engine's message, plus the failing fields of a VALIDATION_FAILED answer, clipped. */
function describeError(envelope: EngineEnvelope): string {
    const errors = isObject(envelope.data) && Array.isArray(envelope.data.errors) ? envelope.data.errors : [];
    const fields = errors
        .filter(isObject)
        .map((e) => `${typeof e.path === 'string' && e.path ? `${e.path} ` : ''}${String(e.message)}`);
    const text = fields.length > 0 ? `${envelope.message} (${fields.join('; ')})` : envelope.message;
    return clip(text) || 'no message';
}

function describeFailure(e: unknown, timeoutMs: number): string {
    // Duck-typed, not `instanceof Error`: fetch's errors may come from another realm (e.g. under jest).
    const error = isObject(e) ? e : {};
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
    if (e instanceof AnswerTooLargeError) return e.message;
    // undici reports 'fetch failed' and puts the reason (ECONNREFUSED, ENOTFOUND, …) in `cause`.
    const cause = isObject(error.cause) ? error.cause : {};
    const reason = [cause.code, cause.message, error.message].find((r) => typeof r === 'string' && r !== '');
    return `request failed (${clip(typeof reason === 'string' ? reason : String(e))})`;
}

class AnswerTooLargeError extends Error {}

/** Reads the body as UTF-8, refusing more than MAX_ANSWER_BYTES (by header first, then by counting). */
async function readText(res: Response): Promise<string> {
    const declared = Number(res.headers.get('content-length') ?? NaN);
    const tooLarge = `answer exceeds ${MAX_ANSWER_BYTES} bytes (HTTP ${res.status})`;
    if (declared > MAX_ANSWER_BYTES) {
        await res.body?.cancel();
        throw new AnswerTooLargeError(tooLarge);
    }
    return (await readCapped(res.body, MAX_ANSWER_BYTES, () => new AnswerTooLargeError(tooLarge))).toString('utf8');
}

/** Engine text safe for one log line: control characters flattened, at most MAX_DETAIL characters. */
function clip(text: string): string {
    const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
    return flat.length > MAX_DETAIL ? `${flat.slice(0, MAX_DETAIL - 1)}…` : flat;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}
