import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';

import {
    keysDirFrom,
    loadOrCreateSigningKey,
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    mintToken,
    publicJwks,
} from '../../local/identity';

let dir: string;
beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mesh-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('keysDirFrom', () => {
    it('uses MESH_KEYS_DIR when set, resolved against cwd', () => {
        expect(keysDirFrom({ MESH_KEYS_DIR: '/abs/keys' }, '/work')).toBe('/abs/keys');
        expect(keysDirFrom({ MESH_KEYS_DIR: 'rel' }, '/work')).toBe(resolve('/work', 'rel'));
    });

    it('defaults to <cwd>/.mesh-data/keys and ignores MESH_DATA_DIR', () => {
        expect(keysDirFrom({ MESH_DATA_DIR: '/elsewhere' }, '/work')).toBe(join('/work', '.mesh-data', 'keys'));
        expect(keysDirFrom({ MESH_KEYS_DIR: '' }, '/work')).toBe(join('/work', '.mesh-data', 'keys'));
    });
});

describe('loadOrCreateSigningKey', () => {
    it('creates a private RS256 JWK file with mode 0600 and a thumbprint kid', async () => {
        const keysDir = join(dir, 'nested', 'keys');
        const key = await loadOrCreateSigningKey(keysDir);
        const file = join(keysDir, 'signing-key.json');
        expect(statSync(file).mode & 0o777).toBe(0o600);
        const stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
        expect(stored).toMatchObject({ kty: 'RSA', kid: key.kid, alg: 'RS256', use: 'sig' });
        expect(stored.d).toBeDefined();
        expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/); // base64url SHA-256
        expect(readdirSync(keysDir)).toEqual(['signing-key.json']); // no temp files left behind
    });

    it('returns the same key on a later call', async () => {
        const a = await loadOrCreateSigningKey(dir);
        const b = await loadOrCreateSigningKey(dir);
        expect(b).toEqual(a);
    });

    it('agrees on one key when several callers race to create it', async () => {
        const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateSigningKey(dir)));
        for (const k of keys) expect(k).toEqual(keys[0]);
        const stored = JSON.parse(readFileSync(join(dir, 'signing-key.json'), 'utf8')) as { kid: string };
        expect(stored.kid).toBe(keys[0]!.kid);
        expect(readdirSync(dir)).toEqual(['signing-key.json']);
    });

    it('refuses a broken key file instead of replacing it', async () => {
        writeFileSync(join(dir, 'signing-key.json'), '{not json');
        await expect(loadOrCreateSigningKey(dir)).rejects.toThrow(/delete it/);
    });
});

describe('publicJwks', () => {
    it('publishes only the public half', async () => {
        const key = await loadOrCreateSigningKey(dir);
        const jwks = publicJwks(key);
        expect(jwks.keys).toHaveLength(1);
        expect(jwks.keys[0]).toEqual({
            kty: 'RSA',
            n: key.privateJwk.n,
            e: key.privateJwk.e,
            kid: key.kid,
            alg: 'RS256',
            use: 'sig',
        });
        expect(JSON.stringify(jwks)).not.toContain(key.privateJwk.d!);
    });
});

describe('mintToken', () => {
    it('mints a token that verifies against the published JWKS with the expected claims', async () => {
        const key = await loadOrCreateSigningKey(dir);
        const token = await mintToken(key, {
            sub: 'alice',
            roles: ['Mesh.Developer'],
            teams: ['alpha', 'beta'],
            ttlSeconds: 120,
        });
        const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(publicJwks(key)), {
            issuer: LOCAL_ISSUER,
            audience: LOCAL_AUDIENCE,
        });
        expect(protectedHeader).toMatchObject({ alg: 'RS256', kid: key.kid, typ: 'JWT' });
        expect(payload).toMatchObject({
            sub: 'alice',
            oid: 'alice',
            name: 'alice',
            roles: ['Mesh.Developer'],
            groups: ['alpha', 'beta'],
            team: ['alpha', 'beta'],
        });
        expect(payload.exp! - payload.iat!).toBe(120);
        expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
    });

    it('uses the given display name', async () => {
        const key = await loadOrCreateSigningKey(dir);
        const token = await mintToken(key, { sub: 'alice', name: 'Alice A', roles: [], teams: [] });
        expect(decodeJwt(token).name).toBe('Alice A');
    });

    it('mints an expired token an hour past its exp', async () => {
        const key = await loadOrCreateSigningKey(dir);
        const { exp, iat } = decodeJwt(await mintToken(key, { sub: 'a', roles: [], teams: [], expired: true }));
        expect(Math.abs(exp! - (Date.now() / 1000 - 3600))).toBeLessThan(5);
        expect(exp! - iat!).toBe(3600);
    });

    it('signs a foreign token with a key that is not in the JWKS', async () => {
        const key = await loadOrCreateSigningKey(dir);
        const token = await mintToken(key, { sub: 'a', roles: [], teams: [], foreign: true });
        const header = decodeProtectedHeader(token);
        expect(header.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(header.kid).not.toBe(key.kid);
        await expect(jwtVerify(token, createLocalJWKSet(publicJwks(key)))).rejects.toThrow();
    });

    it('rejects a bad ttl', async () => {
        const key = await loadOrCreateSigningKey(dir);
        await expect(mintToken(key, { sub: 'a', roles: [], teams: [], ttlSeconds: 0 })).rejects.toThrow(RangeError);
    });
});
