/**
 * Serving the widget and the dashboard page on the embedded host: the bundle is one self-contained ES module with an
 * ETag, `GET /dashboard` hosts it, and the host's local sign-in (pick a person of the local directory) mints tokens
 * the API accepts, only by POST with JSON from the host's own pages, and only when no sign-in is configured.
 */
import { Api } from '../support/api';
import { type HostProcess, json, startHostProcess } from '../support/hostProcess';

const SIGN_IN = '/.mesh/local-sign-in';

describe('dashboard serving and local sign-in', () => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess();
        api = new Api(host);
    });

    afterAll(async () => {
        await host?.stop();
    });

    it('serves the widget as one self-contained ES module with an ETag', async () => {
        const r = await fetch(`${host.origin}/widget/mesh-dashboard.js`);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toMatch(/^text\/javascript/);
        expect(r.headers.get('cache-control')).toMatch(/max-age=\d+/);
        const etag = r.headers.get('etag');
        expect(etag).toMatch(/^"[\w-]+"$/);
        const code = await r.text();
        expect(code).toContain('mesh-dashboard');
        // No other requests for code: no static or dynamic imports left in the bundle.
        expect(code).not.toMatch(/\bimport\s*\(/);
        expect(code).not.toMatch(/(^|[;}\n])\s*import\s*[\w{*"']/);
        const again = await fetch(`${host.origin}/widget/mesh-dashboard.js`, { headers: { 'if-none-match': etag! } });
        expect(again.status).toBe(304);
    });

    it('serves the dashboard page hosting the element', async () => {
        const r = await fetch(`${host.origin}/dashboard`);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toMatch(/^text\/html/);
        const page = await r.text();
        expect(page).toContain('<mesh-dashboard');
        expect(page).toContain('src="widget/mesh-dashboard.js"');
    });

    it('npm start prints the dashboard URL', () => {
        expect(host.output()).toContain(`dashboard:      ${host.origin}/dashboard`);
    });

    it('lists the local directory and mints a token the API accepts for the person picked', async () => {
        const people = await json<any>(host.origin, 'GET', SIGN_IN);
        expect(people.status).toBe(200);
        expect(people.body.data.people).toContainEqual(
            expect.objectContaining({ id: 'dana', roles: ['Mesh.Developer'], teams: ['alpha'] }),
        );
        const minted = await json<any>(host.origin, 'POST', SIGN_IN, { id: 'dana' });
        expect(minted.status).toBe(200);
        const listed = await api.call('GET', '/pipeline', { token: minted.body.data.token });
        expect(listed.status).toBe(200);
    });

    it('refuses what is not a JSON POST from the host itself, and unknown people', async () => {
        expect((await json<any>(host.origin, 'POST', SIGN_IN, { id: 'nobody-here' })).status).toBe(404);
        expect((await json<any>(host.origin, 'POST', SIGN_IN, {})).body.error_code).toBe('VALIDATION_FAILED');
        const form = await fetch(host.origin + SIGN_IN, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: 'id=dana',
        });
        expect(form.status).toBe(400);
        const foreign = await json<any>(
            host.origin,
            'POST',
            SIGN_IN,
            { id: 'dana' },
            { origin: 'https://evil.example' },
        );
        expect(foreign.status).toBe(403);
        expect(foreign.body.data).toBeNull();
        expect((await json<any>(host.origin, 'PUT', SIGN_IN, { id: 'dana' })).status).toBe(405);
    });
});

describe('local sign-in when a sign-in is configured', () => {
    it('does not exist when the host trusts another issuer', async () => {
        const host = await startHostProcess({
            env: {
                AUTH_ISSUER: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0',
                AUTH_AUDIENCE: 'api://mesh-orchestrator',
                AUTH_JWKS_URI: 'https://login.microsoftonline.com/common/discovery/v2.0/keys',
            },
        });
        try {
            const r = await json<any>(host.origin, 'POST', SIGN_IN, { id: 'dana' });
            expect(r.status).toBe(404);
            expect(host.output()).not.toContain('local sign-in');
        } finally {
            await host.stop();
        }
    });
});
