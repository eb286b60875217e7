/**
 * The embedded queue: what stands in for Service Bus queues on one machine. Every named queue lives in one table of
 * `<dataDir>/queues.sqlite` (better-sqlite3, WAL), with Service Bus peek-lock semantics:
 * - `receive` leases the oldest visible message of a queue (enqueue order) until now + lockMs and counts the delivery;
 * - `complete` removes it, `abandon` unlocks it at its original place in the queue, `deadLetter` sets it aside;
 * - a lease that is never settled (its process died) expires, and the message is visible again: nothing is lost;
 * - a message delivered `maxDeliveryCount` times and abandoned once more (or whose lock expires again) is
 *   dead-lettered, as Service Bus does.
 * Each settlement names the lease's lock token, so a stale lease (expired, the message since leased again) settles
 * nothing. Writes go through the stores' group commit: all those of one event-loop turn commit in one transaction.
 *
 * Sends from this process are announced in process (`onSent`), so a consumer in the same process (the embedded host's
 * Service Bus trigger) delivers at once instead of at its next poll.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

import Database from 'better-sqlite3';

import type { AdmissionMessage, AdmissionQueue } from '../../domain/ports';
import { GroupCommit, promised } from './sqliteStores';

/** A message under a peek-lock: what `receive` hands out and the settlements take back. */
export interface Leased {
    readonly queue: string;
    /** The enqueue order (Service Bus `sequenceNumber`). */
    readonly sequenceNumber: number;
    readonly messageId: string;
    readonly body: unknown;
    /** 1 on the first delivery, one more on each after. */
    readonly deliveryCount: number;
    readonly enqueuedTimeUtc: string;
    readonly lockToken: string;
    readonly lockedUntilUtc: string;
}

export interface DeadLetteredMessage {
    readonly queue: string;
    readonly sequenceNumber: number;
    readonly messageId: string;
    readonly body: unknown;
    readonly deliveryCount: number;
    readonly enqueuedTimeUtc: string;
    readonly deadLetteredAtUtc: string;
    readonly reason: string;
}

/** What became of an abandoned lease. */
export type AbandonOutcome = 'abandoned' | 'deadLettered' | 'lockLost';

export interface SqliteQueue {
    /** The database file. */
    readonly path: string;
    /** Durably appends a message (resolves once committed). `messageId` defaults to a new UUID. */
    send(queue: string, body: unknown, opts?: { messageId?: string }): Promise<void>;
    /** Leases the oldest visible message of `queue` until now + `lockMs`, or resolves undefined when there is none. */
    receive(queue: string, lockMs: number): Promise<Leased | undefined>;
    /** Extends a lease to now + `lockMs`; false when the lease was lost. */
    renew(leased: Leased, lockMs: number): Promise<boolean>;
    /** Removes the message; false when the lease was lost (the message is, or will be, delivered again). */
    complete(leased: Leased): Promise<boolean>;
    /**
     * Unlocks the message at its original place in the queue, visible again after `delayMs`. A message already
     * delivered `maxDeliveryCount` times is dead-lettered instead.
     */
    abandon(leased: Leased, delayMs?: number): Promise<AbandonOutcome>;
    /** Moves the message to the queue's dead letters; false when the lease was lost. */
    deadLetter(leased: Leased, reason: string): Promise<boolean>;
    /** Active messages of the queue: waiting, delayed or leased (not dead-lettered). */
    count(queue: string): Promise<number>;
    /** The queue's dead letters, oldest first. */
    deadLetters(queue: string): Promise<DeadLetteredMessage[]>;
    /** Calls `listener` after each send to `queue` of this file committed in this process; returns an unsubscribe. */
    onSent(queue: string, listener: () => void): () => void;
    /** Closes the database; the queue must not be used afterwards. */
    close(): void;
}

export interface SqliteQueueOptions {
    /** Deliveries before a message is dead-lettered (Service Bus `MaxDeliveryCount`); default 2000. */
    maxDeliveryCount?: number;
    /** NORMAL (default) survives any process crash; FULL also a power loss. */
    sync?: 'NORMAL' | 'FULL';
    /** Told of each message dead-lettered for too many deliveries (after commit). */
    onDeadLetter?: (message: DeadLetteredMessage) => void;
}

