/**
 * Per-user and per-team rate limits: fixed windows counted in the store, so a limit holds across every instance.
 * Every authenticated request counts once against its caller and once against each of the caller's teams.
 */
import { RateLimitedError } from './errors';
import type { RateCounters } from './ports';
import type { Principal } from './principal';

/** At most `limit` requests per `windowMs`. */
export interface RateLimit {
    limit: number;
    windowMs: number;
}

export interface RateLimits {
    /** Per user (by subject); undefined: no user limit. */
    user?: RateLimit;
    /** Per team, whichever member calls; undefined: no team limit. */
    team?: RateLimit;
}

/** Counts the request; throws RATE_LIMITED with the seconds until the tightest exceeded window ends. */
export async function enforceRateLimits(
    counters: RateCounters,
    p: Principal,
    limits: RateLimits,
    nowMs: number,
): Promise<void> {
    const checks: [string, RateLimit][] = [];
    if (limits.user) checks.push([`user:${p.id}`, limits.user]);
    if (limits.team) for (const team of p.teams) checks.push([`team:${team}`, limits.team]);
    if (checks.length === 0) return;
    const waits = await Promise.all(
        checks.map(async ([key, l]) => {
            const start = Math.floor(nowMs / l.windowMs) * l.windowMs;
            const count = await counters.increment(key, start, l.windowMs);
            return count > l.limit ? (start + l.windowMs - nowMs) / 1000 : 0;
        }),
    );
    const wait = Math.max(...waits);
    if (wait > 0) throw new RateLimitedError(Math.max(1, wait), 'Too many requests: the rate limit is reached.');
}

/** Parses `<limit>/<seconds>` (e.g. `600/60`); `0` or `off` means no limit. */
export function parseRateLimit(text: string | undefined, fallback: RateLimit | undefined): RateLimit | undefined {
    const t = text?.trim().toLowerCase();
    if (!t) return fallback;
    if (t === '0' || t === 'off') return undefined;
    const m = /^(\d{1,9})\/(\d{1,6})$/.exec(t);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
        throw new Error(`A rate limit is '<requests>/<seconds>' (e.g. 600/60), '0' or 'off'; got '${text}'.`);
    return { limit: Number(m[1]), windowMs: Number(m[2]) * 1000 };
}
