/**
 * Cross-origin use (adapters/http/cors.ts, MESH_CORS_ORIGINS): only listed origins get a preflight answer and
 * `access-control-allow-origin`; the setting is checked at start-up (every entry an origin).
 */
import { HttpRequest, type InvocationContext } from '@azure/functions';

import { parseCorsConfig } from '../../adapters/config';
import { configurationProblems } from '../../adapters/configCheck';
import { CORS_ALLOW_HEADERS, corsHeaders, corsRoute, preflight, withHeaders } from '../../adapters/http/cors';

const LISTED = ['https://plugins.example.com', 'http://localhost:5173'];
const req = (method: string, headers: Record<string, string> = {}) =>
    new HttpRequest({ method, url: 'http://localhost/api/pipeline', headers });

describe('MESH_CORS_ORIGINS', () => {
    it('is off by default', () => {
        expect(parseCorsConfig({}).origins).toEqual([]);
        expect(parseCorsConfig({ MESH_CORS_ORIGINS: ' , ' }).origins).toEqual([]);
    });

    it('reads comma-separated origins in normal form', () => {
        expect(
            parseCorsConfig({
                MESH_CORS_ORIGINS: 'https://Plugins.Example.com, http://localhost:5173,https://a.example:443',
            }).origins,
        ).toEqual(['https://plugins.example.com', 'http://localhost:5173', 'https://a.example']);
    });

    it.each([
        '*',
        'plugins.example.com',
        'https://plugins.example.com/',
        'https://x.example/app',
        'ftp://x.example',
        'https://u:p@x.example',
    ])('refuses %s, naming it', (bad) => {
        expect(() => parseCorsConfig({ MESH_CORS_ORIGINS: `https://ok.example,${bad}` })).toThrow(
            new RegExp(`MESH_CORS_ORIGINS .*'${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}'`),
        );
    });

    it('is part of the start-up check', async () => {
        const problems = await configurationProblems({ MESH_CORS_ORIGINS: 'https://x.example/path' });
        expect(problems).toEqual(expect.arrayContaining([expect.stringContaining('MESH_CORS_ORIGINS')]));
    });
});

describe('preflight and CORS headers', () => {
    it('answers a listed origin with the allowed methods and headers, no credentials', () => {
        const r = preflight(req('OPTIONS', { origin: 'https://plugins.example.com' }), ['GET'], LISTED);
        expect(r.status).toBe(204);
        expect(r.headers).toMatchObject({
            'access-control-allow-origin': 'https://plugins.example.com',
            'access-control-allow-methods': 'GET, OPTIONS',
            'access-control-allow-headers': CORS_ALLOW_HEADERS,
            vary: 'origin',
        });
        expect(r.headers).not.toHaveProperty('access-control-allow-credentials');
    });

    it('refuses an unlisted origin (403, enveloped, no allow headers), and one that only looks alike', () => {
        for (const origin of [
            'https://evil.example',
            'https://plugins.example.com.evil.example',
            'https://PLUGINS.example.com',
        ]) {
            const r = preflight(req('OPTIONS', { origin }), ['GET'], LISTED);
            expect(r.status).toBe(403);
            expect(r.jsonBody).toMatchObject({ error_code: 'FORBIDDEN', data: null });
            expect(JSON.stringify(r.headers)).not.toContain('access-control-allow');
        }
    });

    it('adds allow-origin to actual answers for listed origins only', () => {
        expect(corsHeaders(req('GET', { origin: 'http://localhost:5173' }), LISTED)).toEqual({
            'access-control-allow-origin': 'http://localhost:5173',
            'access-control-expose-headers': 'x-correlation-id, retry-after',
            vary: 'origin',
        });
        expect(corsHeaders(req('GET', { origin: 'https://evil.example' }), LISTED)).toEqual({ vary: 'origin' });
        expect(corsHeaders(req('GET'), LISTED)).toEqual({});
        expect(corsHeaders(req('GET', { origin: 'https://plugins.example.com' }), [])).toEqual({ vary: 'origin' });
    });

    it("keeps a handler's own vary and headers", () => {
        const r = withHeaders({ status: 200, headers: { vary: 'accept', 'x-a': '1' } }, { vary: 'origin', 'x-b': '2' });
        expect((r as { headers: unknown }).headers).toEqual({ vary: 'accept, origin', 'x-a': '1', 'x-b': '2' });
    });

    it('corsRoute adds OPTIONS and answers it without calling the handler', async () => {
        let called = 0;
        const route = corsRoute(['POST'], () => {
            called++;
            return Promise.resolve({ status: 202, headers: { 'x-correlation-id': 'c' } });
        });
        expect(route.methods).toEqual(['POST', 'OPTIONS']);
        const ctx = {} as InvocationContext;
        expect((await route.handler(req('OPTIONS'), ctx)).status).toBe(204);
        expect(called).toBe(0);
        const r = await route.handler(req('POST'), ctx);
        expect(r.status).toBe(202);
        expect(called).toBe(1);
    });
});
