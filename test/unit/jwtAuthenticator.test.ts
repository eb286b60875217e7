import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { HttpRequest } from '@azure/functions';
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose';

import { JwtAuthenticator } from '../../adapters/auth/jwtAuthenticator';
import type { AuthConfig } from '../../adapters/config';
import { UnauthenticatedError, UnavailableError } from '../../domain/errors';
import {
    loadOrCreateSigningKey,
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    mintToken,
    publicJwks,
    type SigningKey,
} from '../../local/identity';

const cfg: AuthConfig = {
    issuer: LOCAL_ISSUER,
    audience: LOCAL_AUDIENCE,
    jwksUri: 'http://127.0.0.1:1/unused',
    teamsClaim: 'groups',
};

const withAuth = (authorization?: string) =>
    new HttpRequest({
        method: 'GET',
        url: 'http://localhost/pipeline',
        headers: authorization === undefined ? {} : { authorization },
    });

let dir: string;
let key: SigningKey;
let auth: JwtAuthenticator;

beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mesh-auth-'));
    key = await loadOrCreateSigningKey(dir);
    auth = new JwtAuthenticator(cfg, createLocalJWKSet(publicJwks(key)));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Signs arbitrary claims with the trusted key (for claim-shape cases the minter does not produce). */
async function signed(claims: JWTPayload, opts: { iss?: string; aud?: string; exp?: number | string } = {}) {
    return new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: key.kid })
        .setIssuer(opts.iss ?? LOCAL_ISSUER)
        .setAudience(opts.aud ?? LOCAL_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(opts.exp ?? '1h')
        .sign(await importJWK(key.privateJwk, 'RS256'));
}

async function rejection(authorization: string | undefined, a: JwtAuthenticator = auth): Promise<unknown> {
    return a.principal(withAuth(authorization)).then(
        () => {
            throw new Error('expected a rejection');
        },
        (e: unknown) => e,
    );
}

