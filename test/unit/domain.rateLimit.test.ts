import { RateLimitedError } from '../../domain/errors';
import type { RateCounters } from '../../domain/ports';
import type { Principal } from '../../domain/principal';
import { enforceRateLimits, parseRateLimit } from '../../domain/rateLimit';

class MemoryCounters implements RateCounters {
    readonly counts = new Map<string, number>();
    increment(key: string, windowStart: number): Promise<number> {
        const k = `${key}|${windowStart}`;
        const n = (this.counts.get(k) ?? 0) + 1;
        this.counts.set(k, n);
        return Promise.resolve(n);
    }
}

const alice: Principal = { id: 'alice', roles: ['Mesh.Developer'], teams: ['alpha'] };
const bob: Principal = { id: 'bob', roles: ['Mesh.Developer'], teams: ['alpha'] };
const limits = { user: { limit: 3, windowMs: 60_000 }, team: { limit: 5, windowMs: 60_000 } };

describe('enforceRateLimits', () => {
    it('lets a user make `limit` requests per window, then answers RATE_LIMITED with the seconds left', async () => {
        const c = new MemoryCounters();
        for (let i = 0; i < 3; i++) await enforceRateLimits(c, alice, limits, 60_000 + i);
        const e = await enforceRateLimits(c, alice, limits, 60_000 + 45_000).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(RateLimitedError);
        expect((e as RateLimitedError).retryAfterSeconds).toBe(15);
        // The next window starts afresh.
        await expect(enforceRateLimits(c, alice, limits, 120_000)).resolves.toBeUndefined();
    });

    it('counts every member of a team against the team limit', async () => {
        const c = new MemoryCounters();
        for (let i = 0; i < 3; i++) await enforceRateLimits(c, alice, limits, 1000);
        await enforceRateLimits(c, bob, limits, 1000);
        await enforceRateLimits(c, bob, limits, 1000);
        await expect(enforceRateLimits(c, bob, limits, 1000)).rejects.toBeInstanceOf(RateLimitedError);
    });

    it('limits nothing when no limit is configured', async () => {
        const c = new MemoryCounters();
        for (let i = 0; i < 50; i++) await enforceRateLimits(c, alice, {}, 1000);
        expect(c.counts.size).toBe(0);
    });
});

describe('parseRateLimit', () => {
    it('reads requests/seconds, off and 0, and falls back when unset', () => {
        expect(parseRateLimit('600/60', undefined)).toEqual({ limit: 600, windowMs: 60_000 });
        expect(parseRateLimit('off', { limit: 1, windowMs: 1 })).toBeUndefined();
        expect(parseRateLimit('0', { limit: 1, windowMs: 1 })).toBeUndefined();
        expect(parseRateLimit(undefined, { limit: 1, windowMs: 1 })).toEqual({ limit: 1, windowMs: 1 });
    });

    it.each(['10', '10/0', '0/10', 'ten/60', '-1/60'])('refuses %s', (text) => {
        expect(() => parseRateLimit(text, undefined)).toThrow(/rate limit/);
    });
});
