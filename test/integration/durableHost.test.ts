import { join } from 'node:path';

/**
 * The embedded host drives the real durable-functions SDK: every scenario starts through an HTTP starter
 * function that uses df.getClient(), and is observed only over HTTP.
 */
import { Fixture } from '../fixtures/durableApp/contract';
import { hostKeys } from '../support/hostKeys';
import { FIXTURE_APP, HostProcess, json, startHostProcess, waitUntil } from '../support/hostProcess';

const O = Fixture.orchestrators;

interface Status {
    runtimeStatus: string;
    output: unknown;
    customStatus: unknown;
    history?: { EventType: string; Name?: string; TaskScheduledId?: number }[];
}

let host: HostProcess;

// The DurableClient inside the app reaches the management API in-process (the default) or over real HTTP; both
// carry the host's system key, which the management API requires.
describe.each(['in-process', 'http'] as const)('with the durable client transport %s', (transport) => {
    beforeAll(async () => {
        host = await startHostProcess({
            appMain: FIXTURE_APP,
            ...(transport === 'http' ? { env: { MESH_DURABLE_CLIENT_TRANSPORT: 'http' } } : {}),
        });
    });

    afterAll(async () => {
        await host?.stop();
    });

    async function start(name: string, input?: unknown, id?: string): Promise<string> {
        const r = await json<{ id: string; statusQueryGetUri: string }>(
            host.origin,
            'POST',
            `/test/orchestrators/${name}${id ? `/${id}` : ''}`,
            input,
        );
        expect(r.status).toBe(202);
        expect(r.headers.get('location')).toBe(r.body.statusQueryGetUri);
        expect(r.body.statusQueryGetUri.startsWith(host.origin)).toBe(true);
        return r.body.id;
    }

    async function status(id: string, history = false): Promise<Status> {
        return (await json<Status>(host.origin, 'GET', `/test/instances/${id}${history ? '?history=true' : ''}`)).body;
    }

    async function finished(id: string, history = false): Promise<Status> {
        return waitUntil(async () => {
            const s = await status(id, history);
            return ['Completed', 'Failed', 'Terminated'].includes(s.runtimeStatus) && s;
        }, `${id} to finish`);
    }

    async function reached(id: string, runtimeStatus: string, custom?: unknown): Promise<Status> {
        return waitUntil(async () => {
            const s = await status(id);
            return (
                s.runtimeStatus === runtimeStatus &&
                (custom === undefined || JSON.stringify(s.customStatus) === JSON.stringify(custom)) &&
                s
            );
        }, `${id} to be ${runtimeStatus}`);
    }

    async function control(id: string, op: string, event?: string, body?: unknown): Promise<number> {
        return (
            await json(
                host.origin,
                'POST',
                `/test/instances/${id}/${op}${event ? `/${event}` : ''}?reason=because`,
                body,
            )
        ).status;
    }

    it('runs a sequence of activities', async () => {
        const s = await finished(await start(O.sequence));
        expect(s).toMatchObject({
            runtimeStatus: 'Completed',
            output: ['Hello Tokyo!', 'Hello Seattle!', 'Hello London!'],
        });
    });

    it('fans out and in', async () => {
        const s = await finished(await start(O.fanOut, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        expect(s).toMatchObject({ runtimeStatus: 'Completed', output: 110 });
    });

    it('approval race: the event wins and the timer is cancelled', async () => {
        const id = await start(O.approval, { timeoutMs: 60_000 });
        await reached(id, 'Running', { waitingFor: 'Approval' });
        expect(await control(id, 'raise', 'Approval', { approved: true, by: 'ava' })).toBe(202);
        const s = await finished(id);
        expect(s).toMatchObject({
            runtimeStatus: 'Completed',
            output: { greeting: 'Hello approver!', decision: { approved: true, by: 'ava' } },
        });
    });

    it('approval race: the durable timer wins when nobody answers', async () => {
        const s = await finished(await start(O.approval, { timeoutMs: 300 }));
        expect(s).toMatchObject({ runtimeStatus: 'Completed', output: { decision: 'timeout' } });
    });

    it('buffers an event raised before the orchestrator waits for it', async () => {
        const id = await start(O.approval, { timeoutMs: 60_000 }, `early-${Date.now()}`);
        expect(await control(id, 'raise', 'Approval', 'early bird')).toBe(202);
        expect(await finished(id)).toMatchObject({ runtimeStatus: 'Completed', output: { decision: 'early bird' } });
    });

    it('retries a failing activity until it succeeds, with back-off timers in history', async () => {
        const s = await finished(await start(O.retrySuccess, { key: `k-${Date.now()}`, failTimes: 2 }), true);
        expect(s).toMatchObject({ runtimeStatus: 'Completed', output: 'ok after 3 attempts' });
        const kinds = s
            .history!.map((e) => e.EventType)
            .filter((t) => ['TaskScheduled', 'TaskFailed', 'TimerCreated', 'TimerFired', 'TaskCompleted'].includes(t));
        expect(kinds).toEqual([
            'TaskScheduled',
            'TaskFailed',
            'TimerCreated',
            'TimerFired',
            'TaskScheduled',
            'TaskFailed',
            'TimerCreated',
            'TimerFired',
            'TaskScheduled',
            'TaskCompleted',
        ]);
    });

    it('gives up after the last retry: caught in the orchestrator', async () => {
        const s = await finished(await start(O.retryExhausted));
        expect(s.runtimeStatus).toBe('Completed');
        expect(s.output).toBe("caught: Activity function 'fx_alwaysFails' failed: this activity always fails");
    });

    it('gives up after the last retry: uncaught fails the instance', async () => {
        const s = await finished(await start(O.retryUncaught));
        expect(s.runtimeStatus).toBe('Failed');
        expect(String(s.output)).toContain('this activity always fails');
    });

    it('runs a sub-orchestration', async () => {
        const s = await finished(await start(O.parent, ['a', 'b']));
        expect(s).toMatchObject({
            runtimeStatus: 'Completed',
            output: { child: ['Hello a!', 'Hello b!'], doubled: 4 },
        });
    });

    it('continues as new with fresh history', async () => {
        const s = await finished(await start(O.loop, { n: 0, max: 4 }), true);
        expect(s).toMatchObject({ runtimeStatus: 'Completed', output: 'looped 4 times' });
        expect(s.history!.filter((e) => e.EventType === 'TaskScheduled')).toHaveLength(0);
    });

    it('signals and calls an entity, and the client reads and signals it', async () => {
        const key = `c-${Date.now()}`;
        const s = await finished(await start(O.entityCounter, key));
        expect(s).toMatchObject({ runtimeStatus: 'Completed', output: 15 });
        expect(
            (await json(host.origin, 'POST', `/test/entities/${Fixture.entities.counter}/${key}/add`, 100)).status,
        ).toBe(202);
        const state = await waitUntil(async () => {
            const r = await json<{ entityExists: boolean; entityState: number }>(
                host.origin,
                'GET',
                `/test/entities/${Fixture.entities.counter}/${key}`,
            );
            return r.body.entityState === 115 && r.body;
        }, 'entity state 115');
        expect(state).toEqual({ entityExists: true, entityState: 115 });
    });

    it('rolls back the state of a failed entity operation', async () => {
        const key = `f-${Date.now()}`;
        await json(host.origin, 'POST', `/test/entities/${Fixture.entities.counter}/${key}/add`, 7);
        await json(host.origin, 'POST', `/test/entities/${Fixture.entities.counter}/${key}/fail`);
        await json(host.origin, 'POST', `/test/entities/${Fixture.entities.counter}/${key}/add`, 1);
        const state = await waitUntil(async () => {
            const r = await json<{ entityState: number }>(
                host.origin,
                'GET',
                `/test/entities/${Fixture.entities.counter}/${key}`,
            );
            return r.body.entityState === 8 && r.body;
        }, 'entity state 8 (the failed operation rolled back)');
        expect(state).toMatchObject({ entityState: 8 });
    });

    it('suspends and resumes: events wait while suspended', async () => {
        const id = await start(O.waitForGo);
        await reached(id, 'Running');
        expect(await control(id, 'suspend')).toBe(202);
        await reached(id, 'Suspended');
        expect(await control(id, 'raise', 'Go', 'now')).toBe(202);
        await new Promise((r) => setTimeout(r, 200));
        expect((await status(id)).runtimeStatus).toBe('Suspended');
        expect(await control(id, 'resume')).toBe(202);
        expect(await finished(id)).toMatchObject({
            runtimeStatus: 'Completed',
            output: { go: 'now', greeting: 'Hello after go!' },
        });
    });

    it('terminates, then refuses events to the terminated instance, and purges it', async () => {
        const id = await start(O.waitForGo);
        await reached(id, 'Running');
        expect(await control(id, 'terminate')).toBe(202);
        expect(await finished(id)).toMatchObject({ runtimeStatus: 'Terminated', output: 'because' });
        expect(await control(id, 'raise', 'Go', 'late')).toBe(202); // the client treats 410 Gone as done
        expect((await json(host.origin, 'DELETE', `/test/instances/${id}`)).body).toEqual({ instancesDeleted: 1 });
        expect((await json(host.origin, 'GET', `/test/instances/${id}`)).status).toBe(404);
    });

    it('lists instances by runtime status', async () => {
        const id = await start(O.waitForGo);
        await reached(id, 'Running');
        const list = (
            await json<{ instanceId: string; runtimeStatus: string }[]>(
                host.origin,
                'GET',
                '/test/instances?status=Running',
            )
        ).body;
        expect(list.map((i) => i.instanceId)).toContain(id);
        await control(id, 'terminate');
    });

    it('refuses a second start of a running instance id', async () => {
        const id = `dup-${Date.now()}`;
        await start(O.waitForGo, undefined, id);
        const r = await json(host.origin, 'POST', `/test/orchestrators/${O.waitForGo}/${id}`);
        expect(r.status).toBe(500); // the starter did not catch the client's error: a bare 500, as on Azure
        await control(id, 'terminate');
    });

    it('fails an instance whose code no longer matches its history (non-determinism)', async () => {
        // Its second episode replays the first with different module state: the recorded task no longer matches.
        const s = await finished(await start(O.nonDeterministic));
        expect(s.runtimeStatus).toBe('Failed');
        expect(String(s.output)).toMatch(
            /Non-deterministic workflow detected: task #0 was TaskScheduled 'fx_(hello|double)'/,
        );
    });

    it('streams a response body (SSE) as it is produced', async () => {
        const r = await fetch(`${host.origin}/test/stream`);
        expect(r.headers.get('content-type')).toBe('text/event-stream');
        expect(await r.text()).toBe('data: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\n');
    });

    it('enforces authLevel function with the host key', async () => {
        expect((await fetch(`${host.origin}/test/keyed`)).status).toBe(401);
        const keys = hostKeys(join(host.dataDir, 'keys'));
        expect((await fetch(`${host.origin}/test/keyed?code=${keys.functionKey}`)).status).toBe(200);
        expect((await fetch(`${host.origin}/test/keyed?code=${keys.masterKey}`)).status).toBe(200);
        expect((await fetch(`${host.origin}/test/keyed?code=${keys.functionKey}x`)).status).toBe(401);
    });

    it('answers unknown routes with 404 in the envelope', async () => {
        const r = await json<{ error_code: string }>(host.origin, 'GET', '/no/such/route');
        expect(r.status).toBe(404);
        expect(r.body.error_code).toBe('NOT_FOUND');
    });

    it('runs timer-triggered functions on their NCRONTAB schedule', async () => {
        const state = await waitUntil(
            async () => {
                const r = await json<{ entityExists: boolean; entityState: number }>(
                    host.origin,
                    'GET',
                    `/test/entities/${Fixture.entities.counter}/ticks`,
                );
                return r.body.entityExists && r.body.entityState >= 2 && r.body;
            },
            'two timer ticks',
            10_000,
            200,
        );
        expect(state.entityState).toBeGreaterThanOrEqual(2);
    });
});
