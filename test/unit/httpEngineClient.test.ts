/** HttpEngineClient against a tiny local HTTP server per case: results, permanent refusals, transient throws. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { engineConfig, parseEngineConfig, resetEngineConfigForTests } from '../../adapters/engines/config';
import { HttpEngineClient } from '../../adapters/engines/httpEngineClient';
import { type Stage, STAGES } from '../../domain/pipeline';
import type { EngineRequest } from '../../domain/ports';

interface Seen {
    method?: string;
    url?: string;
    headers: IncomingHttpHeaders;
    body: string;
}

interface Reply {
    status: number;
    body?: string;
    headers?: Record<string, string>;
    /** Wait this long before answering. */
    delayMs?: number;
}

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

function envelope(code: string | null, message: string, data: unknown): string {
    return JSON.stringify({ error_code: code, message, correlationID: 'corr-1', data });
}

const request = (over: Partial<EngineRequest> = {}): EngineRequest => ({
    runId: 'run-1',
    stage: 'filtering',
    iteration: 1,
    input: { ideas: ['a', 'b'] },
    metadata: { team: 'alpha' },
    correlationID: 'corr-1',
    traceparent: TRACEPARENT,
    idempotencyKey: 'run-1:filtering:1',
    ...over,
});

let server: Server | undefined;

/** Starts a server answering every request with `reply`; returns its base URL and what it received. */
async function serve(reply: Reply | ((seen: Seen) => Reply)): Promise<{ base: string; seen: Seen[] }> {
    const seen: Seen[] = [];
    const timers = new Set<NodeJS.Timeout>();
    server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
            const s: Seen = {
                method: req.method,
                url: req.url,
                headers: req.headers,
                body: Buffer.concat(chunks).toString(),
            };
            seen.push(s);
            const r = typeof reply === 'function' ? reply(s) : reply;
            const answer = (): void => {
                res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers });
                res.end(r.body ?? '');
            };
            if (!r.delayMs) return answer();
            const t = setTimeout(answer, r.delayMs);
            timers.add(t);
            res.on('close', () => clearTimeout(t));
        });
    });
    server.on('close', () => timers.forEach(clearTimeout));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function client(base: string, timeoutMs = 2_000): HttpEngineClient {
    const urls = Object.fromEntries(STAGES.map((s) => [s, `${base}/${s}`])) as Record<Stage, string>;
    return new HttpEngineClient({ urls, timeoutMs });
}

afterEach(async () => {
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
});

