import type { HttpRequest } from '@azure/functions';
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify, type JWTVerifyGetKey } from 'jose';

import { UnauthenticatedError, UnavailableError } from '../../domain/errors';
import { type Principal, rolesFrom } from '../../domain/principal';
import type { AuthConfig } from '../config';

/** Entra ID signs with RS256; ES256 is allowed for other OIDC issuers. Never `none` or HMAC. */
const ALGORITHMS = ['RS256', 'ES256'];
/** Seconds of clock skew tolerated on `exp` and `nbf`. */
const CLOCK_TOLERANCE_S = 60;
/** Real Entra tokens are a few KiB; anything far larger is not worth parsing. */
const MAX_TOKEN_CHARS = 16 * 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Marks a failure of the key source (JWKS unreachable or broken), as opposed to a bad token. */
class KeySourceError extends Error {}

/**
 * Validates `Authorization: Bearer <jwt>` against the configured issuer, audience and JWKS and turns the claims
 * into a `Principal`. Error messages are short and fixed: the token is never echoed.
 */
export class JwtAuthenticator {
    private readonly keys: JWTVerifyGetKey;
    /** Verified tokens → principal, until shortly before they expire: a busy client presents the same token often. */
    private readonly verified = new Map<string, { principal: Principal; until: number }>();

    /** `jwks` overrides the remote key set (the local host and tests pass `createLocalJWKSet`). */
    constructor(
        private readonly cfg: AuthConfig,
        jwks?: JWTVerifyGetKey,
    ) {
        const source = jwks ?? createRemoteJWKSet(new URL(cfg.jwksUri));
        // Wrap the key source so a fetch failure (503, retry) is told apart from a token naming an unknown key (401).
        this.keys = async (header, token) => {
            try {
                return await source(header, token);
            } catch (e: unknown) {
                if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) throw e;
                throw new KeySourceError('JWKS unavailable', { cause: e });
            }
        };
    }

    /** The caller of `req`; throws `UnauthenticatedError` (401) or, if the keys cannot be fetched, `UnavailableError`. */
    async principal(req: HttpRequest): Promise<Principal> {
        const token = bearerToken(req.headers.get('authorization'));
        const cached = this.verified.get(token);
        if (cached && cached.until > Date.now()) return cached.principal;
        let payload: JWTPayload;
        try {
            ({ payload } = await jwtVerify(token, this.keys, {
                issuer: this.cfg.issuer,
                audience: this.cfg.audience,
                algorithms: ALGORITHMS,
                clockTolerance: CLOCK_TOLERANCE_S,
                requiredClaims: ['exp'],
            }));
        } catch (e: unknown) {
            throw toAuthError(e);
        }
        const principal = principalFrom(payload, this.cfg.teamsClaim);
        this.remember(token, principal, payload.exp);
        return principal;
    }

    private remember(token: string, principal: Principal, exp: number | undefined): void {
        if (exp === undefined) return;
        // Never past expiry, and re-verified at least every 5 minutes (key rotation, revoked signing keys).
        const until = Math.min(exp * 1000 - 1000, Date.now() + 300_000);
        if (this.verified.size >= CACHE_ENTRIES) this.verified.delete(this.verified.keys().next().value!);
        this.verified.set(token, { principal, until });
    }
}

const CACHE_ENTRIES = 10_000;

function bearerToken(header: string | null): string {
    if (!header) throw new UnauthenticatedError('Missing bearer token.');
    const m = /^Bearer +(\S+)\s*$/i.exec(header);
    const token = m?.[1];
    if (!token || token.length > MAX_TOKEN_CHARS || !COMPACT_JWS.test(token)) {
        throw new UnauthenticatedError('Malformed bearer token.');
    }
    return token;
}

function toAuthError(e: unknown): Error {
    if (e instanceof KeySourceError) return new UnavailableError('Identity provider keys are unavailable.');
    if (e instanceof errors.JWTExpired) return new UnauthenticatedError('Token has expired.');
    if (e instanceof errors.JWTClaimValidationFailed && e.claim === 'nbf') {
        return new UnauthenticatedError('Token is not yet valid.');
    }
    // Wrong issuer, audience, signature, algorithm or an unknown key: one answer, so callers cannot probe which.
    return new UnauthenticatedError('Invalid token.');
}

/** Builds the principal from verified claims (exported for tests and for other token sources). */
export function principalFrom(payload: JWTPayload, teamsClaim: string): Principal {
    const id = nonEmptyString(payload['oid']) ?? nonEmptyString(payload.sub);
    if (!id) throw new UnauthenticatedError('Token has no subject.');
    const name = nonEmptyString(payload['name']) ?? nonEmptyString(payload['preferred_username']);
    const teams = new Set([...stringsOf(payload[teamsClaim]), ...stringsOf(payload['team'])]);
    return {
        id,
        ...(name !== undefined && { name }),
        roles: rolesFrom(payload['roles']),
        teams: [...teams],
    };
}

function nonEmptyString(v: unknown): string | undefined {
    return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** A claim that may be one string or a list of them; anything else counts as nothing. */
function stringsOf(v: unknown): string[] {
    const list: unknown[] = Array.isArray(v) ? v : [v];
    return list.filter((s): s is string => typeof s === 'string' && s.length > 0);
}
