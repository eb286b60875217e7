/**
 * The local Event Grid topic's durable state, `<dataDir>/eventgrid.sqlite` (WAL): the events it accepted, one pending
 * delivery per matching subscription and event, and the dead letters. Accepting a batch is one transaction (the
 * events and their deliveries), and so is each delivery outcome, so a kill -9 at any instant loses no accepted event
 * and no pending delivery; at worst a delivery that succeeded just before the kill is made again.
 *
 * Events and dead letters are sealed at rest (`body`, `event`: local/eventGrid/storeCipher.ts); the routing attributes
 * (id, type, subject) stay readable, as they hold no one's words.
 */
import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { FieldCipher } from '../../adapters/crypto/fieldCipher';
import { openEventText, sealEventText } from './storeCipher';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_received ON events (received_at);

-- One row per (subscription, event) still to deliver. A lane (the subscription and the event's subject) is delivered
-- in order: only its lowest id is attempted.
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription TEXT NOT NULL,
    lane TEXT NOT NULL,
    event_seq INTEGER NOT NULL REFERENCES events (seq),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_lane ON deliveries (subscription, lane, id);

-- Event Grid's dead-letter fields (deadLetterReason, deliveryAttempts, lastDeliveryOutcome, lastHttpStatusCode,
-- publishTime, lastDeliveryAttemptTime) beside the event itself.
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    dead_letter_reason TEXT NOT NULL,
    delivery_attempts INTEGER NOT NULL,
    last_delivery_outcome TEXT NOT NULL,
    last_http_status_code INTEGER,
    publish_time TEXT NOT NULL,
    last_delivery_attempt_time TEXT NOT NULL
);
`;

/** An accepted event: its attributes as the routing needs them, and its JSON exactly as published. */
export interface AcceptedEvent {
    id: string;
    type: string;
    subject?: string;
    body: string;
}

/** The head of a lane: the next delivery to attempt for one subscription and subject. */
export interface LaneHead {
    id: number;
    subscription: string;
    lane: string;
    eventSeq: number;
    attempts: number;
    nextAt: number;
}

export interface DeadLetter {
    subscription: string;
    eventId: string;
    event: unknown;
    deadLetterReason: string;
    deliveryAttempts: number;
    lastDeliveryOutcome: string;
    lastHttpStatusCode?: number;
    publishTime: string;
    lastDeliveryAttemptTime: string;
}

export class EventGridStore {
    private readonly db: Database.Database;
    private readonly stmt;

    constructor(
        dataDir: string,
        private readonly cipher: FieldCipher,
        sync: 'NORMAL' | 'FULL' = 'NORMAL',
    ) {
        this.db = new Database(join(dataDir, 'eventgrid.sqlite'));
        try {
            this.db.pragma('journal_mode = WAL');
            this.db.pragma(`synchronous = ${sync}`);
            this.db.pragma('busy_timeout = 5000');
            this.db.exec(SCHEMA);
        } catch (e: unknown) {
            this.db.close();
            throw e;
        }
        const db = this.db;
        this.stmt = {
            insertEvent: db.prepare<[string, string, string | null, number, string]>(
                'INSERT INTO events (id, type, subject, received_at, body) VALUES (?, ?, ?, ?, ?)',
            ),
            insertDelivery: db.prepare<[string, string, number | bigint, number]>(
                'INSERT INTO deliveries (subscription, lane, event_seq, next_at) VALUES (?, ?, ?, ?)',
            ),
            heads: db.prepare<
                [],
                { id: number; subscription: string; lane: string; event_seq: number; attempts: number; next_at: number }
            >(
                `SELECT d.id, d.subscription, d.lane, d.event_seq, d.attempts, d.next_at FROM deliveries d
                 WHERE d.id IN (SELECT MIN(id) FROM deliveries GROUP BY subscription, lane)
                 ORDER BY d.next_at, d.id`,
            ),
            event: db.prepare<[number], { body: string; id: string; received_at: number }>(
                'SELECT body, id, received_at FROM events WHERE seq = ?',
            ),
            remove: db.prepare<[number]>('DELETE FROM deliveries WHERE id = ?'),
            retry: db.prepare<[number, number, string, number]>(
                'UPDATE deliveries SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?',
            ),
            deadLetter: db.prepare(
                `INSERT INTO dead_letters (subscription, event_id, event, dead_letter_reason, delivery_attempts,
                 last_delivery_outcome, last_http_status_code, publish_time, last_delivery_attempt_time)
                 VALUES (@subscription, @eventId, @event, @deadLetterReason, @deliveryAttempts, @lastDeliveryOutcome,
                 @lastHttpStatusCode, @publishTime, @lastDeliveryAttemptTime)`,
            ),
            subscriptions: db.prepare<[], { subscription: string; n: number }>(
                'SELECT subscription, COUNT(*) AS n FROM deliveries GROUP BY subscription',
            ),
            dropSubscription: db.prepare<[string]>('DELETE FROM deliveries WHERE subscription = ?'),
            prune: db.prepare<[number]>(
                'DELETE FROM events WHERE received_at < ? AND seq NOT IN (SELECT event_seq FROM deliveries)',
            ),
            deadLetters: db.prepare<
                [],
                {
                    subscription: string;
                    event_id: string;
                    event: string;
                    dead_letter_reason: string;
                    delivery_attempts: number;
                    last_delivery_outcome: string;
                    last_http_status_code: number | null;
                    publish_time: string;
                    last_delivery_attempt_time: string;
                }
            >('SELECT * FROM dead_letters ORDER BY id'),
        };
    }

    /** Stores a batch and a delivery per subscription that `route` names for each event, in one transaction. */
    accept(events: readonly AcceptedEvent[], route: (e: AcceptedEvent) => string[], now: number): number {
        return this.db
            .transaction(() => {
                let deliveries = 0;
                for (const e of events) {
                    const body = sealEventText(this.cipher, 'events', e.id, e.body);
                    const seq = this.stmt.insertEvent.run(e.id, e.type, e.subject ?? null, now, body).lastInsertRowid;
                    for (const subscription of route(e)) {
                        this.stmt.insertDelivery.run(subscription, e.subject ?? '', seq, now);
                        deliveries++;
                    }
                }
                return deliveries;
            })
            .immediate();
    }

    /** The next delivery of every lane, earliest due first. */
    heads(): LaneHead[] {
        return this.stmt.heads.all().map((r) => ({
            id: r.id,
            subscription: r.subscription,
            lane: r.lane,
            eventSeq: r.event_seq,
            attempts: r.attempts,
            nextAt: r.next_at,
        }));
    }

    event(seq: number): { body: string; id: string; receivedAt: number } | undefined {
        const row = this.stmt.event.get(seq);
        return (
            row && {
                body: openEventText(this.cipher, 'events', row.id, row.body),
                id: row.id,
                receivedAt: row.received_at,
            }
        );
    }

    delivered(deliveryId: number): void {
        this.stmt.remove.run(deliveryId);
    }

    retryLater(deliveryId: number, attempts: number, nextAt: number, error: string): void {
        this.stmt.retry.run(attempts, nextAt, error, deliveryId);
    }

    /** Moves a delivery to the dead letters, in one transaction. */
    deadLetter(deliveryId: number, letter: Omit<DeadLetter, 'event'> & { event: string }): void {
        this.db
            .transaction(() => {
                this.stmt.deadLetter.run({
                    ...letter,
                    event: sealEventText(this.cipher, 'dead_letters', letter.eventId, letter.event),
                    lastHttpStatusCode: letter.lastHttpStatusCode ?? null,
                });
                this.stmt.remove.run(deliveryId);
            })
            .immediate();
    }

    /** Pending deliveries per subscription name. */
    pendingBySubscription(): Map<string, number> {
        return new Map(this.stmt.subscriptions.all().map((r) => [r.subscription, r.n]));
    }

    /** Drops the pending deliveries of a subscription that no longer exists (as Event Grid does on deletion). */
    dropSubscription(name: string): void {
        this.stmt.dropSubscription.run(name);
    }

    /** Forgets delivered events received before `before` (ms). */
    prune(before: number): void {
        this.stmt.prune.run(before);
    }

    deadLetters(): DeadLetter[] {
        return this.stmt.deadLetters.all().map((r) => ({
            subscription: r.subscription,
            eventId: r.event_id,
            event: JSON.parse(openEventText(this.cipher, 'dead_letters', r.event_id, r.event)) as unknown,
            deadLetterReason: r.dead_letter_reason,
            deliveryAttempts: r.delivery_attempts,
            lastDeliveryOutcome: r.last_delivery_outcome,
            ...(r.last_http_status_code === null ? {} : { lastHttpStatusCode: r.last_http_status_code }),
            publishTime: r.publish_time,
            lastDeliveryAttemptTime: r.last_delivery_attempt_time,
        }));
    }

    close(): void {
        this.db.close();
    }
}
