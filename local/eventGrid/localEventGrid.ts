/**
 * The local Event Grid topic. Its endpoint takes what `EventGridPublisherClient` sends (a CloudEvents 1.0 batch,
 * authorized by `aeg-sas-key`), stores each event durably and fans it out to the subscriptions of
 * `MESH_EVENT_SUBSCRIPTIONS` and to the app's own eventGridTrigger functions. Each delivery is retried on Event Grid's
 * schedule (scaled by `MESH_EVENTGRID_RETRY_SCALE`) until it succeeds, and dead-lettered when the subscription's
 * retry policy runs out (attempts or time to live) or the endpoint gives an answer Event Grid does not retry.
 * Pending deliveries are durable: after a restart they go on where they were.
 *
 * One difference, on purpose: Event Grid does not promise order, but this stand-in delivers each subscription's
 * events of one subject (one run) in the order it accepted them, a later one waiting while an earlier one is retried.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';

import type { FieldCipher } from '../../adapters/crypto/fieldCipher';
import { readBody } from '../http/body';
import type { HostLog } from '../invoke';
import { deliverToWebhook, handshake, type Outcome, retryDelayMs } from './delivery';
import { type AcceptedEvent, type DeadLetter, EventGridStore, type LaneHead } from './store';
import {
    DEFAULT_EVENT_TTL_MINUTES,
    DEFAULT_MAX_DELIVERY_ATTEMPTS,
    matches,
    type RetryPolicy,
    type SubscriptionFilter,
    type WebhookSubscription,
} from './subscriptions';

/** Where the host serves the topic (the path of an Event Grid topic endpoint). */
export const EVENTGRID_PATH = '/eventgrid/api/events';
/** Event Grid takes at most 1 MB per publish request. */
export const MAX_PUBLISH_BYTES = 1_048_576;
/** Accepted events are kept a day (Event Grid's longest time to live), then forgotten once delivered. */
const RETENTION_MS = 24 * 60 * 60 * 1000;

export interface LocalEventGridOptions {
    dataDir: string;
    /** Seals the events and dead letters the topic stores (`loadEventGridCipher`: its keys live in MESH_KEYS_DIR). */
    cipher: FieldCipher;
    /** The topic's access key (`loadEventGridAccessKey`, in MESH_KEYS_DIR); a new one for this process when absent. */
    key?: string;
    sqliteSync?: 'NORMAL' | 'FULL';
    subscriptions: readonly WebhookSubscription[];
    /** Factor on retry delays and times to live (1 = Event Grid's own). */
    retryScale: number;
    log: HostLog;
    /** Lanes (subscription × subject) delivered at once (default 16). */
    concurrency?: number;
    now?: () => number;
}

/** Called with the CloudEvent; a throw is a failed delivery (retried). */
export type EventHandler = (event: unknown) => Promise<void>;

interface Subscriber {
    name: string;
    filter: SubscriptionFilter;
    retryPolicy: RetryPolicy;
    /** Webhooks get the handshake before their first delivery. */
    endpoint?: string;
    deliver(body: string, previousAttempts: number, signal: AbortSignal): Promise<Outcome>;
}

export class LocalEventGrid {
    /** The topic's access key (what the app gets as EVENTGRID_KEY). */
    readonly key: string;
    private readonly store: EventGridStore;
    private readonly subscribers = new Map<string, Subscriber>();
    /** Handshakes made or under way, per subscription (one at a time, however many lanes wait for it). */
    private readonly handshakes = new Map<string, Promise<string | undefined>>();
    private readonly inFlight = new Set<string>();
    private readonly attempts = new Set<Promise<void>>();
    private readonly abort = new AbortController();
    private readonly concurrency: number;
    private readonly now: () => number;
    private started = false;
    private stopped = false;
    private pumpScheduled = false;
    private timer: { handle: NodeJS.Timeout; at: number } | undefined;

    constructor(private readonly o: LocalEventGridOptions) {
        this.concurrency = o.concurrency ?? 16;
        this.now = o.now ?? Date.now;
        this.key = o.key ?? randomBytes(32).toString('base64');
        this.store = new EventGridStore(o.dataDir, o.cipher, o.sqliteSync);
        for (const s of o.subscriptions)
            this.subscribers.set(s.name, {
                name: s.name,
                filter: s,
                retryPolicy: s.retryPolicy,
                endpoint: s.endpoint,
                deliver: (body, previous, signal) => deliverToWebhook(s.endpoint, s.name, body, previous, signal),
            });
    }

    /** The subscription names (webhooks and functions). */
    subscriptionNames(): string[] {
        return [...this.subscribers.keys()];
    }

