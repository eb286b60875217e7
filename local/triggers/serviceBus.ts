/**
 * serviceBusTrigger: each such function of the app consumes its `queueName` from the embedded queue
 * (adapters/embedded/sqliteQueue.ts) with the Functions host's peek-lock behaviour: the handler gets the message body
 * (and `triggerMetadata` with messageId, deliveryCount, enqueuedTimeUtc …); the message is completed when the handler
 * returns and abandoned when it throws, so it is delivered again from its place in the queue, until
 * `maxDeliveryCount` deliveries dead-letter it. The lock is renewed while the handler runs (the host's auto lock
 * renewal), and a lock left behind by a crash expires, so nothing is lost.
 *
 * `maxConcurrentCalls` handlers of one function run at once; with 1 (the default, as host.json says) delivery is in
 * strict queue order: a failing head is retried, after a short back-off, before anything behind it.
 */
import {
    type DeadLetteredMessage,
    type Leased,
    openSqliteQueue,
    type SqliteQueue,
} from '../../adapters/embedded/sqliteQueue';
import { FunctionRegistration } from '../functionsCore';
import { invocationContext } from '../invoke';
import { TriggerAdapter, TriggerHost } from './types';

export interface ServiceBusTriggerOptions {
    /** Invocations at once per function (host.json `extensions.serviceBus.maxConcurrentCalls`). */
    maxConcurrentCalls: number;
    maxDeliveryCount: number;
    /** Lock duration; a running handler's lock is renewed every half of it. */
    lockMs: number;
    sqliteSync?: 'NORMAL' | 'FULL';
    /** How often an idle consumer looks for messages sent by other processes or unlocked by time. */
    pollMs?: number;
}

/** After a failed delivery, the consumer waits this long, doubling while the failures go on, up to the cap. */
export const BACKOFF_START_MS = 50;
export const BACKOFF_MAX_MS = 1_000;
/** How long stop() waits for running handlers; after that their messages' locks simply expire. */
const STOP_GRACE_MS = 30_000;

export class ServiceBusTriggerAdapter implements TriggerAdapter {
    readonly type = 'serviceBusTrigger';
    private queue: SqliteQueue | undefined;
    private readonly consumers: QueueConsumer[] = [];

    constructor(private readonly options: ServiceBusTriggerOptions) {}

    start(functions: FunctionRegistration[], host: TriggerHost): void {
        const served = functions.filter((f) => servable(f, host));
        if (!served.length) return;
        const queue = (this.queue = openSqliteQueue(host.dataDir, {
            maxDeliveryCount: this.options.maxDeliveryCount,
            ...(this.options.sqliteSync ? { sync: this.options.sqliteSync } : {}),
            onDeadLetter: (m) => host.log('error', deadLetterLine(m)),
        }));
        for (const f of served) {
            const consumer = new QueueConsumer(f, String(f.trigger.queueName), queue, host, this.options);
            consumer.start();
            this.consumers.push(consumer);
        }
        host.log(
            'information',
            `host: Service Bus queues on ${queue.path}: ${served.map((f) => `${String(f.trigger.queueName)} -> ${f.name}`).join(', ')}`,
        );
    }

    async stop(): Promise<void> {
        await Promise.all(this.consumers.splice(0).map((c) => c.stop()));
        this.queue?.close();
        this.queue = undefined;
    }
}

/** Queue triggers delivering one message per invocation are served; topics, sessions and batches are not (yet). */
function servable(f: FunctionRegistration, host: TriggerHost): boolean {
    const t = f.trigger;
    const unsupported =
        typeof t.queueName !== 'string' || t.queueName === ''
            ? 'no queueName (topic subscriptions are not served)'
            : t.isSessionsEnabled === true
              ? 'sessions are not served'
              : t.cardinality === 'many'
                ? "cardinality 'many' is not served"
                : undefined;
    if (unsupported) host.log('warning', `host: Service Bus function '${f.name}' gets no messages: ${unsupported}.`);
    return unsupported === undefined;
}

function deadLetterLine(m: DeadLetteredMessage): string {
    return `host: queue '${m.queue}' dead-lettered message ${m.messageId} (sequence ${m.sequenceNumber}) after ${m.deliveryCount} deliveries: ${m.reason}`;
}

/** One function's consumption of its queue: `maxConcurrentCalls` loops of receive → invoke → settle. */
class QueueConsumer {
    private stopped = false;
    private readonly loops: Promise<void>[] = [];
    /** Resolvers of loops waiting for a message (woken by a send) or backing off (woken only by stop). */
    private readonly idle = new Set<() => void>();
    private readonly pausing = new Set<() => void>();
    private backoffMs = 0;
    /** Sends to this queue seen in process: a send between a receive that found nothing and the wait is not missed. */
    private sends = 0;
    private unsubscribe: (() => void) | undefined;
    private readonly pollMs: number;

