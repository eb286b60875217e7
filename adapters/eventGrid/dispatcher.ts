/**
 * Drains the event outbox into a publisher: at least once, in order per run. Entries are read in recording order
 * and sent in batches, one batch at a time, each marked published only after the publisher accepted it. A batch that
 * fails holds back every run in it (with exponential back-off per run) and none of those runs' later entries go out
 * before it; other runs carry on. A run that failed is sent on its own afterwards, so one event the topic keeps
 * refusing holds back only its own run. A crash between publishing and marking sends the batch again, with the same
 * event ids, which is what consumers de-duplicate by.
 *
 * Drains are driven from outside: the `publishEvents` timer function (every 10 s, on Azure and on the embedded host
 * alike) and `nudge()` after each audit append, so events go out within milliseconds. The back-off state is in
 * memory: a restarted process simply tries every run again.
 */
import { toCloudEvent } from '../../domain/events';
import type { EventOutbox, EventPublisher, OutboxEntry } from '../../domain/ports';
import { meshMetrics } from '../telemetry/metrics';
import { publishSpan } from '../telemetry/tracing';

export type DispatcherLog = (level: 'warning' | 'error', message: string) => void;

export interface DispatcherOptions {
    /** Outbox entries read per pass (default 500). */
    pageSize?: number;
    /** Events per publish request (default 100). */
    maxBatchEvents?: number;
    /** Serialized bytes per publish request (default 900 kB: Event Grid takes 1 MB). */
    maxBatchBytes?: number;
    /** First back-off of a failing run, doubled per failure up to `retryMaxMs` (defaults 1 s, 60 s). */
    retryBaseMs?: number;
    retryMaxMs?: number;
    /** How long a nudge waits, so appends committed together go out together (default 10 ms). */
    nudgeDelayMs?: number;
    now?: () => number;
    log?: DispatcherLog;
}

export interface DrainResult {
    /** Events published (and marked) by this drain. */
    published: number;
    /** Publish requests that failed. */
    failedBatches: number;
    /** Entries seen in the last pass that are still unpublished (held back or failed). */
    waiting: number;
}

interface Failure {
    count: number;
    /** Not retried before this time (ms since the epoch). */
    until: number;
}

interface Pass extends DrainResult {
    /** The page was full: more entries may be waiting behind it. */
    full: boolean;
}

export class EventDispatcher {
    private readonly o: Required<Omit<DispatcherOptions, 'log'>> & { log: DispatcherLog };
    private readonly failures = new Map<string, Failure>();
    private running: Promise<DrainResult> | undefined;
    private again = false;
    private nudgeTimer: NodeJS.Timeout | undefined;
    private retryTimer: NodeJS.Timeout | undefined;
    private closed = false;

    constructor(
        private readonly outbox: EventOutbox,
        private readonly publisher: EventPublisher,
        options: DispatcherOptions = {},
    ) {
        this.o = {
            pageSize: options.pageSize ?? 500,
            maxBatchEvents: options.maxBatchEvents ?? 100,
            maxBatchBytes: options.maxBatchBytes ?? 900_000,
            retryBaseMs: options.retryBaseMs ?? 1_000,
            retryMaxMs: options.retryMaxMs ?? 60_000,
            nudgeDelayMs: options.nudgeDelayMs ?? 10,
            now: options.now ?? Date.now,
            log: options.log ?? (() => undefined),
        };
    }

    /**
     * Publishes what the outbox holds until nothing more can go now. One drain runs at a time: a call made while one
     * runs joins it, and the running drain takes another pass for what was recorded in the meantime.
     */
    drain(): Promise<DrainResult> {
        if (this.running) {
            this.again = true;
            return this.running;
        }
        this.running = this.loop().finally(() => {
            this.running = undefined;
            this.scheduleRetry();
        });
        return this.running;
    }

    /** Asks for a drain soon (after an audit append). Never throws; failures are logged. */
    nudge(): void {
        if (this.closed || this.nudgeTimer) return;
        this.nudgeTimer = setTimeout(() => {
            this.nudgeTimer = undefined;
            this.background();
        }, this.o.nudgeDelayMs);
        this.nudgeTimer.unref();
    }

    /** Stops the timers; a drain in progress finishes. */
    close(): void {
        this.closed = true;
        clearTimeout(this.nudgeTimer);
        clearTimeout(this.retryTimer);
    }

    /** Runs currently held back after a failure, with their attempt count (for logs and tests). */
    heldBack(): Map<string, number> {
        return new Map([...this.failures].map(([run, f]) => [run, f.count]));
    }

