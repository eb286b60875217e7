/**
 * The local Event Grid topic's subscriptions: `MESH_EVENT_SUBSCRIPTIONS` (a JSON array, or the path of a JSON file
 * holding one) of webhook subscriptions with Event Grid's meaning, and its retry settings.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Event Grid's defaults: 30 delivery attempts, events live 24 hours. */
export const DEFAULT_MAX_DELIVERY_ATTEMPTS = 30;
export const DEFAULT_EVENT_TTL_MINUTES = 1440;

export interface RetryPolicy {
    /** 1–30 (Event Grid's range), default 30. */
    maxDeliveryAttempts: number;
    /** 1–1440 (Event Grid's range), default 1440. */
    eventTimeToLiveInMinutes: number;
}

export interface WebhookSubscription {
    /** Event Grid's rule: 3–64 letters, digits and hyphens. */
    name: string;
    /** The webhook: an http(s) URL. */
    endpoint: string;
    /** Only these event types (case-insensitive); absent means all. */
    includedEventTypes?: string[];
    /** Only subjects with this prefix / suffix (case-insensitive, as Event Grid's default). */
    subjectBeginsWith?: string;
    subjectEndsWith?: string;
    retryPolicy: RetryPolicy;
}

/** The part of a subscription that decides which events it gets. */
export type SubscriptionFilter = Pick<
    WebhookSubscription,
    'includedEventTypes' | 'subjectBeginsWith' | 'subjectEndsWith'
>;

/** Event Grid's filter semantics, for one event's `type` and `subject`. */
export function matches(filter: SubscriptionFilter, type: string, subject: string | undefined): boolean {
    if (filter.includedEventTypes && !filter.includedEventTypes.some((t) => t.toLowerCase() === type.toLowerCase()))
        return false;
    const s = (subject ?? '').toLowerCase();
    if (filter.subjectBeginsWith && !s.startsWith(filter.subjectBeginsWith.toLowerCase())) return false;
    if (filter.subjectEndsWith && !s.endsWith(filter.subjectEndsWith.toLowerCase())) return false;
    return true;
}

/**
 * Reads `MESH_EVENT_SUBSCRIPTIONS`: unset or empty means none; a value starting with `[` (or `{`) is the JSON itself,
 * anything else the path of a JSON file (relative to `root`) that holds the array. Throws naming what is wrong.
 */
export function subscriptionsFromEnv(env: NodeJS.ProcessEnv, root: string): WebhookSubscription[] {
    const raw = env.MESH_EVENT_SUBSCRIPTIONS?.trim();
    if (!raw) return [];
    let text = raw;
    let where = 'MESH_EVENT_SUBSCRIPTIONS';
    if (!raw.startsWith('[') && !raw.startsWith('{')) {
        const file = resolve(root, raw);
        where = `MESH_EVENT_SUBSCRIPTIONS file ${file}`;
        try {
            text = readFileSync(file, 'utf8');
        } catch (e: unknown) {
            throw new Error(`${where} cannot be read: ${e instanceof Error ? e.message : String(e)}`);
        }
    }
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch (e: unknown) {
        throw new Error(`${where} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    return parseSubscriptions(value, where);
}

export function parseSubscriptions(value: unknown, where = 'MESH_EVENT_SUBSCRIPTIONS'): WebhookSubscription[] {
    if (!Array.isArray(value)) throw new Error(`${where} must be a JSON array of subscriptions.`);
    const seen = new Set<string>();
    return value.map((item, i) => {
        const s = parseOne(item, `${where}[${i}]`);
        const key = s.name.toLowerCase();
        if (seen.has(key)) throw new Error(`${where}: the subscription name '${s.name}' is used twice.`);
        seen.add(key);
        return s;
    });
}

function parseOne(item: unknown, at: string): WebhookSubscription {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new Error(`${at} must be an object.`);
    const o = item as Record<string, unknown>;
    const name = o.name;
    if (typeof name !== 'string' || !/^[A-Za-z0-9-]{3,64}$/.test(name))
        throw new Error(`${at}.name must be 3–64 letters, digits or hyphens.`);
    const endpoint = o.endpoint;
    if (typeof endpoint !== 'string' || !isHttpUrl(endpoint)) throw new Error(`${at}.endpoint must be an http(s) URL.`);
    const s: WebhookSubscription = { name, endpoint, retryPolicy: retryPolicyOf(o.retryPolicy, `${at}.retryPolicy`) };
    if (o.includedEventTypes !== undefined && o.includedEventTypes !== null) {
        const types = o.includedEventTypes;
        if (!Array.isArray(types) || !types.length || !types.every((t) => typeof t === 'string' && t.length > 0))
            throw new Error(
                `${at}.includedEventTypes must be a non-empty array of event types (leave it out for all).`,
            );
        s.includedEventTypes = types as string[];
    }
    for (const key of ['subjectBeginsWith', 'subjectEndsWith'] as const) {
        const v = o[key];
        if (v === undefined || v === null || v === '') continue;
        if (typeof v !== 'string') throw new Error(`${at}.${key} must be a string.`);
        s[key] = v;
    }
    return s;
}

function retryPolicyOf(value: unknown, at: string): RetryPolicy {
    if (value === undefined || value === null)
        return {
            maxDeliveryAttempts: DEFAULT_MAX_DELIVERY_ATTEMPTS,
            eventTimeToLiveInMinutes: DEFAULT_EVENT_TTL_MINUTES,
        };
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${at} must be an object.`);
    const o = value as Record<string, unknown>;
    return {
        maxDeliveryAttempts: intIn(
            o.maxDeliveryAttempts,
            1,
            30,
            DEFAULT_MAX_DELIVERY_ATTEMPTS,
            `${at}.maxDeliveryAttempts`,
        ),
        eventTimeToLiveInMinutes: intIn(
            o.eventTimeToLiveInMinutes,
            1,
            1440,
            DEFAULT_EVENT_TTL_MINUTES,
            `${at}.eventTimeToLiveInMinutes`,
        ),
    };
}

function intIn(v: unknown, min: number, max: number, fallback: number, at: string): number {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        throw new Error(`${at} must be an integer from ${min} to ${max}.`);
    return v;
}

function isHttpUrl(s: string): boolean {
    try {
        const u = new URL(s);
        return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
        return false;
    }
}

/** `MESH_EVENTGRID_RETRY_SCALE`: a factor on every retry delay and time-to-live (tests shrink it, e.g. 0.001). */
export function retryScaleFromEnv(env: NodeJS.ProcessEnv): number {
    const raw = env.MESH_EVENTGRID_RETRY_SCALE?.trim();
    if (!raw) return 1;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0)
        throw new Error(`MESH_EVENTGRID_RETRY_SCALE must be a positive number, got '${raw}'.`);
    return n;
}
