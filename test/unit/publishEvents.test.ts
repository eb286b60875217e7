/** The publishEvents timer function: drains the outbox through the dispatcher, or says why it cannot. */
import { InvocationContext, type Timer } from '@azure/functions';

import { EventDispatcher } from '../../adapters/eventGrid/dispatcher';
import { chainNext } from '../../domain/audit';
import type { MeshCloudEvent } from '../../domain/events';
import type { EventOutbox, OutboxEntry } from '../../domain/ports';
import { publishEvents } from '../../functions/timer/publishEvents';
import { TEST_KEYS } from '../support/chainKeys';

const timer: Timer = {
    isPastDue: false,
    schedule: { adjustForDST: false },
    scheduleStatus: { last: '', next: '', lastUpdated: '' },
};

function context() {
    const logs: { level: string; text: string }[] = [];
    const ctx = new InvocationContext({
        functionName: 'publishEvents',
        logHandler: (level, ...args) => logs.push({ level, text: args.map(String).join(' ') }),
    });
    return { ctx, logs };
}

function outboxOf(n: number): EventOutbox & { entries: OutboxEntry[] } {
    let prev;
    const entries: OutboxEntry[] = [];
    for (let i = 0; i < n; i++) {
        prev = chainNext(
            prev,
            {
                eventId: `r1/${i}`,
                runId: 'r1',
                type: 'stage.started',
                at: '2025-01-01T00:00:00.000Z',
                actor: 'system',
                correlationID: 'c',
            },
            TEST_KEYS.current,
        );
        entries.push({ id: `r1:${prev.seq}`, runId: 'r1', seq: prev.seq, record: prev });
    }
    return {
        entries,
        pending: (limit) => Promise.resolve(entries.slice(0, limit)),
        pendingCount: () => Promise.resolve(entries.length),
        markPublished: (ids) => {
            for (const id of ids)
                entries.splice(
                    entries.findIndex((e) => e.id === id),
                    1,
                );
            return Promise.resolve();
        },
    };
}

describe('publishEvents', () => {
    it('drains the outbox and logs what it published', async () => {
        const outbox = outboxOf(3);
        const sent: MeshCloudEvent[] = [];
        const dispatcher = new EventDispatcher(outbox, {
            publish: (events) => {
                sent.push(...events);
                return Promise.resolve();
            },
        });
        const { ctx, logs } = context();
        await publishEvents(timer, ctx, { outbox, events: dispatcher });
        expect(sent.map((e) => e.id)).toEqual(['r1:1', 'r1:2', 'r1:3']);
        expect(outbox.entries).toEqual([]);
        expect(logs).toEqual([{ level: 'information', text: 'published 3 events; 0 failed requests; 0 waiting' }]);
        dispatcher.close();
    });

    it('warns when publishing is not configured and events wait', async () => {
        const { ctx, logs } = context();
        await publishEvents(timer, ctx, { outbox: outboxOf(1), events: undefined });
        expect(logs).toEqual([{ level: 'warning', text: expect.stringMatching(/EVENTGRID_ENDPOINT is not set/) }]);
        const quiet = context();
        await publishEvents(timer, quiet.ctx, { outbox: outboxOf(0), events: undefined });
        expect(quiet.logs).toEqual([]);
    });
});
