/**
 * The embedded host's Event Grid stand-in (local/eventGrid/): the topic endpoint the SDK publishes to, subscriptions
 * with Event Grid's filters, the webhook handshake and structured delivery, Event Grid's retry schedule, dead letters,
 * and pending deliveries that outlive the process.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { FieldCipher } from '../../adapters/crypto/fieldCipher';
import { keyRingOf, newKeyRingDoc } from '../../adapters/crypto/keyRing';
import { EventGridPublisher } from '../../adapters/eventGrid/eventGridPublisher';
import { type AuditRecord, chainNext, type EventType } from '../../domain/audit';
import { type MeshCloudEvent, toCloudEvent } from '../../domain/events';
import { REQUEST_ORIGIN, retryDelayMs } from '../../local/eventGrid/delivery';
import { EVENTGRID_PATH, LocalEventGrid, type LocalEventGridOptions } from '../../local/eventGrid/localEventGrid';
import { loadEventGridAccessKey } from '../../local/eventGrid/storeCipher';
import {
    matches,
    parseSubscriptions,
    retryScaleFromEnv,
    subscriptionsFromEnv,
    type WebhookSubscription,
} from '../../local/eventGrid/subscriptions';
import { TEST_KEYS } from '../support/chainKeys';

/** The topic's store cipher (on the host: local/eventGrid/storeCipher.ts, keys in MESH_KEYS_DIR). */
const CIPHER = new FieldCipher(keyRingOf(newKeyRingDoc(), 'the test ring'));