export const DEFAULT_MAX_DELIVERY_COUNT = 2000;
export const MAX_DELIVERY_REASON = 'MaxDeliveryCountExceeded';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    -- ms since the epoch: leased (or delayed) until then; visible from then on.
    visible_at INTEGER NOT NULL,
    lock_token TEXT,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    dead_lettered_at INTEGER,
    dead_letter_reason TEXT
);
CREATE INDEX IF NOT EXISTS messages_active ON messages (queue, seq) WHERE dead_lettered_at IS NULL;
CREATE INDEX IF NOT EXISTS messages_dead ON messages (queue, seq) WHERE dead_lettered_at IS NOT NULL;
`;

interface MessageRow {
    seq: number;
    queue: string;
    message_id: string;
    body: string;
    enqueued_at: number;
    delivery_count: number;
    dead_lettered_at: number | null;
    dead_letter_reason: string | null;
}

/** Sends committed in this process, by database file and queue: how a consumer here learns of them at once. */
const sent = new EventEmitter();
sent.setMaxListeners(0);
const sentKey = (path: string, queue: string) => `${path}\n${queue}`;

/** Opens (creating if needed) `<dataDir>/queues.sqlite`. */
export function openSqliteQueue(dataDir: string, options: SqliteQueueOptions = {}): SqliteQueue {
    mkdirSync(dataDir, { recursive: true });
    const path = resolve(join(dataDir, 'queues.sqlite'));
    const db = new Database(path);
    try {
        db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${options.sync ?? 'NORMAL'}`);
        db.pragma('busy_timeout = 5000');
        db.transaction(() => db.exec(SCHEMA)).immediate();
    } catch (e: unknown) {
        db.close();
        throw e;
    }
    return new EmbeddedQueue(db, path, options);
}

class EmbeddedQueue implements SqliteQueue {
    private readonly commits: GroupCommit;
    private readonly maxDeliveryCount: number;
    private readonly stmt;

    constructor(
        private readonly db: Database.Database,
        readonly path: string,
        private readonly options: SqliteQueueOptions,
    ) {
        this.commits = new GroupCommit(db);
        this.maxDeliveryCount = options.maxDeliveryCount ?? DEFAULT_MAX_DELIVERY_COUNT;
        if (!Number.isInteger(this.maxDeliveryCount) || this.maxDeliveryCount < 1)
            throw new Error(`maxDeliveryCount must be a positive integer, got ${this.maxDeliveryCount}`);
        this.stmt = {
            insert: db.prepare<[string, string, string, number]>(
                'INSERT INTO messages (queue, message_id, body, enqueued_at, visible_at) VALUES (?, ?, ?, ?, 0)',
            ),
            head: db.prepare<[string, number], MessageRow>(
                `SELECT * FROM messages WHERE queue = ? AND dead_lettered_at IS NULL AND visible_at <= ?
                 ORDER BY seq LIMIT 1`,
            ),
            lease: db.prepare<[number, string, number]>(
                `UPDATE messages SET visible_at = ?, lock_token = ?, delivery_count = delivery_count + 1
                 WHERE seq = ?`,
            ),
            byLease: db.prepare<[number, string], MessageRow>(
                'SELECT * FROM messages WHERE seq = ? AND lock_token = ? AND dead_lettered_at IS NULL',
            ),
            renew: db.prepare<[number, number, string]>(
                'UPDATE messages SET visible_at = ? WHERE seq = ? AND lock_token = ? AND dead_lettered_at IS NULL',
            ),
            remove: db.prepare<[number, string]>('DELETE FROM messages WHERE seq = ? AND lock_token = ?'),
            unlock: db.prepare<[number, number]>('UPDATE messages SET visible_at = ?, lock_token = NULL WHERE seq = ?'),
            kill: db.prepare<[number, string, number]>(
                `UPDATE messages SET dead_lettered_at = ?, dead_letter_reason = ?, lock_token = NULL
                 WHERE seq = ?`,
            ),
            count: db.prepare<[string], { n: number }>(
                'SELECT count(*) AS n FROM messages WHERE queue = ? AND dead_lettered_at IS NULL',
            ),
            dead: db.prepare<[string], MessageRow>(
                'SELECT * FROM messages WHERE queue = ? AND dead_lettered_at IS NOT NULL ORDER BY seq',
            ),
        };
    }

    send(queue: string, body: unknown, opts: { messageId?: string } = {}): Promise<void> {
        if (!queue) return Promise.reject(new Error('send: the queue name is empty'));
        const text = JSON.stringify(body) ?? 'null';
        const messageId = opts.messageId ?? randomUUID();
        return this.commits
            .run(() => {
                this.stmt.insert.run(queue, messageId, text, Date.now());
            })
            .then(() => {
                sent.emit(sentKey(this.path, queue));
            });
    }

