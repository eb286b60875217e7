/**
 * The local stand-in for Entra ID: one RS256 signing key kept on disk, its public JWKS (which the host serves)
 * and a token minter (used by `npm run token` and tests). Production never loads this module.
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';

import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

import { loadOrCreateKeyFile } from '../adapters/secrets/keyFile';

export const LOCAL_ISSUER = 'https://mesh.local/idp';
export const LOCAL_AUDIENCE = 'api://mesh-orchestrator';

const KEY_FILE = 'signing-key.json';
const ALG = 'RS256';

/** The local identity provider's key pair as JWKs; `kid` is the RFC 7638 thumbprint of the public key. */
export interface SigningKey {
    readonly kid: string;
    readonly privateJwk: JWK;
    readonly publicJwk: JWK;
}

/** What a minted token says about its holder, and how it is made. */
export interface MintOptions {
    sub: string;
    roles: readonly string[];
    teams: readonly string[];
    /** Lifetime in seconds (default 3600). */
    ttlSeconds?: number;
    /** Issue the token already expired: `exp` one hour in the past, well beyond any clock tolerance. */
    expired?: boolean;
    /** Sign with a throw-away key that is not in the JWKS, so validation must fail. */
    foreign?: boolean;
    name?: string;
}

/**
 * Where the signing key lives: `MESH_KEYS_DIR`, else `<cwd>/.mesh-data/keys`. Deliberately not under
 * `MESH_DATA_DIR`: the identity provider is not app state, so `npm run token` agrees with any host's data dir.
 */
export function keysDirFrom(env: Readonly<Record<string, string | undefined>>, cwd = process.cwd()): string {
    const dir = env.MESH_KEYS_DIR?.trim();
    return dir ? resolve(cwd, dir) : join(cwd, '.mesh-data', 'keys');
}

/**
 * Loads `<keysDir>/signing-key.json`, creating it (mode 0600) if absent. Creation is race-safe across processes:
 * the key is written whole to a private temp file and then hard-linked to the final name, which fails if another
 * process won; the loser reads the winner's key. So a host and the token CLI started together agree.
 */
export function loadOrCreateSigningKey(keysDir: string): Promise<SigningKey> {
    return loadOrCreateKeyFile(
        join(keysDir, KEY_FILE),
        async () => `${JSON.stringify((await newSigningKey()).privateJwk, null, 2)}\n`,
        parseSigningKey,
    );
}

/** The JWKS to publish for `key`: its public half only. */
export function publicJwks(key: SigningKey): { keys: JWK[] } {
    return { keys: [{ ...key.publicJwk }] };
}

/** Mints a bearer token the local host accepts (unless `expired` or `foreign`). */
export async function mintToken(key: SigningKey, opts: MintOptions): Promise<string> {
    const ttl = opts.ttlSeconds ?? 3600;
    if (!Number.isInteger(ttl) || ttl <= 0) throw new RangeError('ttlSeconds must be a positive integer');
    const signer = opts.foreign ? await newSigningKey() : key;
    const now = Math.floor(Date.now() / 1000);
    const exp = opts.expired ? now - 3600 : now + ttl;
    const teams = [...opts.teams];
    return new SignJWT({
        oid: opts.sub,
        name: opts.name ?? opts.sub,
        roles: [...opts.roles],
        groups: teams,
        team: teams,
    })
        .setProtectedHeader({ alg: ALG, typ: 'JWT', kid: signer.kid })
        .setIssuer(LOCAL_ISSUER)
        .setAudience(LOCAL_AUDIENCE)
        .setSubject(opts.sub)
        .setIssuedAt(exp - ttl)
        .setExpirationTime(exp)
        .setJti(randomBytes(16).toString('hex'))
        .sign(await importJWK(signer.privateJwk, ALG));
}

async function newSigningKey(): Promise<SigningKey> {
    const { privateKey } = await generateKeyPair(ALG, { modulusLength: 2048, extractable: true });
    const jwk = await exportJWK(privateKey);
    return signingKey(jwk, await calculateJwkThumbprint({ kty: jwk.kty, n: jwk.n, e: jwk.e }, 'sha256'));
}

function signingKey(jwk: JWK, kid: string): SigningKey {
    const meta = { kid, alg: ALG, use: 'sig' };
    return Object.freeze({
        kid,
        privateJwk: { ...jwk, ...meta },
        publicJwk: { kty: jwk.kty, n: jwk.n, e: jwk.e, ...meta },
    });
}

/** The signing key a key file holds. A broken file is an error, never replaced. */
function parseSigningKey(text: string, file: string): SigningKey {
    let jwk: JWK | undefined;
    try {
        jwk = JSON.parse(text) as JWK;
    } catch {
        jwk = undefined;
    }
    if (jwk?.kty !== 'RSA' || !jwk.n || !jwk.e || !jwk.d || !jwk.kid) {
        throw new Error(`${file} is not an RSA private JWK with a kid; delete it to create a new key`);
    }
    return signingKey(jwk, jwk.kid);
}