    /** An eventGridTrigger function: every event, delivered in process (a throw is a failed delivery). */
    subscribeFunction(functionName: string, handler: EventHandler): void {
        const name = functionSubscriptionName(functionName);
        this.subscribers.set(name, {
            name,
            filter: {},
            retryPolicy: {
                maxDeliveryAttempts: DEFAULT_MAX_DELIVERY_ATTEMPTS,
                eventTimeToLiveInMinutes: DEFAULT_EVENT_TTL_MINUTES,
            },
            deliver: async (body) => {
                try {
                    await handler(JSON.parse(body) as unknown);
                    return { ok: true };
                } catch (e: unknown) {
                    const error = e instanceof Error ? e.message : String(e);
                    return { ok: false, outcome: 'GenericError', error, retryable: true };
                }
            },
        });
    }

    unsubscribeFunction(functionName: string): void {
        this.subscribers.delete(functionSubscriptionName(functionName));
    }

    /**
     * Starts delivering (once every subscriber is known). Deliveries left by a subscription that is no longer
     * configured are dropped, as Event Grid drops them when a subscription is deleted.
     */
    start(): void {
        this.started = true;
        for (const [name, n] of this.store.pendingBySubscription()) {
            if (this.subscribers.has(name)) continue;
            this.o.log('warning', `eventgrid: subscription '${name}' is gone; dropping its ${n} pending deliveries`);
            this.store.dropSubscription(name);
        }
        this.store.prune(this.now() - RETENTION_MS);
        this.pump();
    }

    /** Stops delivering; an attempt in flight is abandoned unrecorded (made again after a restart). */
    async stop(): Promise<void> {
        if (this.stopped) return;
        this.stopped = true;
        if (this.timer) clearTimeout(this.timer.handle);
        this.abort.abort();
        await Promise.allSettled([...this.attempts]);
        this.store.close();
    }

    deadLetters(): DeadLetter[] {
        return this.store.deadLetters();
    }

    /** The topic endpoint: POST a CloudEvents batch with the topic key. Answers as Event Grid does. */
    readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
        if ((req.method ?? '').toUpperCase() !== 'POST')
            return reply(res, 405, 'MethodNotAllowed', 'Events are published with POST.', { allow: 'POST' });
        if (!keyMatches(this.key, req.headers['aeg-sas-key']))
            return reply(res, 401, 'Unauthorized', 'The aeg-sas-key header is missing or is not the topic key.');
        let body: Buffer;
        try {
            body = await readBody(req, MAX_PUBLISH_BYTES);
        } catch {
            return reply(
                res,
                413,
                'RequestEntityTooLarge',
                `A publish request takes at most ${MAX_PUBLISH_BYTES} bytes.`,
            );
        }
        const parsed = parseCloudEvents(String(req.headers['content-type'] ?? ''), body);
        if (typeof parsed === 'string') return reply(res, 400, 'BadRequest', parsed);
        if (this.stopped) return reply(res, 503, 'ServiceUnavailable', 'The topic is stopping.');
        this.store.accept(parsed, (e) => this.route(e), this.now());
        res.writeHead(200, { 'content-length': '0' });
        res.end();
        this.pump();
    };

    private route(e: AcceptedEvent): string[] {
        return [...this.subscribers.values()].filter((s) => matches(s.filter, e.type, e.subject)).map((s) => s.name);
    }

    private pump(): void {
        if (!this.started || this.stopped || this.pumpScheduled) return;
        this.pumpScheduled = true;
        setImmediate(() => {
            this.pumpScheduled = false;
            try {
                this.run();
            } catch (e: unknown) {
                if (!this.stopped) this.o.log('error', `eventgrid: delivery loop failed: ${String(e)}`);
            }
        });
    }

    /** Starts the due head of every idle lane (up to the concurrency), and arms a timer for the next one due. */
    private run(): void {
        if (this.stopped) return;
        const now = this.now();
        let next = Infinity;
        for (const head of this.store.heads()) {
            const lane = `${head.subscription}\n${head.lane}`;
            if (this.inFlight.has(lane)) continue;
            if (head.nextAt > now) {
                next = Math.min(next, head.nextAt);
                continue;
            }
            // At the cap: the lane starts when an attempt in flight ends (each end pumps again).
            if (this.inFlight.size >= this.concurrency) continue;
            const subscriber = this.subscribers.get(head.subscription);
            if (!subscriber) continue;
            this.inFlight.add(lane);
            const attempt: Promise<void> = this.attempt(subscriber, head)
                .catch((e: unknown) => {
                    if (!this.stopped) this.o.log('error', `eventgrid: delivery to '${subscriber.name}': ${String(e)}`);
                })
                .finally(() => {
                    this.inFlight.delete(lane);
                    this.attempts.delete(attempt);
                    this.pump();
                });
            this.attempts.add(attempt);
        }
        this.arm(next, now);
    }

    private arm(at: number, now: number): void {
        if (this.timer?.at === at) return;
        if (this.timer) clearTimeout(this.timer.handle);
        this.timer = undefined;
        if (!Number.isFinite(at)) return;
        const handle = setTimeout(
            () => {
                this.timer = undefined;
                this.pump();
            },
            Math.min(Math.max(0, at - now), 2_147_000_000),
        );
        handle.unref();
        this.timer = { handle, at };
    }

    /** A webhook's handshake, made once per process before its first delivery (and again after a refusal). */
    private async handshake(s: Subscriber): Promise<string | undefined> {
        if (!s.endpoint) return undefined;
        let made = this.handshakes.get(s.name);
        if (!made) {
            made = handshake(s.endpoint, this.abort.signal);
            this.handshakes.set(s.name, made);
        }
        const refused = await made;
        if (refused && this.handshakes.get(s.name) === made) this.handshakes.delete(s.name);
        return refused;
    }

    private async attempt(s: Subscriber, head: LaneHead): Promise<void> {
        const event = this.store.event(head.eventSeq);
        if (!event) return this.store.delivered(head.id);
        const refused = await this.handshake(s);
        const outcome: Outcome = refused
            ? { ok: false, outcome: 'Probation', error: refused, retryable: true }
            : await s.deliver(event.body, head.attempts, this.abort.signal);
        // Stopping: leave the delivery as it was; it is made again after a restart.
        if (this.stopped) return;
        if (outcome.ok) return this.store.delivered(head.id);
        const attempts = head.attempts + 1;
        const now = this.now();
        const nextAt = now + retryDelayMs(attempts, this.o.retryScale);
        const expiresAt = event.receivedAt + s.retryPolicy.eventTimeToLiveInMinutes * 60_000 * this.o.retryScale;
        const reason = !outcome.retryable
            ? 'NonRetryableStatusCode'
            : attempts >= s.retryPolicy.maxDeliveryAttempts
              ? 'MaxDeliveryAttemptsExceeded'
              : nextAt > expiresAt
                ? 'TimeToLiveExceeded'
                : undefined;
        if (!reason) {
            this.o.log(
                'warning',
                `eventgrid: delivery of ${event.id} to '${s.name}' failed (attempt ${attempts}): ${outcome.error}; retrying in ${nextAt - now} ms`,
            );
            return this.store.retryLater(head.id, attempts, nextAt, outcome.error);
        }
        this.o.log(
            'error',
            `eventgrid: ${event.id} dead-lettered for '${s.name}' after ${attempts} attempts (${reason}): ${outcome.error}`,
        );
        this.store.deadLetter(head.id, {
            subscription: s.name,
            eventId: event.id,
            event: event.body,
            deadLetterReason: reason,
            deliveryAttempts: attempts,
            lastDeliveryOutcome: outcome.outcome,
            ...(outcome.status !== undefined ? { lastHttpStatusCode: outcome.status } : {}),
            publishTime: new Date(event.receivedAt).toISOString(),
            lastDeliveryAttemptTime: new Date(now).toISOString(),
        });
    }
}

