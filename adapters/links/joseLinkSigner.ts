/**
 * Approval-link tokens as compact JWS (ES256, `typ` mesh-approval+jwt, the key's `kid` in the header), with jose.
 * The key set is `{ current, previous? }` (private JWKs): links are signed with `current`; both verify, so after a
 * rotation (previous <- current, current <- new) links already sent stay valid until they expire.
 *
 * The key set comes from a secret (`mesh-link-keys`: Key Vault on Azure, the environment or local.settings.json
 * locally); on the embedded host without one, from `<MESH_KEYS_DIR>/link-keys.json`, created on first use.
 */
import { join } from 'node:path';

import {
    calculateJwkThumbprint,
    type CryptoKey,
    decodeProtectedHeader,
    errors,
    exportJWK,
    generateKeyPair,
    importJWK,
    type JWK,
    type JWTPayload,
    jwtVerify,
    type KeyObject,
    SignJWT,
} from 'jose';

import { LinkExpiredError, LinkInvalidError } from '../../domain/errors';
import { LINK_TYP, type LinkClaims, linkExpired, parseLinkClaims } from '../../domain/links';
import type { LinkSigner, SecretStore } from '../../domain/ports';
import type { LinkConfig } from '../config';
import { loadOrCreateKeyFile } from '../secrets/keyFile';

export const LINK_ALG = 'ES256';
export const LINK_KEY_FILE = 'link-keys.json';

/** A link key set as stored (secret or key file): private EC P-256 JWKs, each with its `kid`. */
export interface LinkKeySet {
    current: JWK;
    previous?: JWK;
}

/** Our tokens are well under 1 KiB; anything far larger is not worth parsing. */
const MAX_TOKEN_CHARS = 4096;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** How long a loaded key set is used before it is read again (a rotation reaches every instance within this). */
const DEFAULT_CACHE_MS = 5 * 60_000;
/** A token naming a kid we do not hold makes us read the key set again, at most this often. */
const UNKNOWN_KID_REFRESH_MS = 30_000;

type Key = CryptoKey | KeyObject;

/** An EC JWK imports as a key, never as raw bytes (those are for `oct` keys). */
async function importEcJwk(jwk: JWK): Promise<Key> {
    const key = await importJWK(jwk, LINK_ALG);
    if (key instanceof Uint8Array) throw new Error('approval-link keys must be EC keys');
    return key;
}

interface LoadedKeys {
    kid: string;
    signing: Key;
    verifying: ReadonlyMap<string, Key>;
    at: number;
}

export class JoseLinkSigner implements LinkSigner {
    private loaded: Promise<LoadedKeys> | undefined;
    private loadedAt = 0;

    /** `source` is read on first use and again after `cacheMs`; `now` is the clock `exp` is judged by. */
    constructor(
        private readonly source: () => Promise<LinkKeySet>,
        private readonly opts: { now?: () => Date; cacheMs?: number } = {},
    ) {}

    async sign(claims: LinkClaims): Promise<string> {
        const valid = parseLinkClaims(claims);
        const keys = await this.keys();
        return new SignJWT({ ...valid })
            .setProtectedHeader({ alg: LINK_ALG, typ: LINK_TYP, kid: keys.kid })
            .sign(keys.signing);
    }

    async verify(token: string): Promise<LinkClaims> {
        if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS || !COMPACT_JWS.test(token))
            throw new LinkInvalidError();
        const kid = kidOf(token);
        let keys = await this.keys();
        if (!keys.verifying.has(kid) && Date.now() - keys.at > UNKNOWN_KID_REFRESH_MS) keys = await this.keys(true);
        const key = keys.verifying.get(kid);
        if (!key) throw new LinkInvalidError();
        const now = this.opts.now?.() ?? new Date();
        let payload: JWTPayload;
        try {
            ({ payload } = await jwtVerify(token, key, {
                algorithms: [LINK_ALG],
                typ: LINK_TYP,
                currentDate: now,
                requiredClaims: ['jti', 'sub', 'iat', 'exp'],
            }));
        } catch (e: unknown) {
            // jose checks the signature before the claims: only a genuine link is ever reported as expired.
            if (e instanceof errors.JWTExpired) throw new LinkExpiredError();
            throw new LinkInvalidError();
        }
        const claims = parseLinkClaims(payload);
        if (linkExpired(claims, now)) throw new LinkExpiredError();
        return claims;
    }

    /** The imported key set, read again once it is `cacheMs` old (or when `refresh`). A failed read is not kept. */
    private keys(refresh = false): Promise<LoadedKeys> {
        const maxAge = this.opts.cacheMs ?? DEFAULT_CACHE_MS;
        if (!this.loaded || refresh || Date.now() - this.loadedAt > maxAge) {
            this.loadedAt = Date.now();
            const loading = this.source().then(importKeySet);
            loading.catch(() => {
                if (this.loaded === loading) this.loaded = undefined;
            });
            this.loaded = loading;
        }
        return this.loaded;
    }
}