    constructor(
        private readonly f: FunctionRegistration,
        private readonly queueName: string,
        private readonly queue: SqliteQueue,
        private readonly host: TriggerHost,
        private readonly options: ServiceBusTriggerOptions,
    ) {
        this.pollMs = options.pollMs ?? 200;
    }

    start(): void {
        this.unsubscribe = this.queue.onSent(this.queueName, () => {
            this.sends++;
            this.wake(this.idle);
        });
        const n = Math.max(1, this.options.maxConcurrentCalls);
        for (let i = 0; i < n; i++) this.loops.push(this.loop());
    }

    async stop(): Promise<void> {
        this.stopped = true;
        this.unsubscribe?.();
        this.wake(this.idle);
        this.wake(this.pausing);
        let grace: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
            grace = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
        });
        const outcome = await Promise.race([Promise.all(this.loops), timedOut]);
        clearTimeout(grace);
        if (outcome === 'timeout')
            this.host.log(
                'warning',
                `host: '${this.f.name}' still running after ${STOP_GRACE_MS} ms; its message's lock will expire and it will be delivered again.`,
            );
    }

    private async loop(): Promise<void> {
        while (!this.stopped) {
            let leased: Leased | undefined;
            const sendsBefore = this.sends;
            try {
                leased = await this.queue.receive(this.queueName, this.options.lockMs);
            } catch (e: unknown) {
                this.host.log('error', `host: receiving from queue '${this.queueName}' failed: ${messageOf(e)}`);
                await this.wait(this.pausing, BACKOFF_MAX_MS);
                continue;
            }
            if (!leased) {
                if (this.sends === sendsBefore) await this.wait(this.idle, this.pollMs);
                continue;
            }
            if (this.stopped) {
                // Received while stopping: no invocation starts after stop(), so it goes back, unhandled.
                await this.settle(() => this.queue.abandon(leased));
                return;
            }
            if (!(await this.deliver(leased))) await this.wait(this.pausing, this.backoffMs);
        }
    }

    /** Invokes the handler and settles the message; false when the handler threw. */
    private async deliver(leased: Leased): Promise<boolean> {
        const ctx = invocationContext(this.host.registry, this.f, this.host.clientData(), this.host.log, {
            // The Service Bus extension's trigger metadata, as the Node worker passes it.
            triggerMetadata: {
                messageId: leased.messageId,
                deliveryCount: leased.deliveryCount,
                enqueuedTimeUtc: leased.enqueuedTimeUtc,
                sequenceNumber: leased.sequenceNumber,
                lockToken: leased.lockToken,
                lockedUntilUtc: leased.lockedUntilUtc,
            },
        });
        const renewal = setInterval(
            () =>
                void this.queue.renew(leased, this.options.lockMs).then(
                    (held) => {
                        if (!held)
                            this.host.log('warning', `host: '${this.f.name}' lost the lock of ${leased.messageId}`);
                    },
                    (e: unknown) => this.host.log('warning', `host: renewing a lock failed: ${messageOf(e)}`),
                ),
            Math.max(10, Math.floor(this.options.lockMs / 2)),
        );
        try {
            await this.f.handler(leased.body, ctx);
        } catch (e: unknown) {
            clearInterval(renewal);
            ctx.error(
                `Service Bus function '${this.f.name}' failed on message ${leased.messageId} (delivery ${leased.deliveryCount}): ${messageOf(e)}`,
            );
            // The queue dead-letters a message that has had its maximum deliveries (and onDeadLetter logs it).
            await this.settle(() => this.queue.abandon(leased));
            this.backoffMs = this.backoffMs ? Math.min(this.backoffMs * 2, BACKOFF_MAX_MS) : BACKOFF_START_MS;
            return false;
        } finally {
            clearInterval(renewal);
        }
        const completed = await this.settle(() => this.queue.complete(leased));
        if (completed === false)
            this.host.log(
                'warning',
                `host: '${this.f.name}' handled ${leased.messageId} after losing its lock; it may be delivered again.`,
            );
        this.backoffMs = 0;
        return true;
    }

    /** A settlement that fails (the database is gone) is logged: the lock then expires and the message comes back. */
    private async settle<T>(op: () => Promise<T>): Promise<T | undefined> {
        try {
            return await op();
        } catch (e: unknown) {
            this.host.log('error', `host: settling a message of queue '${this.queueName}' failed: ${messageOf(e)}`);
            return undefined;
        }
    }

    private wait(waiters: Set<() => void>, ms: number): Promise<void> {
        if (this.stopped) return Promise.resolve();
        return new Promise<void>((resolve) => {
            const done = (): void => {
                clearTimeout(timer);
                waiters.delete(done);
                resolve();
            };
            const timer = setTimeout(done, ms);
            waiters.add(done);
        });
    }

    private wake(waiters: Set<() => void>): void {
        for (const done of [...waiters]) done();
    }
}

function messageOf(e: unknown): string {
    return e instanceof Error ? e.message : String(e);
}