    private async loop(): Promise<DrainResult> {
        const total: DrainResult = { published: 0, failedBatches: 0, waiting: 0 };
        for (;;) {
            this.again = false;
            const pass = await this.pass();
            total.published += pass.published;
            total.failedBatches += pass.failedBatches;
            total.waiting = pass.waiting;
            if (!this.again && !(pass.full && pass.published > 0)) return total;
        }
    }

    private async pass(): Promise<Pass> {
        const entries = await this.outbox.pending(this.o.pageSize);
        const full = entries.length >= this.o.pageSize;
        const now = this.o.now();
        if (!full) {
            // The whole outbox is in view: a run with nothing left waiting has nothing to be held back for.
            const waiting = new Set(entries.map((e) => e.runId));
            for (const run of this.failures.keys()) if (!waiting.has(run)) this.failures.delete(run);
        }
        const held = new Set([...this.failures].filter(([, f]) => f.until > now).map(([run]) => run));
        let remaining = entries.filter((e) => !held.has(e.runId));
        let published = 0;
        let failedBatches = 0;
        for (;;) {
            remaining = remaining.filter((e) => !held.has(e.runId));
            const batch = this.nextBatch(remaining);
            if (!batch.length) break;
            const taken = new Set(batch);
            remaining = remaining.filter((e) => !taken.has(e));
            const runs = [...new Set(batch.map((e) => e.runId))];
            try {
                await publishSpan(batch.length, runs.length, () =>
                    this.publisher.publish(batch.map((e) => toCloudEvent(e.record))),
                );
                await this.outbox.markPublished(batch.map((e) => e.id));
                meshMetrics().eventDeliveries.inc({ outcome: 'delivered' }, batch.length);
                published += batch.length;
                for (const run of runs) this.failures.delete(run);
            } catch (e: unknown) {
                failedBatches++;
                meshMetrics().eventDeliveries.inc({ outcome: 'failed' }, batch.length);
                // Everything of these runs waits: a later event must never overtake the one that failed.
                for (const run of runs) held.add(run);
                this.fail(runs, batch.length, e);
            }
        }
        return {
            published,
            failedBatches,
            waiting: entries.length - published,
            full,
        };
    }

    /**
     * The next request: a run that failed before goes alone (so it cannot hold others back again); otherwise the
     * oldest entries of the runs in good standing, in recording order, within the size limits. Always a prefix of
     * each run's waiting entries.
     */
    private nextBatch(remaining: readonly OutboxEntry[]): OutboxEntry[] {
        const head = remaining[0];
        if (!head) return [];
        const alone = this.failures.has(head.runId);
        const batch: OutboxEntry[] = [];
        let bytes = 0;
        for (const e of remaining) {
            if (alone ? e.runId !== head.runId : this.failures.has(e.runId)) continue;
            const size = Buffer.byteLength(JSON.stringify(toCloudEvent(e.record)));
            if (batch.length && (batch.length >= this.o.maxBatchEvents || bytes + size > this.o.maxBatchBytes)) break;
            batch.push(e);
            bytes += size;
        }
        return batch;
    }

    private fail(runs: readonly string[], events: number, e: unknown): void {
        const now = this.o.now();
        let attempt = 0;
        for (const run of runs) {
            const count = (this.failures.get(run)?.count ?? 0) + 1;
            const delay = Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** (count - 1));
            this.failures.set(run, { count, until: now + delay });
            attempt = Math.max(attempt, count);
        }
        const what = runs.length === 1 ? `run ${runs[0]}` : `${runs.length} runs`;
        this.o.log(
            attempt > 1 ? 'error' : 'warning',
            `event publishing failed (${events} events of ${what}, attempt ${attempt}); held back and retried: ${messageOf(e)}`,
        );
    }

    /** After a drain that left runs held back: another one when the earliest back-off ends. */
    private scheduleRetry(): void {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        const now = this.o.now();
        const untils = [...this.failures.values()].map((f) => f.until).filter((t) => t > now);
        if (this.closed || !untils.length) return;
        const next = Math.min(...untils);
        this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.background();
        }, next - now);
        this.retryTimer.unref();
    }

    private background(): void {
        if (this.closed) return;
        this.drain().catch((e: unknown) => this.o.log('error', `event dispatcher: ${messageOf(e)}`));
    }
}

function messageOf(e: unknown): string {
    return e instanceof Error ? e.message : String(e);
}