describe('JwtAuthenticator', () => {
    it('accepts a valid local token and builds the principal', async () => {
        const token = await mintToken(key, {
            sub: 'alice',
            name: 'Alice A',
            roles: ['Mesh.Developer', 'Mesh.Approver'],
            teams: ['alpha'],
        });
        await expect(auth.principal(withAuth(`Bearer ${token}`))).resolves.toEqual({
            id: 'alice',
            name: 'Alice A',
            roles: ['Mesh.Developer', 'Mesh.Approver'],
            teams: ['alpha'],
        });
    });

    it('accepts the scheme in any case', async () => {
        const token = await mintToken(key, { sub: 'bob', roles: [], teams: [] });
        await expect(auth.principal(withAuth(`bearer ${token}`))).resolves.toMatchObject({ id: 'bob' });
    });

    it.each<[string, string | undefined, string]>([
        ['missing header', undefined, 'Missing bearer token.'],
        ['empty header', '', 'Missing bearer token.'],
        ['basic scheme', 'Basic YWxpY2U6cHc=', 'Malformed bearer token.'],
        ['bearer without token', 'Bearer ', 'Malformed bearer token.'],
        ['not a jwt', 'Bearer abc.def', 'Malformed bearer token.'],
        ['two tokens', 'Bearer a.b.c d.e.f', 'Malformed bearer token.'],
        ['garbage segments', 'Bearer aaaa.bbbb.cccc', 'Invalid token.'],
    ])('rejects %s with 401', async (_name, header, message) => {
        const err = await rejection(header);
        expect(err).toBeInstanceOf(UnauthenticatedError);
        expect((err as UnauthenticatedError).message).toBe(message);
    });

    it('rejects an expired token', async () => {
        const token = await mintToken(key, { sub: 'alice', roles: [], teams: [], expired: true });
        const err = await rejection(`Bearer ${token}`);
        expect(err).toBeInstanceOf(UnauthenticatedError);
        expect((err as Error).message).toBe('Token has expired.');
    });

    it('tolerates 60 s of clock skew on exp', async () => {
        const now = Math.floor(Date.now() / 1000);
        await expect(
            auth.principal(withAuth(`Bearer ${await signed({ sub: 'x' }, { exp: now - 30 })}`)),
        ).resolves.toBeDefined();
        const err = await rejection(`Bearer ${await signed({ sub: 'x' }, { exp: now - 120 })}`);
        expect(err).toBeInstanceOf(UnauthenticatedError);
    });

    it('rejects a token without exp', async () => {
        const token = await new SignJWT({ sub: 'x' })
            .setProtectedHeader({ alg: 'RS256', kid: key.kid })
            .setIssuer(LOCAL_ISSUER)
            .setAudience(LOCAL_AUDIENCE)
            .sign(await importJWK(key.privateJwk, 'RS256'));
        expect(await rejection(`Bearer ${token}`)).toBeInstanceOf(UnauthenticatedError);
    });

    it('rejects a foreign-signed token', async () => {
        const token = await mintToken(key, { sub: 'mallory', roles: ['Mesh.Admin'], teams: [], foreign: true });
        const err = await rejection(`Bearer ${token}`);
        expect(err).toBeInstanceOf(UnauthenticatedError);
        expect((err as Error).message).toBe('Invalid token.');
    });

    it('rejects a token signed by another key under the trusted kid', async () => {
        const { privateKey } = await generateKeyPair('RS256');
        const token = await new SignJWT({ sub: 'mallory' })
            .setProtectedHeader({ alg: 'RS256', kid: key.kid })
            .setIssuer(LOCAL_ISSUER)
            .setAudience(LOCAL_AUDIENCE)
            .setExpirationTime('1h')
            .sign(privateKey);
        expect(await rejection(`Bearer ${token}`)).toBeInstanceOf(UnauthenticatedError);
    });

    it('rejects a wrong audience', async () => {
        const err = await rejection(`Bearer ${await signed({ sub: 'x' }, { aud: 'api://other' })}`);
        expect(err).toBeInstanceOf(UnauthenticatedError);
    });

    it('rejects a wrong issuer', async () => {
        const err = await rejection(`Bearer ${await signed({ sub: 'x' }, { iss: 'https://evil.example/idp' })}`);
        expect(err).toBeInstanceOf(UnauthenticatedError);
    });

    it('rejects alg none', async () => {
        const token = new UnsecuredJWT({ sub: 'x', roles: ['Mesh.Admin'] })
            .setIssuer(LOCAL_ISSUER)
            .setAudience(LOCAL_AUDIENCE)
            .setExpirationTime('1h')
            .encode();
        // An unsecured JWT ends in an empty signature segment; also try it with a dummy one.
        expect(await rejection(`Bearer ${token}`)).toBeInstanceOf(UnauthenticatedError);
        expect(await rejection(`Bearer ${token}AAAA`)).toBeInstanceOf(UnauthenticatedError);
    });

    it('rejects HS256 even when the attacker signs with the public key bytes', async () => {
        const secret = new TextEncoder().encode(JSON.stringify(key.publicJwk));
        const token = await new SignJWT({ sub: 'x' })
            .setProtectedHeader({ alg: 'HS256', kid: key.kid })
            .setIssuer(LOCAL_ISSUER)
            .setAudience(LOCAL_AUDIENCE)
            .setExpirationTime('1h')
            .sign(secret);
        expect(await rejection(`Bearer ${token}`)).toBeInstanceOf(UnauthenticatedError);
    });

    it('accepts ES256 tokens from a trusted EC key', async () => {
        const { privateKey, publicKey } = await generateKeyPair('ES256');
        const jwk = { ...(await exportJWK(publicKey)), kid: 'ec1', alg: 'ES256' };
        const ec = new JwtAuthenticator(cfg, createLocalJWKSet({ keys: [jwk] }));
        const token = await new SignJWT({ sub: 'x' })
            .setProtectedHeader({ alg: 'ES256', kid: 'ec1' })
            .setIssuer(LOCAL_ISSUER)
            .setAudience(LOCAL_AUDIENCE)
            .setExpirationTime('1h')
            .sign(privateKey);
        await expect(ec.principal(withAuth(`Bearer ${token}`))).resolves.toMatchObject({ id: 'x' });
    });

    it('never echoes the token in the error', async () => {
        const token = await mintToken(key, { sub: 'alice', roles: [], teams: [], foreign: true });
        const err = (await rejection(`Bearer ${token}`)) as Error;
        expect(JSON.stringify({ m: err.message })).not.toContain(token.slice(0, 20));
    });

    describe('claims', () => {
        it('prefers oid over sub and name over preferred_username', async () => {
            const token = await signed({ sub: 's', oid: 'o', name: 'N', preferred_username: 'p@x' });
            await expect(auth.principal(withAuth(`Bearer ${token}`))).resolves.toMatchObject({ id: 'o', name: 'N' });
        });

        it('falls back to sub and preferred_username, and omits name when neither is given', async () => {
            const p1 = await auth.principal(
                withAuth(`Bearer ${await signed({ sub: 's', preferred_username: 'p@x' })}`),
            );
            expect(p1).toMatchObject({ id: 's', name: 'p@x' });
            const p2 = await auth.principal(withAuth(`Bearer ${await signed({ sub: 's' })}`));
            expect(p2).not.toHaveProperty('name');
        });

        it('rejects a token with no subject', async () => {
            const err = await rejection(`Bearer ${await signed({ roles: ['Mesh.Admin'] })}`);
            expect(err).toBeInstanceOf(UnauthenticatedError);
        });

        it('drops unknown roles and ignores a non-array roles claim', async () => {
            const p = await auth.principal(
                withAuth(`Bearer ${await signed({ sub: 's', roles: ['Mesh.Operator', 'Foo.Bar'] })}`),
            );
            expect(p.roles).toEqual(['Mesh.Operator']);
            const q = await auth.principal(withAuth(`Bearer ${await signed({ sub: 's', roles: 'Mesh.Admin' })}`));
            expect(q.roles).toEqual([]);
        });

        it.each<[string, JWTPayload, string[]]>([
            ['groups array', { groups: ['a', 'b'] }, ['a', 'b']],
            ['groups string', { groups: 'a' }, ['a']],
            ['team string', { team: 'c' }, ['c']],
            ['team array', { team: ['c', 'd'] }, ['c', 'd']],
            ['union, de-duplicated', { groups: ['a', 'b'], team: ['b', 'c'] }, ['a', 'b', 'c']],
            ['non-strings dropped', { groups: ['a', 7, null, ''], team: { x: 1 } }, ['a']],
            ['none', {}, []],
        ])('reads teams: %s', async (_name, claims, teams) => {
            const p = await auth.principal(withAuth(`Bearer ${await signed({ sub: 's', ...claims })}`));
            expect(p.teams).toEqual(teams);
        });

        it('reads the configured teams claim instead of groups', async () => {
            const custom = new JwtAuthenticator({ ...cfg, teamsClaim: 'squads' }, createLocalJWKSet(publicJwks(key)));
            const token = await signed({ sub: 's', squads: ['x'], groups: ['ignored'], team: 'y' });
            await expect(custom.principal(withAuth(`Bearer ${token}`))).resolves.toMatchObject({ teams: ['x', 'y'] });
        });
    });

    describe('key source failures', () => {
        let server: Server;
        let base: string;
        beforeAll(async () => {
            server = createServer((req, res) => {
                if (req.url === '/ok') {
                    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(publicJwks(key)));
                } else {
                    res.writeHead(500).end('boom');
                }
            });
            await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
            base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        });
        afterAll(() => new Promise<void>((r) => server.close(() => r())));

        it('fetches the remote JWKS named in the configuration', async () => {
            const remote = new JwtAuthenticator({ ...cfg, jwksUri: `${base}/ok` });
            const token = await mintToken(key, { sub: 'alice', roles: [], teams: [] });
            await expect(remote.principal(withAuth(`Bearer ${token}`))).resolves.toMatchObject({ id: 'alice' });
        });

        it('answers UNAVAILABLE when the JWKS endpoint fails', async () => {
            const remote = new JwtAuthenticator({ ...cfg, jwksUri: `${base}/broken` });
            const token = await mintToken(key, { sub: 'alice', roles: [], teams: [] });
            expect(await rejection(`Bearer ${token}`, remote)).toBeInstanceOf(UnavailableError);
        });

        it('answers UNAVAILABLE when the JWKS endpoint is unreachable', async () => {
            const closed = createServer();
            await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
            const port = (closed.address() as AddressInfo).port;
            await new Promise<void>((r) => closed.close(() => r()));
            const remote = new JwtAuthenticator({ ...cfg, jwksUri: `http://127.0.0.1:${port}/keys` });
            const token = await mintToken(key, { sub: 'alice', roles: [], teams: [] });
            expect(await rejection(`Bearer ${token}`, remote)).toBeInstanceOf(UnavailableError);
        });

        it('still answers 401 for a malformed token without touching the key source', async () => {
            const failing = new JwtAuthenticator(cfg, () => Promise.reject(new Error('must not be called')));
            expect(await rejection('Bearer aaaa.bbbb.cccc', failing)).toBeInstanceOf(UnauthenticatedError);
        });
    });
});
