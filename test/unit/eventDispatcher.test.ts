/**
 * The outbox dispatcher (adapters/eventGrid/dispatcher.ts) against fakes: at least once, in order per run, a failing
 * run held back without holding the others back, and duplicates only with the same event ids.
 */
import { EventDispatcher } from '../../adapters/eventGrid/dispatcher';
import { type AuditRecord, chainNext } from '../../domain/audit';
import type { MeshCloudEvent } from '../../domain/events';
import type { EventOutbox, EventPublisher, OutboxEntry } from '../../domain/ports';
import { TEST_KEYS } from '../support/chainKeys';

class FakeOutbox implements EventOutbox {
    entries: OutboxEntry[] = [];
    private readonly last = new Map<string, AuditRecord>();
    failMarks = 0;

    /** Records `n` more events of each run, interleaved round-robin (as concurrent runs record them). */
    record(runs: string[], n: number): void {
        for (let i = 0; i < n; i++)
            for (const runId of runs) {
                const prev = this.last.get(runId);
                const r = chainNext(
                    prev,
                    {
                        eventId: `${runId}/${(prev?.seq ?? 0) + 1}`,
                        runId,
                        type: 'stage.started',
                        at: new Date(Date.UTC(2025, 0, 1, 0, 0, (prev?.seq ?? 0) + 1)).toISOString(),
                        actor: 'system',
                        correlationID: `corr-${runId}`,
                    },
                    TEST_KEYS.current,
                );
                this.last.set(runId, r);
                this.entries.push({ id: `${runId}:${r.seq}`, runId, seq: r.seq, record: r });
            }
    }

    pending(limit: number): Promise<OutboxEntry[]> {
        return Promise.resolve(this.entries.slice(0, limit));
    }

    pendingCount(): Promise<number> {
        return Promise.resolve(this.entries.length);
    }

    markPublished(ids: readonly string[]): Promise<void> {
        if (this.failMarks > 0) {
            this.failMarks--;
            return Promise.reject(new Error('store busy'));
        }
        const gone = new Set(ids);
        this.entries = this.entries.filter((e) => !gone.has(e.id));
        return Promise.resolve();
    }
}

class FakePublisher implements EventPublisher {
    /** Accepted batches, in order. */
    readonly batches: MeshCloudEvent[][] = [];
    attempts = 0;
    /** Refuse a batch that holds one of these event ids (as Event Grid refuses a whole batch). */
    readonly refuse = new Set<string>();
    gate: Promise<void> | undefined;

    async publish(events: readonly MeshCloudEvent[]): Promise<void> {
        this.attempts++;
        if (this.gate) await this.gate;
        if (events.some((e) => this.refuse.has(e.id))) throw new Error('503 Service Unavailable');
        this.batches.push([...events]);
    }

    /** Every accepted event, in the order accepted. */
    events(): MeshCloudEvent[] {
        return this.batches.flat();
    }

    seqsOf(runId: string): number[] {
        return this.events()
            .filter((e) => e.data.orchestrationID === runId)
            .map((e) => e.data.seq);
    }
}

