import {
    authConfig,
    eventWebhookConfig,
    parseAuthConfig,
    parseEventWebhookConfig,
    resetConfigForTests,
} from '../../adapters/config';

describe('auth config', () => {
    const saved = { ...process.env };
    afterEach(() => {
        process.env = { ...saved };
        resetConfigForTests();
    });

    it('parses the AUTH_* settings with a default teams claim', () => {
        const cfg = parseAuthConfig({
            AUTH_ISSUER: 'https://iss',
            AUTH_AUDIENCE: 'api://a',
            AUTH_JWKS_URI: 'https://k',
        });
        expect(cfg).toEqual({ issuer: 'https://iss', audience: 'api://a', jwksUri: 'https://k', teamsClaim: 'groups' });
        expect(Object.isFrozen(cfg)).toBe(true);
    });

    it('honours AUTH_TEAMS_CLAIM', () => {
        const cfg = parseAuthConfig({
            AUTH_ISSUER: 'i',
            AUTH_AUDIENCE: 'a',
            AUTH_JWKS_URI: 'k',
            AUTH_TEAMS_CLAIM: 'team',
        });
        expect(cfg.teamsClaim).toBe('team');
    });

    it('lists every missing key in one error', () => {
        expect(() => parseAuthConfig({ AUTH_AUDIENCE: 'a', AUTH_JWKS_URI: ' ' })).toThrow(
            'Missing required configuration: AUTH_ISSUER, AUTH_JWKS_URI',
        );
    });

    it('reads process.env once and caches until reset', () => {
        Object.assign(process.env, { AUTH_ISSUER: 'i1', AUTH_AUDIENCE: 'a', AUTH_JWKS_URI: 'k' });
        expect(authConfig().issuer).toBe('i1');
        process.env.AUTH_ISSUER = 'i2';
        expect(authConfig().issuer).toBe('i1');
        resetConfigForTests();
        expect(authConfig().issuer).toBe('i2');
    });
});

describe('event webhook config', () => {
    const saved = { ...process.env };
    afterEach(() => {
        process.env = { ...saved };
        resetConfigForTests();
    });

    it('is off (undefined) when neither setting is set, or both are blank', () => {
        expect(parseEventWebhookConfig({})).toBeUndefined();
        expect(parseEventWebhookConfig({ MESH_EVENT_WEBHOOK_URL: ' ', MESH_EVENT_WEBHOOK_SECRET: '' })).toBeUndefined();
    });

    it('parses the URL and secret, trimmed and frozen', () => {
        const cfg = parseEventWebhookConfig({
            MESH_EVENT_WEBHOOK_URL: ' https://hooks.example.com/mesh ',
            MESH_EVENT_WEBHOOK_SECRET: ' s3cret ',
        });
        expect(cfg).toEqual({ url: 'https://hooks.example.com/mesh', secret: 's3cret' });
        expect(Object.isFrozen(cfg)).toBe(true);
        expect(
            parseEventWebhookConfig({ MESH_EVENT_WEBHOOK_URL: 'http://127.0.0.1:9/x', MESH_EVENT_WEBHOOK_SECRET: 's' }),
        ).toEqual({ url: 'http://127.0.0.1:9/x', secret: 's' });
    });

    it('requires the secret alongside the URL, and the URL alongside the secret', () => {
        expect(() => parseEventWebhookConfig({ MESH_EVENT_WEBHOOK_URL: 'https://h/x' })).toThrow(
            'Missing required configuration: MESH_EVENT_WEBHOOK_SECRET',
        );
        expect(() => parseEventWebhookConfig({ MESH_EVENT_WEBHOOK_SECRET: 's' })).toThrow(
            'Missing required configuration: MESH_EVENT_WEBHOOK_URL',
        );
    });

    it('refuses a URL that is not http(s)', () => {
        for (const url of ['not a url', 'ftp://h/x', 'file:///etc/passwd'])
            expect(() =>
                parseEventWebhookConfig({ MESH_EVENT_WEBHOOK_URL: url, MESH_EVENT_WEBHOOK_SECRET: 's' }),
            ).toThrow('MESH_EVENT_WEBHOOK_URL must be an http(s) URL');
    });

    it('reads process.env once and caches until reset, the off state included', () => {
        delete process.env.MESH_EVENT_WEBHOOK_URL;
        delete process.env.MESH_EVENT_WEBHOOK_SECRET;
        expect(eventWebhookConfig()).toBeUndefined();
        Object.assign(process.env, { MESH_EVENT_WEBHOOK_URL: 'https://h/x', MESH_EVENT_WEBHOOK_SECRET: 's' });
        expect(eventWebhookConfig()).toBeUndefined();
        resetConfigForTests();
        expect(eventWebhookConfig()).toEqual({ url: 'https://h/x', secret: 's' });
    });
});
