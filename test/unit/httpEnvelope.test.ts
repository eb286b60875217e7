import { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';

import { enveloped, readJson, type Result } from '../../adapters/http/envelope';
import {
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
} from '../../domain/errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function request(init: { url?: string; headers?: Record<string, string>; body?: string; method?: string } = {}) {
    return new HttpRequest({
        method: init.method ?? 'GET',
        url: init.url ?? 'http://localhost/pipeline',
        headers: init.headers ?? {},
        ...(init.body !== undefined && { body: { string: init.body } }),
    });
}

function context() {
    const logs: { level: string; args: unknown[] }[] = [];
    const ctx = new InvocationContext({
        functionName: 'x',
        logHandler: (level, ...args) => logs.push({ level, args }),
    });
    return { ctx, logs };
}

const resolved = <T>(r: Result<T>) => Promise.resolve(r);
/** A handler that fails with `e`, thrown as-is (not necessarily an Error). */
const rejecting = (e: unknown) => (): Promise<Result<never>> => {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- non-Error throws are part of the test
    return Promise.reject(e);
};
const headerOf = (res: HttpResponseInit, name: string) => (res.headers as Record<string, string>)[name];

describe('enveloped', () => {
    it('wraps a result in the success envelope with status, message and headers', async () => {
        const handler = enveloped(() =>
            resolved({
                status: 202,
                data: { id: 'r1' },
                message: 'accepted',
                headers: {
                    location: '/pipeline/status/r1',
                    'Content-Type': 'text/plain',
                    'X-Correlation-ID': 'forged',
                },
            }),
        );
        const res = await handler(request({ headers: { 'x-correlation-id': 'corr-1' } }), context().ctx);
        expect(res.status).toBe(202);
        expect(res.jsonBody).toEqual({
            error_code: null,
            message: 'accepted',
            correlationID: 'corr-1',
            data: { id: 'r1' },
        });
        expect(res.headers).toEqual({
            location: '/pipeline/status/r1',
            'content-type': 'application/json; charset=utf-8',
            'x-correlation-id': 'corr-1',
        });
    });

    it('defaults to 200 and "ok", and passes the correlation id to the handler', async () => {
        let seen = '';
        const handler = enveloped((_req, _ctx, call) => {
            seen = call.correlationID;
            return resolved({ data: [1, 2] });
        });
        const res = await handler(request(), context().ctx);
        expect(res.status).toBe(200);
        expect(res.jsonBody).toMatchObject({ error_code: null, message: 'ok', data: [1, 2] });
        expect(seen).toMatch(UUID);
        expect(headerOf(res, 'x-correlation-id')).toBe(seen);
        expect((res.jsonBody as { correlationID: string }).correlationID).toBe(seen);
    });

    it('takes the correlation id from traceparent when no header is given', async () => {
        const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
        const res = await enveloped(() => resolved({ data: null }))(
            request({ headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } }),
            context().ctx,
        );
        expect(headerOf(res, 'x-correlation-id')).toBe(traceId);
    });

    it('generates a fresh id per request', async () => {
        const handler = enveloped(() => resolved({ data: null }));
        const a = headerOf(await handler(request(), context().ctx), 'x-correlation-id');
        const b = headerOf(await handler(request(), context().ctx), 'x-correlation-id');
        expect(a).toMatch(UUID);
        expect(a).not.toBe(b);
    });

    it('maps a DomainError to its status, code and message', async () => {
        const res = await enveloped(rejecting(new NotFoundError('Run not found.')))(
            request({ headers: { 'x-correlation-id': 'c' } }),
            context().ctx,
        );
        expect(res.status).toBe(404);
        expect(res.jsonBody).toEqual({
            error_code: 'NOT_FOUND',
            message: 'Run not found.',
            correlationID: 'c',
            data: null,
        });
        expect(headerOf(res, 'x-correlation-id')).toBe('c');
        expect(headerOf(res, 'content-type')).toBe('application/json; charset=utf-8');
    });

    it('lists validation errors in data.errors', async () => {
        const res = await enveloped(
            rejecting(
                new ValidationError([
                    { path: '/metadata/team', message: 'required' },
                    { path: '/maxIterations', message: 'must be >= 1' },
                ]),
            ),
        )(request(), context().ctx);
        expect(res.status).toBe(400);
        expect(res.jsonBody).toMatchObject({
            error_code: 'VALIDATION_FAILED',
            data: {
                errors: [
                    { path: '/metadata/team', message: 'required' },
                    { path: '/maxIterations', message: 'must be >= 1' },
                ],
            },
        });
    });

    it('sets Retry-After for RATE_LIMITED', async () => {
        const res = await enveloped(rejecting(new RateLimitedError(30)))(request(), context().ctx);
        expect(res.status).toBe(429);
        expect(headerOf(res, 'retry-after')).toBe('30');
        expect(res.jsonBody).toMatchObject({ error_code: 'RATE_LIMITED' });
    });

    it('logs 5xx domain errors with their details but does not send the details', async () => {
        const { ctx, logs } = context();
        const res = await enveloped(
            rejecting(new UnavailableError('Storage is not answering.', { host: 'db.internal' })),
        )(request(), ctx);
        expect(res.status).toBe(503);
        expect(JSON.stringify(res.jsonBody)).not.toContain('db.internal');
        expect(JSON.stringify(logs)).toContain('db.internal');
    });

    it('turns an unknown error into an opaque 500 INTERNAL and logs it with the correlation id', async () => {
        const { ctx, logs } = context();
        const res = await enveloped(rejecting(new Error('connection string AccountKey=s3cret at /srv/app.js:12')))(
            request({ headers: { 'x-correlation-id': 'corr-500' } }),
            ctx,
        );
        expect(res.status).toBe(500);
        expect(res.jsonBody).toEqual({
            error_code: 'INTERNAL',
            message: 'An internal error occurred.',
            correlationID: 'corr-500',
            data: null,
        });
        const body = JSON.stringify(res.jsonBody);
        expect(body).not.toContain('s3cret');
        expect(body).not.toContain('app.js');
        expect(logs).toHaveLength(1);
        expect(logs[0]!.level).toBe('error');
        expect(String(logs[0]!.args[0])).toContain('corr-500');
        expect(logs[0]!.args[1]).toBeInstanceOf(Error);
    });

    it.each([
        [
            'a client-side timeout',
            Object.assign(new Error('Request took more than 60000 ms'), { name: 'TimeoutError' }),
        ],
        [
            'a throttled store (429 after the SDK retried)',
            Object.assign(new Error('Request rate is large'), { code: 429 }),
        ],
        ['an unavailable service', Object.assign(new Error('Service Unavailable'), { statusCode: 503 })],
    ])('answers %s with 503 UNAVAILABLE and Retry-After, not INTERNAL', async (_what, error) => {
        const { ctx, logs } = context();
        const res = await enveloped(rejecting(error))(request(), ctx);
        expect(res.status).toBe(503);
        expect(headerOf(res, 'retry-after')).toBe('1');
        expect(res.jsonBody).toMatchObject({ error_code: 'UNAVAILABLE', data: null });
        expect(JSON.stringify(res.jsonBody)).not.toContain(error.message);
        expect(logs.some((l) => l.level === 'error')).toBe(false);
    });

    it('treats a thrown non-Error as INTERNAL too', async () => {
        const res = await enveloped(rejecting('a string'))(request(), context().ctx);
        expect(res.status).toBe(500);
        expect(res.jsonBody).toMatchObject({ error_code: 'INTERNAL' });
    });

    describe('api-version', () => {
        const called = jest.fn(() => resolved({ data: 'ran' }));
        beforeEach(() => called.mockClear());

        it.each([
            ['absent', {}, 'http://localhost/pipeline'],
            ['query 1', {}, 'http://localhost/pipeline?api-version=1'],
            ['header 1', { 'api-version': '1' }, 'http://localhost/pipeline'],
            ['query wins over header', { 'api-version': '9' }, 'http://localhost/pipeline?api-version=1'],
        ])('accepts %s', async (_name, headers, url) => {
            const res = await enveloped(called)(request({ url, headers }), context().ctx);
            expect(res.status).toBe(200);
            expect(called).toHaveBeenCalledTimes(1);
        });

        it.each([
            ['query 2', {}, 'http://localhost/pipeline?api-version=2'],
            ['header 2024-01-01', { 'api-version': '2024-01-01' }, 'http://localhost/pipeline'],
            ['empty query', {}, 'http://localhost/pipeline?api-version='],
            ['1.0', {}, 'http://localhost/pipeline?api-version=1.0'],
        ])('rejects %s before calling the handler', async (_name, headers, url) => {
            const res = await enveloped(called)(request({ url, headers }), context().ctx);
            expect(res.status).toBe(400);
            expect(res.jsonBody).toMatchObject({ error_code: 'UNSUPPORTED_API_VERSION', data: null });
            expect(called).not.toHaveBeenCalled();
        });
    });
});