function setup(options: ConstructorParameters<typeof EventDispatcher>[2] = {}) {
    const outbox = new FakeOutbox();
    const publisher = new FakePublisher();
    const clock = { now: 1_000_000 };
    const logs: string[] = [];
    const dispatcher = new EventDispatcher(outbox, publisher, {
        now: () => clock.now,
        log: (level, m) => logs.push(`${level}: ${m}`),
        ...options,
    });
    return { outbox, publisher, clock, logs, dispatcher };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

afterEach(() => jest.useRealTimers());

describe('EventDispatcher', () => {
    it('publishes the outbox in recording order, in bounded batches, and marks every event published', async () => {
        const { outbox, publisher, dispatcher } = setup({ maxBatchEvents: 4 });
        outbox.record(['a', 'b', 'c'], 5);
        const r = await dispatcher.drain();
        expect(r).toEqual({ published: 15, failedBatches: 0, waiting: 0 });
        expect(publisher.batches.map((b) => b.length)).toEqual([4, 4, 4, 3]);
        expect(publisher.events().map((e) => e.id)).toEqual(
            range(1, 5).flatMap((i) => ['a', 'b', 'c'].map((run) => `${run}:${i}`)),
        );
        expect(outbox.entries).toEqual([]);
        dispatcher.close();
    });

    it('keeps batches under the byte limit, and sends an event larger than the limit on its own', async () => {
        const { outbox, publisher, dispatcher } = setup({ maxBatchBytes: 900 });
        outbox.record(['a'], 6);
        await dispatcher.drain();
        const bytes = (b: MeshCloudEvent[]): number => b.reduce((n, e) => n + JSON.stringify(e).length, 0);
        for (const b of publisher.batches) expect(bytes(b)).toBeLessThanOrEqual(900);
        expect(publisher.batches.length).toBeGreaterThan(1);
        expect(publisher.seqsOf('a')).toEqual(range(1, 6));

        const tiny = setup({ maxBatchBytes: 100 });
        tiny.outbox.record(['a'], 3);
        await tiny.dispatcher.drain();
        expect(tiny.publisher.batches.map((b) => b.length)).toEqual([1, 1, 1]);
        dispatcher.close();
        tiny.dispatcher.close();
    });

    it('reads the outbox page by page until it is empty', async () => {
        const { outbox, publisher, dispatcher } = setup({ pageSize: 7, maxBatchEvents: 3 });
        outbox.record(['a', 'b'], 10);
        await expect(dispatcher.drain()).resolves.toMatchObject({ published: 20 });
        expect(publisher.seqsOf('a')).toEqual(range(1, 10));
        expect(publisher.seqsOf('b')).toEqual(range(1, 10));
        dispatcher.close();
    });

    it('holds back a run whose batch failed: its later events wait, the other runs go on, and it resumes in order', async () => {
        const { outbox, publisher, clock, dispatcher, logs } = setup({ maxBatchEvents: 2, retryBaseMs: 1_000 });
        outbox.record(['a', 'b', 'c'], 4);
        publisher.refuse.add('a:2');
        const first = await dispatcher.drain();
        // Batches [a1 b1] [c1 a2] …: the second fails, so a and c (whose event shared it) wait; b goes on.
        expect(publisher.seqsOf('a')).toEqual([1]);
        expect(publisher.seqsOf('b')).toEqual(range(1, 4));
        expect(publisher.seqsOf('c')).toEqual([]);
        expect(first.failedBatches).toBe(1);
        expect(first.waiting).toBe(7);
        expect(dispatcher.heldBack()).toEqual(
            new Map([
                ['a', 1],
                ['c', 1],
            ]),
        );
        expect(logs.join('\n')).toMatch(/event publishing failed .*attempt 1.*503/);

        // Before the back-off ends nothing of a is tried, even with new events of every run recorded meanwhile.
        outbox.record(['a', 'b'], 1);
        const attempts = publisher.attempts;
        await dispatcher.drain();
        expect(publisher.seqsOf('a')).toEqual([1]);
        expect(publisher.seqsOf('b')).toEqual(range(1, 5));
        expect(publisher.attempts).toBe(attempts + 1);

        publisher.refuse.clear();
        clock.now += 1_000;
        await dispatcher.drain();
        expect(publisher.seqsOf('a')).toEqual(range(1, 5));
        expect(publisher.seqsOf('c')).toEqual(range(1, 4));
        expect(outbox.entries).toEqual([]);
        expect(dispatcher.heldBack().size).toBe(0);
        dispatcher.close();
    });

    it('sends a run that failed on its own, so an event the topic keeps refusing holds back only its run', async () => {
        const { outbox, publisher, clock, dispatcher } = setup({ retryBaseMs: 100, retryMaxMs: 400 });
        outbox.record(['poison', 'b'], 3);
        publisher.refuse.add('poison:1');
        for (let round = 0; round < 6; round++) {
            outbox.record(['b'], 1);
            await dispatcher.drain();
            clock.now += 1_000;
        }
        expect(publisher.seqsOf('poison')).toEqual([]);
        expect(publisher.seqsOf('b')).toEqual(range(1, 9));
        // After its first failure the poisoned run never shares a batch again.
        for (const batch of publisher.batches)
            expect(new Set(batch.map((e) => e.data.orchestrationID)).has('poison')).toBe(false);
        expect(dispatcher.heldBack().get('poison')).toBe(6);
        expect(outbox.entries.map((e) => e.id)).toEqual(['poison:1', 'poison:2', 'poison:3']);
        dispatcher.close();
    });

    it('backs off exponentially per run, up to the cap', async () => {
        const { outbox, publisher, clock, dispatcher } = setup({ retryBaseMs: 100, retryMaxMs: 350 });
        outbox.record(['a'], 1);
        publisher.refuse.add('a:1');
        const triedAt: number[] = [];
        for (let t = 0; t <= 1_500; t += 10) {
            clock.now = 1_000_000 + t;
            const before = publisher.attempts;
            await dispatcher.drain();
            if (publisher.attempts > before) triedAt.push(t);
        }
        expect(triedAt).toEqual([0, 100, 300, 650, 1000, 1350]);
        dispatcher.close();
    });

    it('publishes a batch again, with the same ids, when marking it published failed: duplicates, never disorder', async () => {
        const { outbox, publisher, clock, dispatcher } = setup({ maxBatchEvents: 3 });
        outbox.record(['a'], 5);
        outbox.failMarks = 1;
        await dispatcher.drain();
        expect(publisher.seqsOf('a')).toEqual([1, 2, 3]);
        clock.now += 60_000;
        await dispatcher.drain();
        const seqs = publisher.seqsOf('a');
        expect(seqs).toEqual([1, 2, 3, 1, 2, 3, 4, 5]);
        // De-duplicated by id (first arrival kept), every event once and in order.
        const firsts = [...new Map(publisher.events().map((e) => [e.id, e.data.seq])).values()];
        expect(firsts).toEqual(range(1, 5));
        dispatcher.close();
    });

    it('joins a drain already running, which then takes another pass for what was recorded meanwhile', async () => {
        const { outbox, publisher, dispatcher } = setup();
        outbox.record(['a'], 2);
        let open!: () => void;
        publisher.gate = new Promise<void>((r) => (open = r));
        const first = dispatcher.drain();
        await new Promise((r) => setImmediate(r));
        outbox.record(['a'], 2);
        const second = dispatcher.drain();
        expect(second).toBe(first);
        publisher.gate = undefined;
        open();
        await expect(first).resolves.toMatchObject({ published: 4 });
        expect(publisher.batches.map((b) => b.map((e) => e.id))).toEqual([
            ['a:1', 'a:2'],
            ['a:3', 'a:4'],
        ]);
        dispatcher.close();
    });

    it('drains soon after a nudge, coalescing nudges', async () => {
        const outbox = new FakeOutbox();
        const publisher = new FakePublisher();
        const dispatcher = new EventDispatcher(outbox, publisher, { nudgeDelayMs: 5 });
        outbox.record(['a'], 3);
        dispatcher.nudge();
        dispatcher.nudge();
        dispatcher.nudge();
        await new Promise((r) => setTimeout(r, 50));
        expect(publisher.attempts).toBe(1);
        expect(publisher.seqsOf('a')).toEqual([1, 2, 3]);
        dispatcher.close();
    });

    it('retries a held-back run by itself when its back-off ends, without a timer tick or a nudge', async () => {
        const outbox = new FakeOutbox();
        const publisher = new FakePublisher();
        const dispatcher = new EventDispatcher(outbox, publisher, { retryBaseMs: 20 });
        outbox.record(['a'], 2);
        publisher.refuse.add('a:1');
        await dispatcher.drain();
        expect(publisher.seqsOf('a')).toEqual([]);
        publisher.refuse.clear();
        await new Promise((r) => setTimeout(r, 100));
        expect(publisher.seqsOf('a')).toEqual([1, 2]);
        dispatcher.close();
    });
});