/** The subscription name an eventGridTrigger function is delivered under (':' never occurs in a configured name). */
export function functionSubscriptionName(functionName: string): string {
    return `function:${functionName}`;
}

/**
 * The events of a publish request in CloudEvents 1.0 JSON: a batch (`application/cloudevents-batch+json`, what the
 * SDK sends) or a single event (`application/cloudevents+json`). Returns why not when they are not.
 */
export function parseCloudEvents(contentType: string, body: Buffer): AcceptedEvent[] | string {
    const type = contentType.split(';')[0]!.trim().toLowerCase();
    const batch = type === 'application/cloudevents-batch+json';
    if (!batch && type !== 'application/cloudevents+json')
        return `Content-Type must be application/cloudevents-batch+json or application/cloudevents+json, not '${type}'.`;
    let value: unknown;
    try {
        value = JSON.parse(body.toString('utf8'));
    } catch {
        return 'The body is not JSON.';
    }
    if (batch && !Array.isArray(value)) return 'A CloudEvents batch is a JSON array.';
    const items: unknown[] = batch ? (value as unknown[]) : [value];
    if (!items.length) return 'The batch is empty.';
    const events: AcceptedEvent[] = [];
    for (const [i, item] of items.entries()) {
        const why = invalidCloudEvent(item);
        if (why) return `Event ${i}: ${why}`;
        const e = item as Record<string, string>;
        events.push({
            id: e.id!,
            type: e.type!,
            ...(e.subject !== undefined ? { subject: e.subject } : {}),
            body: JSON.stringify(item),
        });
    }
    return events;
}

function invalidCloudEvent(item: unknown): string | undefined {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'is not a JSON object.';
    const e = item as Record<string, unknown>;
    if (e.specversion !== '1.0') return "specversion must be '1.0'.";
    for (const k of ['id', 'source', 'type'])
        if (typeof e[k] !== 'string' || e[k] === '') return `${k} is required (a non-empty string).`;
    for (const k of ['subject', 'time', 'datacontenttype', 'dataschema'])
        if (e[k] !== undefined && typeof e[k] !== 'string') return `${k} must be a string.`;
    return undefined;
}

function keyMatches(expected: string, given: string | string[] | undefined): boolean {
    if (typeof given !== 'string' || !given) return false;
    const a = Buffer.from(expected);
    const b = Buffer.from(given);
    return a.length === b.length && timingSafeEqual(a, b);
}

/** Event Grid's error shape. */
function reply(
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify({ error: { code, message } }));
}
