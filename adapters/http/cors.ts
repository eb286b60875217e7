/**
 * Cross-origin use (SPEC "Dashboard widget (v1.1)"): a page of an origin listed in `MESH_CORS_ORIGINS` may load the
 * widget module and call the API with a bearer token. It lives in the app's code, not only in platform settings, so
 * the embedded host, the Functions host and AKS answer alike. Every API route accepts `OPTIONS` (`corsRoute`); a
 * preflight from a listed origin is answered 204 with the allowed methods and headers, one from any other origin 403
 * (no `access-control-*` header, so the browser refuses); actual responses to a listed origin carry
 * `access-control-allow-origin` with that origin. No credentials: the API takes bearer tokens, never cookies.
 */
import { randomUUID } from 'node:crypto';

import {
    type HttpMethod,
    type HttpRequest,
    HttpResponse,
    type HttpResponseInit,
    type InvocationContext,
} from '@azure/functions';

import { correlationIdFrom } from '../../domain/correlation';
import { fail } from '../../domain/envelope';
import { ForbiddenError } from '../../domain/errors';
import { corsConfig } from '../config';
import { observed } from './envelope';

export const CORS_ALLOW_HEADERS =
    'authorization, content-type, idempotency-key, x-correlation-id, last-event-id, api-version';
export const CORS_EXPOSE_HEADERS = 'x-correlation-id, retry-after';
/** How long a browser may cache a preflight answer (seconds). */
export const CORS_MAX_AGE = '600';

type Handler = (req: HttpRequest, ctx: InvocationContext) => Promise<HttpResponseInit | HttpResponse>;

/** The request's `Origin` when it is one of `origins` (compared in normal form), else undefined. */
export function allowedOrigin(
    req: Pick<HttpRequest, 'headers'>,
    origins: readonly string[] = corsConfig().origins,
): string | undefined {
    const origin = req.headers.get('origin');
    if (!origin || origins.length === 0) return undefined;
    let normal: string;
    try {
        normal = new URL(origin).origin;
    } catch {
        return undefined;
    }
    return origins.includes(normal) && origin === normal ? origin : undefined;
}

/**
 * The CORS headers of an actual (non-preflight) response to `req`: `access-control-allow-origin` and
 * `-expose-headers` for a listed origin, and `vary: origin` whenever the request names one (the answer depends on
 * it). Empty otherwise. For routes outside `corsRoute`, e.g. the widget module (`GET /widget/*`).
 */
export function corsHeaders(
    req: Pick<HttpRequest, 'headers'>,
    origins: readonly string[] = corsConfig().origins,
): Record<string, string> {
    if (!req.headers.get('origin')) return {};
    const origin = allowedOrigin(req, origins);
    return origin
        ? {
              'access-control-allow-origin': origin,
              'access-control-expose-headers': CORS_EXPOSE_HEADERS,
              vary: 'origin',
          }
        : { vary: 'origin' };
}

/**
 * The answer to an `OPTIONS` request on a route serving `methods`: a preflight from a listed origin gets 204 with the
 * allow headers; one from an unlisted origin 403 FORBIDDEN (enveloped, no allow headers); an `OPTIONS` without an
 * `Origin` (not a browser preflight) 204 with `allow`.
 */
export function preflight(
    req: Pick<HttpRequest, 'headers'>,
    methods: readonly string[],
    origins: readonly string[] = corsConfig().origins,
): HttpResponseInit {
    const allow = [...new Set([...methods.map((m) => m.toUpperCase()), 'OPTIONS'])].join(', ');
    const given = req.headers.get('origin');
    if (!given) return { status: 204, headers: { allow } };
    const origin = allowedOrigin(req, origins);
    if (!origin) {
        const correlationID = correlationIdFrom(req.headers, randomUUID);
        const error = new ForbiddenError(
            `Cross-origin requests from '${given.slice(0, 200)}' are not allowed (MESH_CORS_ORIGINS lists the origins that are).`,
        );
        return {
            status: error.status,
            jsonBody: fail(error, correlationID),
            headers: {
                'content-type': 'application/json; charset=utf-8',
                'x-correlation-id': correlationID,
                vary: 'origin',
            },
        };
    }
    return {
        status: 204,
        headers: {
            allow,
            'access-control-allow-origin': origin,
            'access-control-allow-methods': allow,
            'access-control-allow-headers': CORS_ALLOW_HEADERS,
            'access-control-max-age': CORS_MAX_AGE,
            vary: 'origin',
        },
    };
}

/**
 * `response` with `headers` added (an `HttpResponse` is changed in place; an init is copied). `vary` is appended to, so
 * a handler's own `vary` survives.
 */
export function withHeaders(
    response: HttpResponseInit | HttpResponse,
    headers: Record<string, string>,
): HttpResponseInit | HttpResponse {
    if (Object.keys(headers).length === 0) return response;
    const add = (target: Headers): void => {
        for (const [k, v] of Object.entries(headers))
            if (k === 'vary' && target.has('vary')) target.set('vary', `${target.get('vary')}, ${v}`);
            else target.set(k, v);
    };
    if (response instanceof HttpResponse) {
        add(response.headers);
        return response;
    }
    const merged = new Headers(response.headers);
    add(merged);
    return { ...response, headers: Object.fromEntries(merged.entries()) };
}

/**
 * The `methods` and `handler` of an API route with CORS: `OPTIONS` added to `methods` and answered by `preflight`;
 * every other answer carries `corsHeaders`. `alsoOn` names methods another registration serves on the same route (one
 * route, one OPTIONS registration: two would be ambiguous on the Functions host), so the preflight allows them too.
 *
 *     app.http('listPipelines', { route: 'pipeline', ...corsRoute(['GET'], enveloped(listPipelines)) });
 */
export function corsRoute(
    methods: HttpMethod[],
    handler: Handler,
    alsoOn: HttpMethod[] = [],
): { methods: HttpMethod[]; handler: Handler } {
    const allowed = [...methods, ...alsoOn];
    return {
        methods: [...methods, 'OPTIONS'],
        handler: observed(async (req, ctx) => {
            if (req.method.toUpperCase() === 'OPTIONS') return preflight(req, allowed);
            return withHeaders(await handler(req, ctx), corsHeaders(req));
        }),
    };
}

/** Only the CORS headers of actual answers, for a second registration on a route whose OPTIONS another one serves. */
export function withCors(handler: Handler): Handler {
    return observed(async (req, ctx) => withHeaders(await handler(req, ctx), corsHeaders(req)));
}