describe('readJson', () => {
    const post = (body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
        request({ method: 'POST', body, headers });

    it('parses a JSON body', async () => {
        await expect(readJson(post('{"a":[1,"x"]}'))).resolves.toEqual({ a: [1, 'x'] });
    });

    it('accepts a charset parameter and any case', async () => {
        const req = post('[true]', { 'content-type': 'Application/JSON; charset=utf-8' });
        await expect(readJson(req)).resolves.toEqual([true]);
    });

    it.each([['text/plain'], ['application/jsonx'], ['application/x-www-form-urlencoded']])(
        'rejects content-type %s',
        async (type) => {
            const err = await readJson(post('{}', { 'content-type': type })).catch((e: unknown) => e);
            expect(err).toBeInstanceOf(ValidationError);
            expect((err as ValidationError).errors).toEqual([
                { path: '', message: 'content-type must be application/json' },
            ]);
        },
    );

    it('rejects a missing content-type', async () => {
        await expect(readJson(post('{}', {}))).rejects.toBeInstanceOf(ValidationError);
    });

    it('rejects an oversize body announced by content-length without reading it', async () => {
        const req = post('{}', { 'content-type': 'application/json', 'content-length': String(2 * 1024 * 1024) });
        await expect(readJson(req)).rejects.toBeInstanceOf(PayloadTooLargeError);
        expect(req.bodyUsed).toBe(false);
    });

    it('rejects an oversize body by counting bytes', async () => {
        const body = JSON.stringify({ s: 'x'.repeat(100) });
        await expect(readJson(post(body), 50)).rejects.toBeInstanceOf(PayloadTooLargeError);
    });

    it('counts bytes, not characters', async () => {
        const body = JSON.stringify('é'.repeat(20)); // 22 characters, 42 bytes
        await expect(readJson(post(body), 30)).rejects.toBeInstanceOf(PayloadTooLargeError);
        await expect(readJson(post(body), 42)).resolves.toBe('é'.repeat(20));
    });

    it('maps an oversize body to 413 PAYLOAD_TOO_LARGE through the wrapper', async () => {
        const handler = enveloped(async (req) => ({ data: await readJson(req, 10) }));
        const res = await handler(post('{"much":"too long"}'), context().ctx);
        expect(res.status).toBe(413);
        expect(res.jsonBody).toMatchObject({ error_code: 'PAYLOAD_TOO_LARGE' });
    });

    it.each([['{"a":'], ['not json'], ["{'a':1}"]])('rejects malformed JSON %j without echoing it', async (body) => {
        const err = await readJson(post(body)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).errors).toEqual([{ path: '', message: 'request body is not valid JSON' }]);
    });

    it('rejects an empty body', async () => {
        const err = await readJson(post('')).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).errors[0]!.message).toBe('request body is required');
    });

    it('rejects invalid UTF-8', async () => {
        const req = new HttpRequest({
            method: 'POST',
            url: 'http://localhost/x',
            headers: { 'content-type': 'application/json' },
            body: { bytes: Buffer.from([0x22, 0xff, 0x22]) },
        });
        await expect(readJson(req)).rejects.toBeInstanceOf(ValidationError);
    });
});
