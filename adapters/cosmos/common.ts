/**
 * What every Cosmos DB store module shares: page caps, status-code tests, system-property stripping, item ids,
 * times, tokens and the retry back-off. Nothing here loads `@azure/cosmos` (types only).
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { ValidationError } from '../../domain/errors';

/**
 * Page caps: the same values as the embedded store's (adapters/embedded/sqliteStores.ts; a Cosmos contract test
 * checks they agree). Kept here so the Cosmos path never loads better-sqlite3.
 */
export const MAX_RUN_PAGE = 200;
export const MAX_AUDIT_PAGE = 1000;
export const MAX_OUTBOX_PAGE = 1000;
export const MAX_RETENTION_PAGE = 1000;

/** How many times an optimistic write (etag, or create of the next id) is tried before giving up. */
export const MAX_ATTEMPTS = 200;

/** Properties Cosmos DB adds to every item. */
const SYSTEM_PROPERTIES = ['_rid', '_self', '_etag', '_attachments', '_ts', '_lsn'] as const;

/** The item without Cosmos DB's system properties and without the adapter's own `extra` fields. */
export function strip<T>(item: object, extra: readonly string[] = []): T {
    const copy: Record<string, unknown> = { ...item };
    for (const name of SYSTEM_PROPERTIES) delete copy[name];
    for (const name of extra) delete copy[name];
    return copy as T;
}

/** The HTTP status of a failed Cosmos DB call (`ErrorResponse.code`), or undefined for anything else. */
export function statusOf(e: unknown): number | undefined {
    if (typeof e !== 'object' || e === null) return undefined;
    const { code, statusCode } = e as { code?: unknown; statusCode?: unknown };
    if (typeof code === 'number') return code;
    return typeof statusCode === 'number' ? statusCode : undefined;
}

export const isConflict = (e: unknown): boolean => statusOf(e) === 409;
export const isNotFound = (e: unknown): boolean => statusOf(e) === 404;
export const isPreconditionFailed = (e: unknown): boolean => statusOf(e) === 412;

/** Runs `work`, answering `fallback` instead of a 404 (a delete of something already gone, say). */
export async function unless404<T>(work: () => Promise<T>, fallback: T): Promise<T> {
    try {
        return await work();
    } catch (e: unknown) {
        if (isNotFound(e)) return fallback;
        throw e;
    }
}

/**
 * A Cosmos DB item id for an arbitrary string: itself when it is a valid id (at most 200 characters, none of
 * `/ \ ? #`, no whitespace, not starting with `~`), else `~` and its SHA-256. The `~` keeps the two forms apart.
 */
export function itemId(raw: string): string {
    return /^[^~/\\?#\s][^/\\?#\s]{0,199}$/.test(raw) ? raw : `~${sha256(raw)}`;
}

export function sha256(text: string): string {
    return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function clampLimit(limit: number, max: number): number {
    return Number.isFinite(limit) ? Math.min(max, Math.max(1, Math.trunc(limit))) : max;
}

export function badToken(name: string): ValidationError {
    return new ValidationError([{ path: name, message: 'is not a valid continuation token' }]);
}

/** Times are compared as text, so every stored one has one form: ISO 8601 UTC with milliseconds (as SQLite). */
export function isoOf(time: string, field: string): string {
    const ms = Date.parse(time);
    if (Number.isNaN(ms)) throw new ValidationError([{ path: field, message: 'must be an ISO 8601 date-time' }]);
    return new Date(ms).toISOString();
}

export function encodeToken(value: unknown): string {
    return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** The JSON inside a base64url token, or undefined when it is not one. */
export function decodeToken(token: string): unknown {
    if (!/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
    try {
        return JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    } catch (_e: unknown) {
        return undefined;
    }
}

/**
 * Waits a random time before attempt `attempt` + 1 of a write that lost a race, so the losers do not collide again
 * in lockstep (full jitter, capped at 50 ms: the races here are between requests, not between overloaded servers;
 * 429s are retried by the SDK itself).
 */
export async function backoff(attempt: number): Promise<void> {
    await sleep(Math.random() * Math.min(50, 2 ** Math.min(attempt, 6)));
}

/**
 * A clock in microseconds since the epoch that never repeats or runs backwards within this process: successive
 * writes of one instance get strictly increasing values even within one millisecond, which orders them in the change
 * stream and the outbox. Across instances values may tie or interleave; readers tolerate that (see runStore.ts).
 */
export class MicroClock {
    private last = 0;

    /** A value greater than every earlier one, and greater than `after`. */
    next(after = 0): number {
        const t = Math.max(Date.now() * 1000, this.last + 1, Math.trunc(after) + 1);
        this.last = t;
        return t;
    }
}

/** Runs `work` over `items`, at most `width` at a time. */
export async function eachLimited<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>) {
    let next = 0;
    const lane = async () => {
        while (next < items.length) await work(items[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}
