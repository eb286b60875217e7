import { authConfig, parseAuthConfig, resetConfigForTests } from '../../adapters/config';

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
