/**
 * The embedded host's Service Bus trigger, over a fixture app (test/fixtures/serviceBusApp): its `probe` function is
 * registered with `app.serviceBusQueue`, and the host feeds it from the embedded queue with peek-lock semantics.
 * Everything is observed over HTTP (the probe's own record of its deliveries) and the host's log.
 */
import { openSqliteQueue } from '../../adapters/embedded/sqliteQueue';
import { FunctionRegistration, FunctionRegistry } from '../../local/functionsCore';
import { durableClientData } from '../../local/invoke';
import { ServiceBusTriggerAdapter } from '../../local/triggers/serviceBus';
import type { ProbeDelivery, ProbeMessage } from '../fixtures/serviceBusApp/probeLog';
import { HostProcess, json, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(120_000);

const APP = 'dist/test/fixtures/serviceBusApp/**/*.js';
/** No mesh engines for this app; pointing at one skips starting the simulated ones. */
const ENV = {
    ENGINE_URL_GENERATION: 'http://127.0.0.1:9',
    MESH_QUEUE_MAX_DELIVERY: '3',
    MESH_QUEUE_LOCK_MS: '1000',
    // One delivery at a time (host.json has 8), the setting under which Service Bus order is strict.
    AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls: '1',
};

async function send(host: HostProcess, messages: ProbeMessage[]): Promise<void> {
    expect((await json(host.origin, 'POST', '/probe/send', messages)).status).toBe(202);
}

async function deliveries(host: HostProcess): Promise<ProbeDelivery[]> {
    return (await json<ProbeDelivery[]>(host.origin, 'GET', '/probe/deliveries')).body;
}

function handledAll(host: HostProcess, ids: string[]): Promise<ProbeDelivery[]> {
    return waitUntil(
        async () => {
            const all = await deliveries(host);
            const handled = new Set(all.filter((d) => d.event === 'handled').map((d) => d.id));
            return ids.every((id) => handled.has(id)) && all;
        },
        `${ids.join(', ')} to be handled`,
    );
}

const of = (all: ProbeDelivery[], ids: readonly string[]) => all.filter((d) => ids.includes(d.id));
const trace = (all: ProbeDelivery[]) => all.map((d) => `${d.id}#${d.deliveryCount}:${d.event}`);

describe('serviceBusTrigger on the embedded host', () => {
    let host: HostProcess;

    beforeAll(async () => {
        host = await startHostProcess({ appMain: APP, env: ENV });
    });

    afterAll(async () => {
        await host?.stop();
    });

    it('delivers in FIFO order, the message body as input and its metadata', async () => {
        const ids = Array.from({ length: 10 }, (_, i) => `fifo-${i}`);
        const before = Date.now();
        await send(
            host,
            ids.map((id) => ({ id })),
        );
        const all = of(await handledAll(host, ids), ids);
        expect(trace(all)).toEqual(ids.flatMap((id) => [`${id}#1:started`, `${id}#1:handled`]));
        for (const d of all) {
            expect(d.messageId).toBe(`msg-${d.id}`);
            expect(Date.parse(d.enqueuedTimeUtc)).toBeGreaterThanOrEqual(before - 1_000);
        }
    });

    it('delivers a message again after its handler threw, before anything behind it', async () => {
        const ids = ['retry-a', 'retry-b', 'retry-c'];
        await send(host, [{ id: 'retry-a', failTimes: 2 }, { id: 'retry-b', failTimes: 1 }, { id: 'retry-c' }]);
        const all = of(await handledAll(host, ids), ids);
        expect(trace(all)).toEqual([
            'retry-a#1:started',
            'retry-a#1:threw',
            'retry-a#2:started',
            'retry-a#2:threw',
            'retry-a#3:started',
            'retry-a#3:handled',
            'retry-b#1:started',
            'retry-b#1:threw',
            'retry-b#2:started',
            'retry-b#2:handled',
            'retry-c#1:started',
            'retry-c#1:handled',
        ]);
    });

    it('dead-letters a message after MESH_QUEUE_MAX_DELIVERY deliveries, with an error log, and moves on', async () => {
        await send(host, [{ id: 'poison', failTimes: 99 }, { id: 'after-poison' }]);
        const all = of(await handledAll(host, ['after-poison']), ['poison', 'after-poison']);
        expect(trace(all)).toEqual([
            'poison#1:started',
            'poison#1:threw',
            'poison#2:started',
            'poison#2:threw',
            'poison#3:started',
            'poison#3:threw',
            'after-poison#1:started',
            'after-poison#1:handled',
        ]);
        await waitUntil(
            () => Promise.resolve(/error.*dead-lettered message msg-poison .*after 3 deliveries/.test(host.output())),
            'the dead-letter error in the host log',
        );
    });
});

describe('serviceBusTrigger across kill -9', () => {
    it('delivers every message enqueued before the kill after the restart, the interrupted one again', async () => {
        const dataDir = tempDataDir('mesh-sb-crash-');
        const first = await startHostProcess({ appMain: APP, dataDir, env: ENV });
        const ids = Array.from({ length: 8 }, (_, i) => `crash-${i}`);
        let second: HostProcess | undefined;
        try {
            await send(
                first,
                ids.map((id) => ({ id, sleepMs: 300 })),
            );
            // Once the first is handled the second is under way: kill the host in the middle of it.
            await waitUntil(
                async () => (await deliveries(first)).some((d) => d.event === 'handled'),
                'a handled message',
            );
            await new Promise((r) => setTimeout(r, 100));
            first.child.kill('SIGKILL');
            await first.stop();

            second = await startHostProcess({ appMain: APP, dataDir, env: ENV });
            const restarted = second.child.pid!;
            const all = await handledAll(second, ids);
            const before = all.filter((d) => d.pid !== restarted);
            const after = all.filter((d) => d.pid === restarted);
            const handledBefore = before.filter((d) => d.event === 'handled').map((d) => d.id);
            const interrupted = before
                .filter((d) => d.event === 'started' && !handledBefore.includes(d.id))
                .map((d) => d.id);
            expect(handledBefore.length).toBeGreaterThan(0);
            expect(handledBefore.length).toBeLessThan(ids.length);
            expect(interrupted).toHaveLength(1);
            // Every message not handled before the kill is handled after it, exactly once.
            const handledAfter = after.filter((d) => d.event === 'handled').map((d) => d.id);
            expect([...handledAfter].sort()).toEqual(ids.filter((id) => !handledBefore.includes(id)).sort());
            // The interrupted one comes back when its lock expires, with its second delivery; the others in order.
            expect(after.find((d) => d.id === interrupted[0])).toMatchObject({ deliveryCount: 2 });
            const waiting = handledAfter.filter((id) => id !== interrupted[0]);
            expect(waiting).toEqual(ids.filter((id) => waiting.includes(id)));
            expect(after.filter((d) => d.id !== interrupted[0]).every((d) => d.deliveryCount === 1)).toBe(true);
        } finally {
            await second?.stop();
            await first.stop('SIGKILL');
        }
    });
});

describe('serviceBusTrigger adapter (in process)', () => {
    function registration(handler: (body: unknown) => Promise<void>): FunctionRegistration {
        const trigger = { type: 'serviceBusTrigger', direction: 'in' as const, queueName: 'q', connection: 'SB' };
        return { name: 'consumer', bindings: { message: trigger }, handler, triggerName: 'message', trigger };
    }

    function adapterFor(dataDir: string, maxConcurrentCalls: number, pollMs = 60_000) {
        const logs: string[] = [];
        const adapter = new ServiceBusTriggerAdapter({
            maxConcurrentCalls,
            maxDeliveryCount: 10,
            lockMs: 5_000,
            pollMs,
        });
        const host = {
            registry: new FunctionRegistry(),
            clientData: () => durableClientData('http://127.0.0.1:1', 'Hub', 'test-system-key'),
            log: (level: string, message: string) => logs.push(`${level} ${message}`),
            dataDir,
        };
        return { adapter, host, logs };
    }

    it('runs up to maxConcurrentCalls handlers at once, and a send in process wakes it at once', async () => {
        const dataDir = tempDataDir('mesh-sb-conc-');
        let running = 0;
        let most = 0;
        const handled: unknown[] = [];
        // A poll interval of a minute: only the in-process send notification can deliver within the test.
        const { adapter, host } = adapterFor(dataDir, 3);
        adapter.start(
            [
                registration(async (body) => {
                    most = Math.max(most, ++running);
                    await new Promise((r) => setTimeout(r, 40));
                    running--;
                    handled.push(body);
                }),
            ],
            host,
        );
        const sender = openSqliteQueue(dataDir);
        try {
            for (let n = 0; n < 9; n++) await sender.send('q', n);
            await waitUntil(() => Promise.resolve(handled.length === 9), 'nine messages handled', 5_000);
            expect(most).toBe(3);
            expect([...handled].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
            await expect(sender.count('q')).resolves.toBe(0);
        } finally {
            await adapter.stop();
            sender.close();
        }
    });

    it('stop() waits for the running handler, and starts nothing after', async () => {
        const dataDir = tempDataDir('mesh-sb-stop-');
        const { adapter, host } = adapterFor(dataDir, 1, 20);
        let release: () => void = () => undefined;
        const invoked: unknown[] = [];
        adapter.start(
            [
                registration(async (body) => {
                    invoked.push(body);
                    if (body === 'slow') await new Promise<void>((r) => (release = r));
                }),
            ],
            host,
        );
        const sender = openSqliteQueue(dataDir);
        try {
            await sender.send('q', 'slow');
            await waitUntil(() => Promise.resolve(invoked.length === 1), 'the slow handler to start', 5_000);
            let stopped = false;
            const stopping = adapter.stop().then(() => (stopped = true));
            await sender.send('q', 'after-stop');
            await new Promise((r) => setTimeout(r, 100));
            expect(stopped).toBe(false);
            release();
            await stopping;
            await new Promise((r) => setTimeout(r, 100));
            expect(invoked).toEqual(['slow']);
            // The slow one was completed; the one sent during stop waits for the next start.
            await expect(sender.count('q')).resolves.toBe(1);
            const next = await sender.receive('q', 1_000);
            expect(next).toMatchObject({ body: 'after-stop' });
        } finally {
            sender.close();
        }
    });
});
