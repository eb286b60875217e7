/**
 * The embedded queue (the local Service Bus): FIFO per queue, peek-lock leases, abandon back to the original place,
 * lock expiry, dead-lettering after the maximum deliveries, durability across reopening.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
    DeadLetteredMessage,
    EmbeddedAdmissionQueue,
    Leased,
    openSqliteQueue,
    SqliteQueue,
    SqliteQueueOptions,
} from '../../adapters/embedded/sqliteQueue';

const dirs: string[] = [];
const open: SqliteQueue[] = [];

function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-queue-'));
    dirs.push(dir);
    return dir;
}

function queueIn(dir = tempDir(), options: SqliteQueueOptions = {}): SqliteQueue {
    const q = openSqliteQueue(dir, options);
    open.push(q);
    return q;
}

afterEach(() => {
    for (const q of open.splice(0)) q.close();
});
afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const LOCK = 60_000;

async function receiveOrFail(q: SqliteQueue, name: string, lockMs = LOCK): Promise<Leased> {
    const leased = await q.receive(name, lockMs);
    if (!leased) throw new Error(`nothing to receive from ${name}`);
    return leased;
}

async function drain(q: SqliteQueue, name: string): Promise<unknown[]> {
    const bodies: unknown[] = [];
    for (let m = await q.receive(name, LOCK); m; m = await q.receive(name, LOCK)) {
        bodies.push(m.body);
        await q.complete(m);
    }
    return bodies;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('embedded queue', () => {
    it('delivers in enqueue order, each queue on its own', async () => {
        const q = queueIn();
        await q.send('a', { n: 1 });
        await q.send('b', 'b1');
        await Promise.all([q.send('a', { n: 2 }), q.send('a', { n: 3 })]);
        for (let n = 4; n <= 20; n++) await q.send('a', { n });
        await expect(drain(q, 'a')).resolves.toEqual(Array.from({ length: 20 }, (_, i) => ({ n: i + 1 })));
        await expect(drain(q, 'b')).resolves.toEqual(['b1']);
        await expect(q.receive('a', LOCK)).resolves.toBeUndefined();
        await expect(q.receive('never', LOCK)).resolves.toBeUndefined();
    });

    it('leases a message: others receive the next one; it carries id, delivery count and enqueue time', async () => {
        const q = queueIn();
        const before = Date.now();
        await q.send('a', { n: 1 }, { messageId: 'm-1' });
        await q.send('a', { n: 2 });
        const first = await receiveOrFail(q, 'a');
        expect(first).toMatchObject({ queue: 'a', messageId: 'm-1', body: { n: 1 }, deliveryCount: 1 });
        expect(Date.parse(first.enqueuedTimeUtc)).toBeGreaterThanOrEqual(before - 1);
        expect(Date.parse(first.lockedUntilUtc)).toBeGreaterThan(Date.now() + LOCK - 5_000);
        const second = await receiveOrFail(q, 'a');
        expect(second.body).toEqual({ n: 2 });
        expect(second.messageId).toMatch(/^[0-9a-f-]{36}$/);
        await expect(q.receive('a', LOCK)).resolves.toBeUndefined();
        // Concurrent receivers never share a message.
        await Promise.all(Array.from({ length: 10 }, (_, n) => q.send('c', n)));
        const got = await Promise.all(Array.from({ length: 12 }, () => q.receive('c', LOCK)));
        expect(
            got
                .filter((m) => m !== undefined)
                .map((m) => m.body)
                .sort((x, y) => Number(x) - Number(y)),
        ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });

    it('puts an abandoned message back at its original place, delivered again with a higher count', async () => {
        const q = queueIn();
        for (let n = 1; n <= 3; n++) await q.send('a', n);
        const first = await receiveOrFail(q, 'a');
        const second = await receiveOrFail(q, 'a');
        await expect(q.abandon(first)).resolves.toBe('abandoned');
        const again = await receiveOrFail(q, 'a');
        expect(again).toMatchObject({ body: 1, deliveryCount: 2, messageId: first.messageId });
        expect(again.lockToken).not.toBe(first.lockToken);
        await q.complete(second);
        await q.complete(again);
        await expect(drain(q, 'a')).resolves.toEqual([3]);
    });

    it('keeps an abandoned message invisible for the delay, still ahead of later ones afterwards', async () => {
        const q = queueIn();
        await q.send('a', 1);
        await q.send('a', 2);
        await q.abandon(await receiveOrFail(q, 'a'), 150);
        const meanwhile = await receiveOrFail(q, 'a');
        expect(meanwhile.body).toBe(2);
        await q.abandon(meanwhile);
        await sleep(200);
        await expect(drain(q, 'a')).resolves.toEqual([1, 2]);
    });

    it('makes a message whose lock expired visible again (a crashed consumer loses nothing)', async () => {
        const q = queueIn();
        await q.send('a', 'x');
        const lost = await receiveOrFail(q, 'a', 100);
        await expect(q.receive('a', LOCK)).resolves.toBeUndefined();
        await sleep(150);
        const again = await receiveOrFail(q, 'a');
        expect(again).toMatchObject({ body: 'x', deliveryCount: 2 });
        // The stale lease settles nothing.
        await expect(q.complete(lost)).resolves.toBe(false);
        await expect(q.abandon(lost)).resolves.toBe('lockLost');
        await expect(q.deadLetter(lost, 'stale')).resolves.toBe(false);
        await expect(q.count('a')).resolves.toBe(1);
        await expect(q.complete(again)).resolves.toBe(true);
        await expect(q.count('a')).resolves.toBe(0);
    });

    it('renews a lock, so a long handler keeps its message', async () => {
        const q = queueIn();
        await q.send('a', 'x');
        const leased = await receiveOrFail(q, 'a', 100);
        await sleep(60);
        await expect(q.renew(leased, 200)).resolves.toBe(true);
        await sleep(80);
        await expect(q.receive('a', LOCK)).resolves.toBeUndefined();
        await expect(q.complete(leased)).resolves.toBe(true);
    });

    it('dead-letters a message abandoned after its maximum deliveries, and moves on', async () => {
        const told: DeadLetteredMessage[] = [];
        const q = queueIn(tempDir(), { maxDeliveryCount: 3, onDeadLetter: (m) => told.push(m) });
        await q.send('a', 'poison', { messageId: 'p' });
        await q.send('a', 'fine');
        for (let i = 1; i <= 2; i++) {
            const m = await receiveOrFail(q, 'a');
            expect(m).toMatchObject({ body: 'poison', deliveryCount: i });
            await expect(q.abandon(m)).resolves.toBe('abandoned');
        }
        const last = await receiveOrFail(q, 'a');
        expect(last.deliveryCount).toBe(3);
        await expect(q.abandon(last)).resolves.toBe('deadLettered');
        await expect(drain(q, 'a')).resolves.toEqual(['fine']);
        const dead = await q.deadLetters('a');
        expect(dead).toEqual([
            expect.objectContaining({
                messageId: 'p',
                body: 'poison',
                deliveryCount: 3,
                reason: expect.stringMatching(/^MaxDeliveryCountExceeded/) as unknown,
            }),
        ]);
        expect(told.map((m) => m.messageId)).toEqual(['p']);
        await expect(q.count('a')).resolves.toBe(0);
    });

    it('dead-letters a message whose last allowed delivery never settled (its lock expired)', async () => {
        const q = queueIn(tempDir(), { maxDeliveryCount: 1 });
        await q.send('a', 'crashes-the-consumer');
        await q.send('a', 'next');
        await receiveOrFail(q, 'a', 50);
        await sleep(80);
        await expect(receiveOrFail(q, 'a')).resolves.toMatchObject({ body: 'next', deliveryCount: 1 });
        expect((await q.deadLetters('a')).map((m) => m.body)).toEqual(['crashes-the-consumer']);
    });

    it('dead-letters on request with a reason', async () => {
        const q = queueIn();
        await q.send('a', { bad: true });
        await expect(q.deadLetter(await receiveOrFail(q, 'a'), 'unreadable')).resolves.toBe(true);
        await expect(q.deadLetters('a')).resolves.toEqual([
            expect.objectContaining({ body: { bad: true }, reason: 'unreadable', deliveryCount: 1 }),
        ]);
        await expect(q.deadLetters('b')).resolves.toEqual([]);
        await expect(q.receive('a', LOCK)).resolves.toBeUndefined();
    });

    it('counts active messages per queue, leased ones included and dead letters not', async () => {
        const q = queueIn();
        await expect(q.count('a')).resolves.toBe(0);
        for (let n = 0; n < 4; n++) await q.send('a', n);
        await q.send('b', 'x');
        await expect(q.count('a')).resolves.toBe(4);
        const m = await receiveOrFail(q, 'a');
        await expect(q.count('a')).resolves.toBe(4);
        await q.complete(m);
        await q.deadLetter(await receiveOrFail(q, 'a'), 'no');
        await expect(q.count('a')).resolves.toBe(2);
        await expect(q.count('b')).resolves.toBe(1);
    });

    it('keeps messages, leases and dead letters across close and reopen', async () => {
        const dir = tempDir();
        const first = openSqliteQueue(dir);
        for (let n = 1; n <= 3; n++) await first.send('a', n);
        await first.receive('a', 100); // leased by a "process" that then goes away
        await first.deadLetter(await receiveOrFail(first, 'a'), 'kept');
        first.close();

        const again = queueIn(dir);
        await expect(again.count('a')).resolves.toBe(2);
        await expect(again.deadLetters('a')).resolves.toHaveLength(1);
        await expect(drain(again, 'a')).resolves.toEqual([3]);
        await sleep(120);
        await expect(receiveOrFail(again, 'a')).resolves.toMatchObject({ body: 1, deliveryCount: 2 });
    });

    it('shares one file between connections (as between processes), each message delivered once', async () => {
        const dir = tempDir();
        const a = queueIn(dir);
        const b = queueIn(dir);
        for (let n = 0; n < 20; n++) await (n % 2 ? a : b).send('q', n);
        const got: unknown[] = [];
        for (;;) {
            const [x, y] = await Promise.all([a.receive('q', LOCK), b.receive('q', LOCK)]);
            if (!x && !y) break;
            for (const [q, m] of [
                [a, x],
                [b, y],
            ] as const) {
                if (!m) continue;
                got.push(m.body);
                await q.complete(m);
            }
        }
        expect([...got].sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    });

    it('announces sends in process, per file and queue', async () => {
        const dir = tempDir();
        const a = queueIn(dir);
        const b = queueIn(dir);
        const other = queueIn();
        const heard: string[] = [];
        const off = b.onSent('q', () => heard.push('q'));
        b.onSent('r', () => heard.push('r'));
        await a.send('q', 1);
        await a.send('r', 1);
        await other.send('q', 1);
        off();
        await a.send('q', 2);
        expect(heard).toEqual(['q', 'r']);
    });

    it('EmbeddedAdmissionQueue enqueues the message as the body, with the run id as message id', async () => {
        const q = queueIn();
        await new EmbeddedAdmissionQueue(q, 'mesh-admission').enqueue({ runId: 'run-1', correlationID: 'c-1' });
        await expect(receiveOrFail(q, 'mesh-admission')).resolves.toMatchObject({
            messageId: 'run-1',
            body: { runId: 'run-1', correlationID: 'c-1' },
        });
    });
});