/** The `kid` of a compact JWS's protected header; LINK_INVALID when it has none. */
function kidOf(token: string): string {
    let kid: unknown;
    try {
        kid = decodeProtectedHeader(token).kid;
    } catch {
        throw new LinkInvalidError();
    }
    if (typeof kid !== 'string' || kid === '') throw new LinkInvalidError();
    return kid;
}

async function importKeySet(set: LinkKeySet): Promise<LoadedKeys> {
    const verifying = new Map<string, Key>();
    for (const jwk of [set.current, set.previous]) {
        if (!jwk) continue;
        const { d: _d, ...publicJwk } = jwk;
        verifying.set(jwk.kid!, await importEcJwk(publicJwk));
    }
    return { kid: set.current.kid!, signing: await importEcJwk(set.current), verifying, at: Date.now() };
}

/** A new ES256 signing key as a private JWK; its `kid` is the RFC 7638 thumbprint of the public key. */
export async function generateLinkKey(): Promise<JWK> {
    const { privateKey } = await generateKeyPair(LINK_ALG, { extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'sha256');
    return { ...jwk, kid, alg: LINK_ALG, use: 'sig' };
}

/** Rotation: a new current key; the old current key becomes previous (and the old previous is dropped). */
export async function rotateLinkKeySet(set: LinkKeySet): Promise<LinkKeySet> {
    return { current: await generateLinkKey(), previous: set.current };
}

/** Parses and checks a stored key set; the error names `source` and never quotes key material. */
export function parseLinkKeySet(text: string, source: string): LinkKeySet {
    let parsed: unknown;
    try {
        parsed = JSON.parse(text);
    } catch {
        parsed = undefined;
    }
    const set = parsed as Partial<LinkKeySet> | undefined;
    const ok =
        typeof set === 'object' &&
        set !== null &&
        isPrivateKey(set.current) &&
        (set.previous === undefined || (isPrivateKey(set.previous) && set.previous.kid !== set.current.kid));
    if (!ok)
        throw new Error(
            `${source} is not an approval-link key set: {"current": <EC P-256 private JWK with kid>, "previous"?: <same>}`,
        );
    return { current: set.current!, ...(set.previous ? { previous: set.previous } : {}) };
}

function isPrivateKey(jwk: unknown): jwk is JWK {
    const k = jwk as JWK | undefined;
    return (
        typeof k === 'object' &&
        k !== null &&
        k.kty === 'EC' &&
        k.crv === 'P-256' &&
        [k.x, k.y, k.d, k.kid].every((v) => typeof v === 'string' && v !== '')
    );
}

/**
 * Loads `<keysDir>/link-keys.json`, creating it (mode 0600) if absent. Creation is race-safe across processes: the
 * set is written whole to a private temp file and hard-linked to the final name, which fails if another process
 * won; the loser reads the winner's set. A present but broken file is an error, never replaced.
 */
export function loadOrCreateLinkKeyFile(keysDir: string): Promise<LinkKeySet> {
    return loadOrCreateKeyFile(
        join(keysDir, LINK_KEY_FILE),
        async () => `${JSON.stringify({ current: await generateLinkKey() } satisfies LinkKeySet, null, 2)}\n`,
        parseLinkKeySet,
    );
}

/**
 * Where the key set comes from: the secret `cfg.keysSecret` when it is set, else (local operation) the key file in
 * `cfg.keysDir`. Without either, the first link fails loudly (a configuration error, not a bad link).
 */
export function linkKeySource(
    secrets: SecretStore,
    cfg: Pick<LinkConfig, 'keysSecret' | 'keysDir'>,
): () => Promise<LinkKeySet> {
    return async () => {
        const secret = await secrets.get(cfg.keysSecret);
        if (secret !== undefined) return parseLinkKeySet(secret, `secret '${cfg.keysSecret}'`);
        if (cfg.keysDir !== undefined) return loadOrCreateLinkKeyFile(cfg.keysDir);
        throw new Error(`No approval-link signing keys: set the secret '${cfg.keysSecret}'.`);
    };
}
