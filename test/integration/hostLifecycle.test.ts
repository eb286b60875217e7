/** npm start's host: the product's own app, probes, JWKS, and a clean stop on SIGTERM / SIGINT. */
import { json, startHostProcess } from '../support/hostProcess';

it('serves the probes and the local JWKS, then stops cleanly on SIGTERM', async () => {
    const host = await startHostProcess();
    try {
        const live = await json<{ error_code: null; data: { status: string } }>(host.origin, 'GET', '/health/live');
        expect(live.status).toBe(200);
        expect(live.body.data.status).toBe('live');
        const ready = await json<{ data: { status: string; checks: Record<string, string> } }>(
            host.origin,
            'GET',
            '/health/ready',
            undefined,
            {
                'x-correlation-id': 'probe-1',
            },
        );
        expect(ready.status).toBe(200);
        expect(ready.headers.get('x-correlation-id')).toBe('probe-1');
        expect(ready.body.data).toEqual({ status: 'ready', checks: { durableBackend: 'ok', store: 'ok' } });
        const jwks = await json<{ keys: { kid: string; kty: string; d?: string }[] }>(
            host.origin,
            'GET',
            '/.well-known/jwks.json',
        );
        expect(jwks.body.keys[0]).toMatchObject({ kty: 'RSA' });
        expect(jwks.body.keys[0]!.d).toBeUndefined(); // never the private part
    } finally {
        expect(await host.stop('SIGTERM')).toBe(0);
    }
});

it('stops cleanly on SIGINT', async () => {
    const host = await startHostProcess();
    expect(await host.stop('SIGINT')).toBe(0);
});