    receive(queue: string, lockMs: number): Promise<Leased | undefined> {
        // A read first, outside any write transaction: an idle consumer polling an empty queue takes no write lock.
        if (!this.stmt.head.get(queue, Date.now())) return Promise.resolve(undefined);
        const expired: DeadLetteredMessage[] = [];
        return this.commits
            .run(() => {
                expired.length = 0; // the unit may run twice (see commitBatch)
                for (;;) {
                    const now = Date.now();
                    const row = this.stmt.head.get(queue, now);
                    if (!row) return undefined;
                    if (row.delivery_count >= this.maxDeliveryCount) {
                        // Delivered the maximum number of times, and its last lease expired unsettled.
                        const reason = `${MAX_DELIVERY_REASON}: the lock of delivery ${row.delivery_count} expired`;
                        this.stmt.kill.run(now, reason, row.seq);
                        expired.push(deadLettered({ ...row, dead_lettered_at: now, dead_letter_reason: reason }));
                        continue;
                    }
                    const lockToken = randomUUID();
                    const until = now + Math.max(0, lockMs);
                    this.stmt.lease.run(until, lockToken, row.seq);
                    const leased: Leased = {
                        queue,
                        sequenceNumber: row.seq,
                        messageId: row.message_id,
                        body: JSON.parse(row.body) as unknown,
                        deliveryCount: row.delivery_count + 1,
                        enqueuedTimeUtc: new Date(row.enqueued_at).toISOString(),
                        lockToken,
                        lockedUntilUtc: new Date(until).toISOString(),
                    };
                    return leased;
                }
            })
            .then((leased) => {
                for (const message of expired) this.options.onDeadLetter?.(message);
                return leased;
            });
    }

    renew(leased: Leased, lockMs: number): Promise<boolean> {
        return this.commits.run(
            () =>
                this.stmt.renew.run(Date.now() + Math.max(0, lockMs), leased.sequenceNumber, leased.lockToken)
                    .changes === 1,
        );
    }

    complete(leased: Leased): Promise<boolean> {
        return this.commits.run(() => this.stmt.remove.run(leased.sequenceNumber, leased.lockToken).changes === 1);
    }

    abandon(leased: Leased, delayMs = 0): Promise<AbandonOutcome> {
        let killed: DeadLetteredMessage | undefined;
        return this.commits
            .run((): AbandonOutcome => {
                killed = undefined;
                const row = this.stmt.byLease.get(leased.sequenceNumber, leased.lockToken);
                if (!row) return 'lockLost';
                const now = Date.now();
                if (row.delivery_count >= this.maxDeliveryCount) {
                    const reason = `${MAX_DELIVERY_REASON}: abandoned after ${row.delivery_count} deliveries`;
                    this.stmt.kill.run(now, reason, row.seq);
                    killed = deadLettered({ ...row, dead_lettered_at: now, dead_letter_reason: reason });
                    return 'deadLettered';
                }
                this.stmt.unlock.run(now + Math.max(0, delayMs), row.seq);
                return 'abandoned';
            })
            .then((outcome) => {
                if (killed) this.options.onDeadLetter?.(killed);
                return outcome;
            });
    }

    deadLetter(leased: Leased, reason: string): Promise<boolean> {
        return this.commits.run(() => {
            if (!this.stmt.byLease.get(leased.sequenceNumber, leased.lockToken)) return false;
            this.stmt.kill.run(Date.now(), reason, leased.sequenceNumber);
            return true;
        });
    }

    count(queue: string): Promise<number> {
        return promised(() => this.stmt.count.get(queue)?.n ?? 0);
    }

    deadLetters(queue: string): Promise<DeadLetteredMessage[]> {
        return promised(() => this.stmt.dead.all(queue).map(deadLettered));
    }

    onSent(queue: string, listener: () => void): () => void {
        const key = sentKey(this.path, queue);
        sent.on(key, listener);
        return () => void sent.off(key, listener);
    }

    close(): void {
        this.db.close();
    }
}

function deadLettered(row: MessageRow): DeadLetteredMessage {
    return {
        queue: row.queue,
        sequenceNumber: row.seq,
        messageId: row.message_id,
        body: JSON.parse(row.body) as unknown,
        deliveryCount: row.delivery_count,
        enqueuedTimeUtc: new Date(row.enqueued_at).toISOString(),
        deadLetteredAtUtc: new Date(row.dead_lettered_at ?? 0).toISOString(),
        reason: row.dead_letter_reason ?? '',
    };
}

/** The admission queue on the embedded host: each message's id is its run id, as on Service Bus. */
export class EmbeddedAdmissionQueue implements AdmissionQueue {
    constructor(
        private readonly queue: Pick<SqliteQueue, 'send'>,
        private readonly queueName: string,
    ) {}

    enqueue(message: AdmissionMessage): Promise<void> {
        return this.queue.send(this.queueName, message, { messageId: message.runId });
    }
}