describe('HttpEngineClient', () => {
    it('posts the contract body to {url}/v1/invoke and returns output and continue', async () => {
        const { base, seen } = await serve({
            status: 200,
            body: envelope(null, 'ok', { output: { best: 'x' }, continue: true }),
        });

        const result = await client(base).invoke(
            request({ stage: 'improvement', idempotencyKey: 'run-1:improvement:1' }),
        );

        expect(result).toEqual({ ok: true, output: { best: 'x' }, continue: true });
        expect(seen).toHaveLength(1);
        expect(seen[0]!.method).toBe('POST');
        expect(seen[0]!.url).toBe('/improvement/v1/invoke');
        expect(JSON.parse(seen[0]!.body)).toEqual({
            runId: 'run-1',
            stage: 'improvement',
            iteration: 1,
            input: { ideas: ['a', 'b'] },
            metadata: { team: 'alpha' },
        });
    });

    it('sends traceparent, x-correlation-id, Idempotency-Key and a JSON content-type', async () => {
        const { base, seen } = await serve({ status: 200, body: envelope(null, 'ok', { output: 1 }) });

        await client(base).invoke(request());

        const headers = seen[0]!.headers;
        expect(headers.traceparent).toBe(TRACEPARENT);
        expect(headers['x-correlation-id']).toBe('corr-1');
        expect(headers['idempotency-key']).toBe('run-1:filtering:1');
        expect(headers['content-type']).toBe('application/json');
    });

    it('treats a missing continue as false and keeps a base URL query (e.g. a function key)', async () => {
        const { base, seen } = await serve({ status: 200, body: envelope(null, 'ok', { output: null }) });
        const urls = Object.fromEntries(STAGES.map((s) => [s, `${base}/api/?code=k1`])) as Record<Stage, string>;

        const result = await new HttpEngineClient({ urls, timeoutMs: 2_000 }).invoke(request());

        expect(result).toEqual({ ok: true, output: null, continue: false });
        expect(seen[0]!.url).toBe('/api/v1/invoke?code=k1');
    });

    it('returns a permanent refusal for a 4xx envelope, with the failing fields', async () => {
        const body = envelope('VALIDATION_FAILED', 'Request validation failed.', {
            errors: [{ path: '/input/ideas', message: 'must be an array of strings' }],
        });
        const { base } = await serve({ status: 400, body });

        const result = await client(base).invoke(request());

        expect(result).toEqual({
            ok: false,
            code: 'VALIDATION_FAILED',
            message: 'Request validation failed. (/input/ideas must be an array of strings)',
        });
    });

    it('maps a 4xx that is not an envelope to the code of its status', async () => {
        const { base } = await serve({
            status: 404,
            body: '<html>Not Found</html>',
            headers: { 'content-type': 'text/html' },
        });

        expect(await client(base).invoke(request())).toEqual({
            ok: false,
            code: 'NOT_FOUND',
            message: 'HTTP 404: <html>Not Found</html>',
        });
    });

    it('returns a permanent refusal for an envelope error carried by a 2xx', async () => {
        const { base } = await serve({ status: 200, body: envelope('FORBIDDEN', 'Not for this team.', null) });

        expect(await client(base).invoke(request())).toEqual({
            ok: false,
            code: 'FORBIDDEN',
            message: 'Not for this team.',
        });
    });

    it.each([
        [503, 'UNAVAILABLE', 'filtering engine: HTTP 503 UNAVAILABLE: busy'],
        [500, 'INTERNAL', 'filtering engine: HTTP 500 INTERNAL: busy'],
        [429, 'RATE_LIMITED', 'filtering engine: HTTP 429 RATE_LIMITED: busy'],
        [408, 'VALIDATION_FAILED', 'filtering engine: HTTP 408 VALIDATION_FAILED: busy'],
        [502, null, 'filtering engine: HTTP 502'],
    ])('throws (transient) on HTTP %i', async (status, code, message) => {
        const { base } = await serve({ status, body: code ? envelope(code, 'busy', null) : '' });

        await expect(client(base).invoke(request())).rejects.toThrow(message);
    });

    it('throws (transient) for a 4xx whose envelope says UNAVAILABLE or RATE_LIMITED', async () => {
        const { base } = await serve({ status: 400, body: envelope('RATE_LIMITED', 'slow down', null) });

        await expect(client(base).invoke(request())).rejects.toThrow(
            'filtering engine: HTTP 400 RATE_LIMITED: slow down',
        );
    });

    it('throws within about the timeout when the engine does not answer', async () => {
        const { base } = await serve({ status: 200, body: envelope(null, 'ok', { output: 1 }), delayMs: 5_000 });
        const started = Date.now();

        await expect(client(base, 300).invoke(request())).rejects.toThrow('filtering engine: no answer within 300 ms');

        const elapsed = Date.now() - started;
        expect(elapsed).toBeGreaterThanOrEqual(250);
        expect(elapsed).toBeLessThan(2_000);
    });

    it('throws when nothing listens at the URL', async () => {
        const { base } = await serve({ status: 200 });
        await new Promise((resolve) => server!.close(resolve));
        server = undefined;

        await expect(client(base).invoke(request())).rejects.toThrow(
            /^filtering engine: request failed \(ECONNREFUSED\)/,
        );
    });

    it('throws for a 2xx body that is not a JSON envelope, quoting at most 200 characters of it', async () => {
        const long = 'x'.repeat(5_000);
        const { base } = await serve({
            status: 200,
            body: `not json ${long}`,
            headers: { 'content-type': 'text/plain' },
        });

        const error = await client(base)
            .invoke(request())
            .then(
                () => undefined,
                (e: unknown) => e as Error,
            );

        expect(error).toBeInstanceOf(Error);
        expect(error!.message).toMatch(/^filtering engine: HTTP 200 answer is not a JSON envelope: not json x+…$/);
        expect(error!.message.length).toBeLessThan(300);
    });

    it.each([
        ['an empty body', ''],
        ['JSON that is not an envelope', JSON.stringify({ output: 1 })],
        ['an envelope without data.output', envelope(null, 'ok', { result: 1 })],
        ['a non-boolean continue', envelope(null, 'ok', { output: 1, continue: 'yes' })],
    ])('throws for a 2xx with %s', async (_what, body) => {
        const { base } = await serve({ status: 200, body });

        await expect(client(base).invoke(request())).rejects.toThrow(/^filtering engine: HTTP 200 /);
    });

    it('refuses a redirect instead of following it', async () => {
        const { base, seen } = await serve({ status: 307, headers: { location: 'http://127.0.0.1:1/elsewhere' } });

        const result = await client(base).invoke(request());

        expect(result).toMatchObject({ ok: false, code: 'ENGINE_FAILED' });
        expect(seen).toHaveLength(1);
    });

    it('validates its URLs and timeout when constructed, without quoting the URL', () => {
        const urls = Object.fromEntries(STAGES.map((s) => [s, 'http://engine'])) as Record<Stage, string>;

        expect(() => new HttpEngineClient({ urls: { ...urls, taste: 'secret-not-a-url' }, timeoutMs: 1 })).toThrow(
            'The taste engine URL is not an absolute URL.',
        );
        expect(() => new HttpEngineClient({ urls: { ...urls, taste: 'ftp://engine' }, timeoutMs: 1 })).toThrow(
            'The taste engine URL must be http or https.',
        );
        expect(() => new HttpEngineClient({ urls, timeoutMs: 0 })).toThrow(RangeError);
    });
});