const dirs: string[] = [];
function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-eventgrid-'));
    dirs.push(dir);
    return dir;
}
afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function waitFor(check: () => boolean, what: string, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A webhook receiver: answers the handshake (unless told not to), fails on purpose, records what it got.
// ---------------------------------------------------------------------------------------------------------------

interface Delivery {
    path: string;
    headers: IncomingHttpHeaders;
    event: MeshCloudEvent;
}

class Receiver {
    readonly deliveries: Delivery[] = [];
    readonly handshakes: IncomingHttpHeaders[] = [];
    /** Answers for the next POSTs, then 200. */
    readonly answers: number[] = [];
    /** Status per path, every time (e.g. always 500). */
    readonly always = new Map<string, number>();
    allowOrigin: string | undefined = REQUEST_ORIGIN;
    private server!: Server;
    url = '';

    async start(): Promise<this> {
        this.server = createServer((req, res) => {
            let body = '';
            req.on('data', (c: Buffer) => (body += c.toString()));
            req.on('end', () => {
                if (req.method === 'OPTIONS') {
                    this.handshakes.push(req.headers);
                    res.writeHead(200, this.allowOrigin ? { 'WebHook-Allowed-Origin': this.allowOrigin } : {});
                    return res.end();
                }
                const path = req.url ?? '/';
                const status = this.always.get(path) ?? this.answers.shift() ?? 200;
                if (status === 200)
                    this.deliveries.push({ path, headers: req.headers, event: JSON.parse(body) as MeshCloudEvent });
                res.writeHead(status);
                res.end();
            });
        });
        await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
        return this;
    }

    ids(path: string): string[] {
        return this.deliveries.filter((d) => d.path === path).map((d) => d.event.id);
    }

    stop(): Promise<void> {
        return new Promise((r) => this.server.close(() => r()));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A topic: a LocalEventGrid behind its own HTTP server, published to with the real SDK client.
// ---------------------------------------------------------------------------------------------------------------

interface Topic {
    grid: LocalEventGrid;
    publisher: EventGridPublisher;
    endpoint: string;
    logs: string[];
    close(): Promise<void>;
}

async function topic(
    subscriptions: WebhookSubscription[],
    over: Partial<LocalEventGridOptions> & { dataDir?: string } = {},
): Promise<Topic> {
    const logs: string[] = [];
    const dataDir = over.dataDir ?? tempDir();
    const grid = new LocalEventGrid({
        dataDir,
        cipher: CIPHER,
        // As the host does: the topic's access key lives in the keys dir and survives a restart.
        key: await loadEventGridAccessKey(`${dataDir}.keys`, dataDir),
        subscriptions,
        retryScale: 0.001,
        log: (level, m) => logs.push(`${level}: ${m}`),
        ...over,
    });
    const server = createServer((req, res) => void grid.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}${EVENTGRID_PATH}`;
    return {
        grid,
        endpoint,
        logs,
        publisher: new EventGridPublisher({ endpoint, key: grid.key }),
        async close() {
            await grid.stop();
            await new Promise<void>((r) => server.close(() => r()));
        },
    };
}

/** `n` events of a run, as the app maps its audit records. */
function runEvents(runId: string, n: number, type: EventType = 'stage.started'): MeshCloudEvent[] {
    let prev: AuditRecord | undefined;
    return Array.from({ length: n }, (_, i) => {
        prev = chainNext(
            prev,
            {
                eventId: `${runId}/${i}`,
                runId,
                type: i === 0 ? 'pipeline.queued' : type,
                at: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
                actor: 'system',
                correlationID: `corr-${runId}`,
            },
            TEST_KEYS.current,
        );
        return toCloudEvent(prev);
    });
}

function sub(name: string, endpoint: string, over: Partial<WebhookSubscription> = {}): WebhookSubscription {
    return { ...parseSubscriptions([{ name, endpoint }])[0]!, ...over };
}

let receiver: Receiver;
beforeEach(async () => {
    receiver = await new Receiver().start();
});
afterEach(() => receiver.stop());

// ---------------------------------------------------------------------------------------------------------------

describe('MESH_EVENT_SUBSCRIPTIONS', () => {
    it('reads a JSON array, or a JSON file by path', () => {
        const list = [
            { name: 'ops-hook', endpoint: 'http://127.0.0.1:9/hook', includedEventTypes: ['mesh.stage.failed'] },
        ];
        const fromValue = subscriptionsFromEnv({ MESH_EVENT_SUBSCRIPTIONS: JSON.stringify(list) }, '/');
        const dir = tempDir();
        writeFileSync(join(dir, 'subs.json'), JSON.stringify(list));
        const fromFile = subscriptionsFromEnv({ MESH_EVENT_SUBSCRIPTIONS: 'subs.json' }, dir);
        expect(fromValue).toEqual(fromFile);
        expect(fromValue).toEqual([
            {
                name: 'ops-hook',
                endpoint: 'http://127.0.0.1:9/hook',
                includedEventTypes: ['mesh.stage.failed'],
                retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 },
            },
        ]);
        expect(subscriptionsFromEnv({}, '/')).toEqual([]);
    });

    it.each([
        ['{}', /JSON array/],
        ['[{"name":"a","endpoint":"http://x/"}]', /name must be 3–64/],
        ['[{"name":"ok-name","endpoint":"mailto:x"}]', /endpoint must be an http/],
        ['[{"name":"ok-name","endpoint":"http://x/","includedEventTypes":[]}]', /non-empty array/],
        ['[{"name":"ok-name","endpoint":"http://x/","retryPolicy":{"maxDeliveryAttempts":31}}]', /from 1 to 30/],
        ['[{"name":"ok-name","endpoint":"http://x/"},{"name":"OK-NAME","endpoint":"http://y/"}]', /used twice/],
        ['[not json', /not JSON/],
        ['missing-file.json', /cannot be read/],
    ])('refuses %s', (value, message) => {
        expect(() => subscriptionsFromEnv({ MESH_EVENT_SUBSCRIPTIONS: value }, tempDir())).toThrow(message);
    });

    it('filters as Event Grid does: event types and subject prefix/suffix, case-insensitively', () => {
        const f = { includedEventTypes: ['Mesh.Stage.Completed'], subjectBeginsWith: '/pipelines/' };
        expect(matches(f, 'mesh.stage.completed', '/Pipelines/r1')).toBe(true);
        expect(matches(f, 'mesh.stage.started', '/pipelines/r1')).toBe(false);
        expect(matches(f, 'mesh.stage.completed', '/runs/r1')).toBe(false);
        expect(matches({ subjectEndsWith: '/r1' }, 'x', '/pipelines/r1')).toBe(true);
        expect(matches({}, 'anything', undefined)).toBe(true);
    });

    it('reads the retry scale', () => {
        expect(retryScaleFromEnv({})).toBe(1);
        expect(retryScaleFromEnv({ MESH_EVENTGRID_RETRY_SCALE: '0.001' })).toBe(0.001);
        expect(() => retryScaleFromEnv({ MESH_EVENTGRID_RETRY_SCALE: '0' })).toThrow(/positive/);
    });
});

describe("Event Grid's retry schedule", () => {
    it('waits 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then 12 h, scaled, with up to 10 % jitter', () => {
        const s = 1_000;
        const m = 60 * s;
        const h = 60 * m;
        const steps = Array.from({ length: 11 }, (_, i) => retryDelayMs(i + 1, 1, () => 0));
        expect(steps).toEqual([10 * s, 30 * s, m, 5 * m, 10 * m, 30 * m, h, 3 * h, 6 * h, 12 * h, 12 * h]);
        expect(retryDelayMs(1, 0.001, () => 0)).toBe(10);
        expect(retryDelayMs(1, 1, () => 0.999)).toBeLessThanOrEqual(11_000);
    });
});

describe('the topic endpoint', () => {
    it('accepts what the SDK publishes, and answers Event Grid errors otherwise', async () => {
        const t = await topic([]);
        try {
            await t.publisher.publish(runEvents('r1', 2));
            const post = (headers: Record<string, string>, body: string | Buffer) =>
                fetch(t.endpoint, { method: 'POST', headers, body });
            const ok = { 'aeg-sas-key': t.grid.key, 'content-type': 'application/cloudevents-batch+json' };
            expect((await post({ ...ok, 'aeg-sas-key': 'wrong' }, '[]')).status).toBe(401);
            expect((await post({ 'content-type': 'application/cloudevents-batch+json' }, '[]')).status).toBe(401);
            const wrongType = await post({ ...ok, 'content-type': 'application/json' }, '[]');
            expect(wrongType.status).toBe(400);
            expect(await wrongType.json()).toMatchObject({ error: { code: 'BadRequest' } });
            expect((await post(ok, JSON.stringify([{ specversion: '1.0', source: 's', type: 't' }]))).status).toBe(400);
            expect((await post(ok, Buffer.alloc(1_100_000, 32))).status).toBe(413);
            expect((await fetch(t.endpoint)).status).toBe(405);
            const single = { 'aeg-sas-key': t.grid.key, 'content-type': 'application/cloudevents+json' };
            expect((await post(single, JSON.stringify(runEvents('r2', 1)[0]))).status).toBe(200);
        } finally {
            await t.close();
        }
    });
});

describe('webhook delivery', () => {
    it('makes the handshake, then delivers each matching event alone in structured mode', async () => {
        const t = await topic([
            sub('everything', `${receiver.url}/all`),
            sub('completions', `${receiver.url}/done`, {
                includedEventTypes: ['mesh.stage.completed'],
                subjectBeginsWith: '/pipelines/r1',
            }),
        ]);
        try {
            t.grid.start();
            const events = [...runEvents('r1', 3, 'stage.completed'), ...runEvents('r2', 2, 'stage.completed')];
            await t.publisher.publish(events);
            await waitFor(() => receiver.deliveries.length === 7, '7 deliveries');
            expect(receiver.handshakes).toHaveLength(2);
            expect(receiver.handshakes[0]!['webhook-request-origin']).toBe(REQUEST_ORIGIN);
            expect(receiver.ids('/all').sort()).toEqual(events.map((e) => e.id).sort());
            expect(receiver.ids('/done')).toEqual(['r1:2', 'r1:3']);
            const d = receiver.deliveries.find((x) => x.path === '/all')!;
            expect(d.headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
            expect(d.headers['aeg-subscription-name']).toBe('EVERYTHING');
            expect(d.headers['aeg-delivery-count']).toBe('0');
            expect(events).toContainEqual(d.event);
        } finally {
            await t.close();
        }
    });

    it('retries failures on the (scaled) schedule, one subject in order, the others unhindered', async () => {
        const t = await topic([sub('everything', `${receiver.url}/all`)]);
        try {
            t.grid.start();
            receiver.answers.push(503, 500, 429, 404);
            const r1 = runEvents('r1', 5);
            const r2 = runEvents('r2', 5);
            await t.publisher.publish(r1.flatMap((e, i) => [e, r2[i]!]));
            await waitFor(() => receiver.deliveries.length === 10, '10 deliveries');
            const bySubject = (s: string) =>
                receiver.deliveries.filter((d) => d.event.subject === s).map((d) => d.event.data.seq);
            expect(bySubject('/pipelines/r1')).toEqual([1, 2, 3, 4, 5]);
            expect(bySubject('/pipelines/r2')).toEqual([1, 2, 3, 4, 5]);
            const counts = receiver.deliveries.map((d) => Number(d.headers['aeg-delivery-count']));
            expect(counts.reduce((a, b) => a + b, 0)).toBe(4);
            expect(t.logs.filter((l) => /failed \(attempt/.test(l))).toHaveLength(4);
        } finally {
            await t.close();
        }
    });

    it('delivers nothing until the endpoint answers the handshake', async () => {
        receiver.allowOrigin = undefined;
        const t = await topic([sub('guarded', `${receiver.url}/x`)]);
        try {
            t.grid.start();
            await t.publisher.publish(runEvents('r1', 2));
            await waitFor(() => receiver.handshakes.length >= 3, 'three handshakes');
            expect(receiver.deliveries).toHaveLength(0);
            expect(t.logs.join('\n')).toMatch(/allows origin ''/);
            receiver.allowOrigin = '*';
            await waitFor(() => receiver.deliveries.length === 2, 'both deliveries');
            expect(receiver.ids('/x')).toEqual(['r1:1', 'r1:2']);
        } finally {
            await t.close();
        }
    });

    it('dead-letters at once on an answer Event Grid does not retry, and the subject goes on', async () => {
        const t = await topic([sub('strict', `${receiver.url}/s`)]);
        try {
            t.grid.start();
            receiver.answers.push(400);
            await t.publisher.publish(runEvents('r1', 3));
            await waitFor(() => receiver.deliveries.length === 2, 'the other deliveries');
            expect(receiver.ids('/s')).toEqual(['r1:2', 'r1:3']);
            expect(t.grid.deadLetters()).toEqual([
                expect.objectContaining({
                    subscription: 'strict',
                    eventId: 'r1:1',
                    deadLetterReason: 'NonRetryableStatusCode',
                    deliveryAttempts: 1,
                    lastHttpStatusCode: 400,
                    lastDeliveryOutcome: 'BadRequest',
                    event: expect.objectContaining({ id: 'r1:1', type: 'mesh.pipeline.queued' }),
                }),
            ]);
        } finally {
            await t.close();
        }
    });

    it('keeps accepted events and dead letters sealed at rest, and delivers them as published', async () => {
        const dataDir = tempDir();
        const t = await topic([sub('strict', `${receiver.url}/s`)], { dataDir });
        try {
            t.grid.start();
            receiver.answers.push(400);
            const words = (n: number) => `CANARY-EG-${n} call ava@example.com`;
            const events = runEvents('r1', 2).map((e, i) => ({ ...e, data: { ...e.data, reason: words(i) } }));
            await t.publisher.publish(events);
            await waitFor(() => receiver.deliveries.length === 1 && t.grid.deadLetters().length === 1, 'both outcomes');
            expect(t.grid.deadLetters()[0]!.event).toMatchObject({ data: { reason: words(0) } });
            expect(JSON.stringify(receiver.deliveries)).toContain(words(1));
            // Every file of the topic's store (the database, its WAL and shared memory), read as bytes.
            for (const file of readdirSync(dataDir)) {
                const bytes = readFileSync(join(dataDir, file));
                expect({ file, found: bytes.includes('CANARY-EG-') }).toEqual({ file, found: false });
            }
        } finally {
            await t.close();
        }
    });

    it("dead-letters after the subscription's max delivery attempts, or when the event's time to live runs out", async () => {
        receiver.always.set('/down', 500);
        const t = await topic([
            sub('few-tries', `${receiver.url}/down`, {
                retryPolicy: { maxDeliveryAttempts: 3, eventTimeToLiveInMinutes: 1440 },
            }),
            // 1 minute at scale 0.001 is 60 ms: gone after the 10, 30 ms retries.
            sub('short-lived', `${receiver.url}/down`, {
                retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1 },
            }),
        ]);
        try {
            t.grid.start();
            await t.publisher.publish(runEvents('r1', 1));
            await waitFor(() => t.grid.deadLetters().length === 2, 'two dead letters');
            const letters = new Map(t.grid.deadLetters().map((l) => [l.subscription, l]));
            expect(letters.get('few-tries')).toMatchObject({
                deadLetterReason: 'MaxDeliveryAttemptsExceeded',
                deliveryAttempts: 3,
                lastHttpStatusCode: 500,
            });
            expect(letters.get('short-lived')).toMatchObject({ deadLetterReason: 'TimeToLiveExceeded' });
            expect(letters.get('short-lived')!.deliveryAttempts).toBeLessThan(6);
        } finally {
            await t.close();
        }
    });

    it('keeps pending deliveries across a stop and a new process on the same data directory', async () => {
        const dataDir = tempDir();
        receiver.always.set('/later', 503);
        const first = await topic([sub('later', `${receiver.url}/later`)], { dataDir, retryScale: 0.05 });
        first.grid.start();
        await first.publisher.publish(runEvents('r1', 3));
        await waitFor(() => first.logs.some((l) => /failed \(attempt 1\)/.test(l)), 'a failed attempt');
        const key = first.grid.key;
        await first.close();

        receiver.always.delete('/later');
        const second = await topic([sub('later', `${receiver.url}/later`)], { dataDir });
        try {
            expect(second.grid.key).toBe(key);
            second.grid.start();
            // The stored back-off (0.5 s after the first attempt, at scale 0.05) holds; then all three, in order.
            await waitFor(() => receiver.deliveries.length === 3, 'the three deliveries');
            expect(receiver.ids('/later')).toEqual(['r1:1', 'r1:2', 'r1:3']);
        } finally {
            await second.close();
        }
    });

    it('drops the pending deliveries of a subscription that is no longer configured', async () => {
        const dataDir = tempDir();
        receiver.always.set('/old', 503);
        const first = await topic([sub('old-hook', `${receiver.url}/old`)], { dataDir });
        first.grid.start();
        await first.publisher.publish(runEvents('r1', 2));
        await first.close();
        const second = await topic([], { dataDir });
        try {
            second.grid.start();
            expect(second.logs.join('\n')).toMatch(
                /subscription 'old-hook' is gone; dropping its 2 pending deliveries/,
            );
        } finally {
            await second.close();
        }
    });
});

describe('eventGridTrigger functions', () => {
    it('get every event in process, and a throw is retried like a failed webhook', async () => {
        const t = await topic([]);
        const got: string[] = [];
        let fail = 2;
        t.grid.subscribeFunction('onMeshEvent', (event) => {
            if (fail-- > 0) return Promise.reject(new Error('not yet'));
            got.push((event as MeshCloudEvent).id);
            return Promise.resolve();
        });
        try {
            t.grid.start();
            await t.publisher.publish(runEvents('r1', 3));
            await waitFor(() => got.length === 3, 'three invocations');
            expect(got).toEqual(['r1:1', 'r1:2', 'r1:3']);
            expect(t.grid.subscriptionNames()).toEqual(['function:onMeshEvent']);
        } finally {
            await t.close();
        }
    });
});
