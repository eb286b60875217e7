/**
 * The HTTP front of the embedded host: the app's HTTP-triggered functions on their routes (node:http ⇄
 * HttpRequest / HttpResponse, streamed bodies included), the Durable management API the real DurableClient
 * calls, and the local identity provider's JWKS.
 */
import { randomUUID } from 'node:crypto';
import { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';

import { HttpRequest, HttpResponse } from '@azure/functions';

import { DurableEngine } from '../durable/engine';
import {
    handleManagementApi,
    isHostInternalPath,
    isManagementPath,
    refuseWithoutSystemKey,
} from '../durable/managementApi';
import { FunctionRegistration, FunctionRegistry } from '../functionsCore';
import { HostKeys, keyMatches } from '../hostKeys';
import { DurableClientData, HostLog, invocationContext } from '../invoke';
import { readBody } from './body';
import { CompiledRoute, compileRoute } from './routes';

export interface HostServerOptions {
    registry: FunctionRegistry;
    engine: DurableEngine;
    clientData: () => DurableClientData;
    routePrefix: string;
    /**
     * The host's keys (`code` query or `x-functions-key` header): the function key (or the master key) opens
     * authLevel function routes; only the master (system) key opens admin routes and the host-internal ones.
     */
    keys: HostKeys;
    /** Extra host-level routes (e.g. the local identity provider's JWKS). */
    hostRoutes: Record<string, () => { status: number; body: unknown }>;
    /** Host-level endpoints that answer raw requests of any method themselves (e.g. the local Event Grid topic). */
    hostHandlers?: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>>;
    log: HostLog;
    maxBodyBytes?: number;
}

interface HttpFunction {
    f: FunctionRegistration;
    route: CompiledRoute;
    methods: Set<string>;
    authLevel: string;
}

export function createRequestListener(o: HostServerOptions): RequestListener {
    const functions: HttpFunction[] = o.registry
        .byTriggerType('httpTrigger')
        .map((f) => ({
            f,
            route: compileRoute(joinRoute(o.routePrefix, f.trigger.route ?? f.name)),
            methods: new Set((f.trigger.methods ?? ['GET', 'POST']).map((m) => m.toUpperCase())),
            authLevel: (f.trigger.authLevel ?? 'anonymous').toLowerCase(),
        }))
        .sort((a, b) => b.route.specificity - a.route.specificity);
    const maxBody = o.maxBodyBytes ?? 100 * 1024 * 1024;

    const listener: RequestListener = (req, res) => {
        handle(req, res).catch((e: unknown) => {
            o.log(
                'error',
                `host: unhandled error for ${req.method} ${req.url}: ${e instanceof Error ? e.stack : String(e)}`,
            );
            if (!res.headersSent)
                writeJson(res, 500, envelopeError('INTERNAL', 'The host failed to process the request.'));
            else res.destroy();
        });
    };

    async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const url = new URL(req.url ?? '/', 'http://host');
        const method = (req.method ?? 'GET').toUpperCase();
        const raw = o.hostHandlers?.[url.pathname];
        if (raw) return raw(req, res);
        const host = o.hostRoutes[url.pathname];
        if (host && method === 'GET') {
            const r = host();
            return writeJson(res, r.status, r.body);
        }
        if (isHostInternalPath(url.pathname) || isHostInternalPath((req.url ?? '/').split('?')[0]!)) {
            const refused = refuseWithoutSystemKey(o.keys.masterKey, url, header(req, 'x-functions-key'));
            if (refused) {
                req.resume();
                return writeJson(res, refused.status, refused.body);
            }
            if (!isManagementPath(url.pathname))
                return writeJson(res, 404, envelopeError('NOT_FOUND', `No host route serves ${url.pathname}.`));
            const body = await readBody(req, maxBody);
            const r = await handleManagementApi(o.engine, o.clientData(), method, url, body);
            res.writeHead(r.status, { 'content-type': 'application/json; charset=utf-8', ...(r.headers ?? {}) });
            res.end(r.body === undefined ? '' : JSON.stringify(r.body));
            return;
        }
        const candidates = functions
            .map((h) => ({ h, params: h.route.match(url.pathname) }))
            .filter((c) => c.params !== undefined);
        const hit = candidates.find((c) => c.h.methods.has(method));
        if (!hit) {
            if (candidates.length)
                return writeJson(
                    res,
                    405,
                    envelopeError('NOT_FOUND', `Method ${method} is not allowed on ${url.pathname}.`),
                    { allow: [...new Set(candidates.flatMap((c) => [...c.h.methods]))].join(', ') },
                );
            return writeJson(res, 404, envelopeError('NOT_FOUND', `No function serves ${url.pathname}.`));
        }
        if (hit.h.authLevel !== 'anonymous') {
            const given = url.searchParams.get('code') ?? header(req, 'x-functions-key');
            const opens =
                keyMatches(o.keys.masterKey, given) ||
                (hit.h.authLevel === 'function' && keyMatches(o.keys.functionKey, given));
            if (!opens)
                return writeJson(
                    res,
                    401,
                    envelopeError(
                        'UNAUTHENTICATED',
                        `A ${hit.h.authLevel === 'admin' ? 'master' : 'function'} key is required (code query parameter or x-functions-key header).`,
                    ),
                );
        }
        let body: Buffer;
        try {
            body = await readBody(req, maxBody);
        } catch {
            return writeJson(res, 413, envelopeError('PAYLOAD_TOO_LARGE', 'The request body is too large.'));
        }
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
            if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
        const request = new HttpRequest({
            method,
            url: `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`,
            headers,
            params: hit.params!,
            body: body.length && method !== 'GET' && method !== 'HEAD' ? { bytes: body } : undefined,
        });
        const ctx = invocationContext(o.registry, hit.h.f, o.clientData(), o.log);
        let result: unknown;
        try {
            result = await hit.h.f.handler(request, ctx);
        } catch (e: unknown) {
            // The Functions host answers an unhandled exception with a bare 500 and logs it.
            ctx.error(`Function '${hit.h.f.name}' failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
            return writeJson(res, 500, envelopeError('INTERNAL', 'The function failed.'));
        }
        writeResponse(req, res, result);
    }

    return listener;
}

/** Requests that arrive before the app is loaded get 503, as a starting Functions host answers. */
export const startingListener: RequestListener = (_req, res) => {
    writeJson(res, 503, envelopeError('UNAVAILABLE', 'The host is starting.'), { 'retry-after': '1' });
};

/**
 * The server's `clientError`: a request Node's parser refused before any handler ran. Where a response can still be
 * written it is a 400 `VALIDATION_FAILED` in the envelope (Node's default is a bare 431 or 400): the HTTP status
 * matches the error code, as SPEC's envelope requires, and the message says what was wrong. The connection is closed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
    }
    const message =
        err.code === 'HPE_HEADER_OVERFLOW' || err.code === 'HPE_URI_TOO_LONG'
            ? 'The request URL or headers are too long.'
            : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT'
              ? 'The request did not arrive completely in time.'
              : 'The request is not valid HTTP.';
    const correlationID = randomUUID();
    const body = JSON.stringify({
        error_code: 'VALIDATION_FAILED',
        message,
        correlationID,
        data: { errors: [{ path: '/', message }] },
    });
    socket.end(
        [
            'HTTP/1.1 400 Bad Request',
            'content-type: application/json; charset=utf-8',
            `content-length: ${Buffer.byteLength(body)}`,
            `x-correlation-id: ${correlationID}`,
            'connection: close',
            '',
            body,
        ].join('\r\n'),
    );
}

function writeResponse(req: IncomingMessage, res: ServerResponse, result: unknown): void {
    const response = result instanceof HttpResponse ? result : new HttpResponse(result ?? {});
    const headers: Record<string, string | string[]> = {};
    response.headers.forEach((value, key) => (headers[key] = value));
    const cookies = response.cookies.map((c) => serializeCookie(c));
    if (cookies.length) headers['set-cookie'] = cookies;
    res.writeHead(response.status ?? 200, headers);
    const stream = response.body;
    if (!stream || req.method === 'HEAD') {
        res.end();
        return;
    }
    const readable = Readable.fromWeb(stream);
    // A streamed response (SSE) ends when the client goes away: stop producing.
    res.on('close', () => {
        if (!readable.readableEnded) readable.destroy();
    });
    readable.on('error', () => res.destroy());
    readable.pipe(res);
}

function serializeCookie(c: {
    name: string;
    value: string;
    path?: string;
    domain?: string;
    maxAge?: number;
    secure?: boolean;
    httpOnly?: boolean;
    sameSite?: string;
    expires?: Date | number;
}): string {
    const parts = [`${c.name}=${encodeURIComponent(c.value)}`];
    if (c.path) parts.push(`Path=${c.path}`);
    if (c.domain) parts.push(`Domain=${c.domain}`);
    if (c.maxAge !== undefined) parts.push(`Max-Age=${c.maxAge}`);
    if (c.expires !== undefined) parts.push(`Expires=${new Date(c.expires).toUTCString()}`);
    if (c.secure) parts.push('Secure');
    if (c.httpOnly) parts.push('HttpOnly');
    if (c.sameSite) parts.push(`SameSite=${c.sameSite}`);
    return parts.join('; ');
}

function header(req: IncomingMessage, name: string): string | null {
    const v = req.headers[name];
    return typeof v === 'string' ? v : null;
}

function joinRoute(prefix: string, route: string): string {
    return [prefix, route]
        .map((s) => s.replace(/^\/+|\/+$/g, ''))
        .filter(Boolean)
        .join('/');
}

/** The host's own answers (no function ran) still use the product's envelope. */
function envelopeError(code: string, message: string): unknown {
    return { error_code: code, message, correlationID: randomUUID(), data: null };
}

function writeJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
}