describe('engine config', () => {
    const full = {
        ENGINE_URL_GENERATION: 'http://gen',
        ENGINE_URL_FILTERING: 'http://fil',
        ENGINE_URL_CREATIVITY: 'http://cre',
        ENGINE_URL_TASTE: 'http://tas',
        ENGINE_URL_IMPROVEMENT: 'https://imp/api?code=k',
    };
    const saved = { ...process.env };
    afterEach(() => {
        process.env = { ...saved };
        resetEngineConfigForTests();
    });

    it('parses the five URLs and the default timeout into a frozen object', () => {
        const cfg = parseEngineConfig(full);

        expect(cfg).toEqual({
            urls: {
                generation: 'http://gen',
                filtering: 'http://fil',
                creativity: 'http://cre',
                taste: 'http://tas',
                improvement: 'https://imp/api?code=k',
            },
            timeoutMs: 10_000,
        });
        expect(Object.isFrozen(cfg)).toBe(true);
        expect(Object.isFrozen(cfg.urls)).toBe(true);
        expect(parseEngineConfig({ ...full, ENGINE_TIMEOUT_MS: '2500' }).timeoutMs).toBe(2_500);
    });

    it('lists every missing key in one error', () => {
        expect(() => parseEngineConfig({ ENGINE_URL_FILTERING: 'http://f', ENGINE_URL_TASTE: ' ' })).toThrow(
            'Missing required configuration: ENGINE_URL_GENERATION, ENGINE_URL_CREATIVITY, ENGINE_URL_TASTE, ENGINE_URL_IMPROVEMENT',
        );
    });

    it('names every invalid key without quoting its value', () => {
        const error = (() => {
            try {
                parseEngineConfig({ ...full, ENGINE_URL_TASTE: 'tas-secret', ENGINE_TIMEOUT_MS: '-5' });
            } catch (e: unknown) {
                return e as Error;
            }
        })();

        expect(error?.message).toMatch(/^Invalid configuration: ENGINE_URL_TASTE .*; ENGINE_TIMEOUT_MS /);
        expect(error?.message).not.toContain('tas-secret');
    });

    it('reads process.env once and caches until reset', () => {
        Object.assign(process.env, full);
        expect(engineConfig().urls.generation).toBe('http://gen');
        process.env.ENGINE_URL_GENERATION = 'http://gen2';
        expect(engineConfig().urls.generation).toBe('http://gen');
        resetEngineConfigForTests();
        expect(engineConfig().urls.generation).toBe('http://gen2');
    });
});
