/**
 * The embedded host's episode function (local/durable/replay.ts `runEpisode`), driven episode by episode with the
 * host's own appended history, a fixed clock and deterministic entity request ids: which new work it discovers
 * (task ids, inputs, timers, sub-orchestration ids, entity requests), retry back-off, the non-determinism check and
 * every outcome.
 */
import * as df from 'durable-functions';
import { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { createOrchestrator } from 'durable-functions/lib/src/util/testingUtils';

import { event, EventType, HistoryEvent, toJson } from '../../local/durable/history';
import { EpisodeResult, runEpisode } from '../../local/durable/replay';
import { Fixture } from '../fixtures/durableApp/contract';
import {
    approval,
    chain,
    entityCounter,
    fanOut,
    loop,
    parent,
    retrySuccess,
    retryUncaught,
    sequence,
    waitForGo,
} from '../fixtures/durableApp/fixtureOrchestrators.orchestrator';
import { T0 } from '../support/durable';

const A = Fixture.activities;
const O = Fixture.orchestrators;

/** Seconds after T0. */
const at = (s: number) => new Date(T0.getTime() + s * 1000);

/**
 * One orchestration instance on the host: every episode replays what earlier episodes appended, as the engine
 * does. `use` swaps in other code under the same history (a deployment that changed a running instance).
 */
class Instance {
    past: HistoryEvent[] = [];
    private handler: ReturnType<typeof createOrchestrator>;
    private requests = 0;

    constructor(
        fn: OrchestrationHandler,
        readonly name: string,
        readonly input: unknown,
        readonly instanceId = 'inst-1',
    ) {
        this.handler = createOrchestrator(fn);
    }

    use(fn: OrchestrationHandler): this {
        this.handler = createOrchestrator(fn);
        return this;
    }

    start(s = 0): Promise<EpisodeResult> {
        return this.episode(s, [
            event(EventType.ExecutionStarted, at(s), { Name: this.name, Input: toJson(this.input) }),
        ]);
    }

    async episode(s: number, incoming: HistoryEvent[]): Promise<EpisodeResult> {
        const result = await runEpisode(this.handler, {
            name: this.name,
            instanceId: this.instanceId,
            parentInstanceId: null,
            input: this.input,
            past: this.past,
            incoming,
            now: at(s),
            newRequestId: () => `req-${++this.requests}`,
        });
        this.past = [...this.past, ...result.appended];
        return result;
    }
}

const completed = (id: number, result: unknown) =>
    event(EventType.TaskCompleted, T0, { TaskScheduledId: id, Result: toJson(result) });
const failed = (id: number, reason: string) =>
    event(EventType.TaskFailed, T0, { TaskScheduledId: id, Reason: reason, Details: reason });
const fired = (id: number, s: number) =>
    event(EventType.TimerFired, at(s), { TimerId: id, FireAt: at(s).toISOString() });
const raised = (name: string, data: unknown) => event(EventType.EventRaised, T0, { Name: name, Input: toJson(data) });
const entityAnswer = (requestId: string, result: unknown) =>
    event(EventType.EventRaised, T0, { Name: requestId, Input: JSON.stringify({ result: toJson(result) }) });
const types = (r: EpisodeResult) => r.appended.map((e) => EventType[e.EventType]);

describe('new work discovery', () => {
    it('schedules activities one by one with sequential task ids and decoded inputs', async () => {
        const i = new Instance(sequence, O.sequence, ['Tokyo', 'Seattle']);
        const first = await i.start();
        expect(first.outcome).toEqual({ status: 'running' });
        expect(first.work).toEqual([{ kind: 'activity', taskId: 0, name: A.hello, input: 'Tokyo' }]);
        expect(types(first)).toEqual([
            'OrchestratorStarted',
            'ExecutionStarted',
            'TaskScheduled',
            'OrchestratorCompleted',
        ]);
        expect(first.appended[2]).toMatchObject({ EventId: 0, Name: A.hello, Input: '"Tokyo"' });

        const second = await i.episode(1, [completed(0, 'Hello Tokyo!')]);
        expect(second.work).toEqual([{ kind: 'activity', taskId: 1, name: A.hello, input: 'Seattle' }]);

        const done = await i.episode(2, [completed(1, 'Hello Seattle!')]);
        expect(done.outcome).toEqual({ status: 'completed', output: ['Hello Tokyo!', 'Hello Seattle!'] });
        expect(done.work).toEqual([]);
        expect(done.appended.at(-1)).toMatchObject({
            EventType: EventType.ExecutionCompleted,
            OrchestrationStatus: 'Completed',
            Result: '["Hello Tokyo!","Hello Seattle!"]',
        });
    });

    it('schedules a whole fan-out in one episode', async () => {
        const r = await new Instance(fanOut, O.fanOut, [1, 2, 3]).start();
        expect(r.work).toEqual([1, 2, 3].map((n, id) => ({ kind: 'activity', taskId: id, name: A.double, input: n })));
    });

    it('creates a durable timer at now + timeout', async () => {
        const i = new Instance(approval, O.approval, { timeoutMs: 60_000 });
        await i.start();
        const r = await i.episode(10, [completed(0, 'Hello approver!')]);
        expect(r.work).toEqual([{ kind: 'timer', taskId: 1, fireAt: at(70) }]);
        expect(r.appended.find((e) => e.EventType === EventType.TimerCreated)).toMatchObject({
            EventId: 1,
            FireAt: at(70).toISOString(),
        });
    });

    it('starts a sub-orchestration under a deterministic instance id derived from the task id', async () => {
        const r = await new Instance(parent, O.parent, ['Oslo']).start();
        expect(r.work).toEqual([
            {
                kind: 'subOrchestration',
                taskId: 0,
                name: O.sequence,
                instanceId: 'inst-1:0000',
                input: ['Oslo'],
                version: undefined,
            },
        ]);
        expect(r.appended[2]).toMatchObject({
            EventType: EventType.SubOrchestrationInstanceCreated,
            EventId: 0,
            Name: O.sequence,
            InstanceId: 'inst-1:0000',
            Input: '["Oslo"]',
        });
    });

    it('numbers a later sub-orchestration by its own task id, and keeps an explicit instance id', async () => {
        const twoChildren = function* (ctx: OrchestrationContext) {
            yield ctx.df.callActivity(A.hello, 'first');
            yield ctx.df.Task.all([
                ctx.df.callSubOrchestrator(O.sequence, ['a']),
                ctx.df.callSubOrchestrator(O.sequence, ['b'], 'child-b'),
            ]);
        };
        const i = new Instance(twoChildren, 'twoChildren', null);
        await i.start();
        const r = await i.episode(1, [completed(0, 'Hello first!')]);
        expect(r.work.map((w) => (w.kind === 'subOrchestration' ? [w.taskId, w.instanceId] : w.kind))).toEqual([
            [1, 'inst-1:0001'],
            [2, 'child-b'],
        ]);
    });

    it('calls an entity through EventSent with a request id, and signals it fire-and-forget', async () => {
        const i = new Instance(entityCounter, O.entityCounter, 'k1');
        const entity = '@fx_counter@k1';
        const first = await i.start();
        // signalEntity consumes task id 0, so the call is #1; entity calls get their request ids before signals.
        expect(first.work).toEqual([
            { kind: 'entityCall', taskId: 1, entityId: entity, operation: 'add', input: 10, requestId: 'req-1' },
            { kind: 'entitySignal', entityId: entity, operation: 'add', input: 5, requestId: 'req-2' },
        ]);
        const sent = first.appended.filter((e) => e.EventType === EventType.EventSent);
        expect(sent).toMatchObject([
            { EventId: 1, InstanceId: entity, Name: 'add' },
            { EventId: -1, InstanceId: entity, Name: 'add', Signal: true },
        ]);
        expect(JSON.parse(sent[0]!.Input!)).toEqual({ id: 'req-1', op: 'add', signal: false, parent: 'inst-1' });

        // The signal is sent once: later episodes count the signals already in history.
        const second = await i.episode(1, [entityAnswer('req-1', 15)]);
        expect(second.work).toEqual([
            { kind: 'entityCall', taskId: 2, entityId: entity, operation: 'get', input: undefined, requestId: 'req-3' },
        ]);

        const done = await i.episode(2, [entityAnswer('req-3', 15)]);
        expect(done.outcome).toEqual({ status: 'completed', output: 15 });
    });

    it('does not schedule anything for an external event', async () => {
        const r = await new Instance(waitForGo, O.waitForGo, null).start();
        expect(r).toMatchObject({ outcome: { status: 'running' }, work: [] });
        expect(types(r)).toEqual(['OrchestratorStarted', 'ExecutionStarted', 'OrchestratorCompleted']);
    });
});

describe('retry back-off', () => {
    const backoff = (options: Partial<df.RetryOptions>) =>
        function* (ctx: OrchestrationContext) {
            const retry = Object.assign(new df.RetryOptions(1000, 4), options);
            return (yield ctx.df.callActivityWithRetry(A.flaky, retry, 'x')) as unknown;
        };

    /** Fails every attempt; returns each back-off timer's delay in ms and the task ids used. */
    async function delays(fn: OrchestrationHandler): Promise<{ delays: number[]; ids: number[]; last: EpisodeResult }> {
        const i = new Instance(fn, 'retrying', null);
        let r = await i.start();
        const out = { delays: [] as number[], ids: [] as number[], last: r };
        let s = 0;
        for (let attempt = 1; attempt <= 4; attempt++) {
            const work = r.work[0];
            if (work?.kind !== 'activity')
                throw new Error(`attempt ${attempt}: expected an activity, got ${JSON.stringify(r.work)}`);
            out.ids.push(work.taskId);
            r = await i.episode(++s, [failed(work.taskId, `failure ${attempt}`)]);
            const timer = r.work[0];
            if (timer?.kind !== 'timer')
                throw new Error(`attempt ${attempt}: expected a back-off timer, got ${JSON.stringify(r.work)}`);
            out.ids.push(timer.taskId);
            out.delays.push(timer.fireAt.getTime() - at(s).getTime());
            r = await i.episode(++s, [fired(timer.taskId, s)]);
        }
        out.last = r;
        return out;
    }

    it('waits firstRetryInterval × backoff^(n-1) before retry n, with ids alternating attempt/timer', async () => {
        const r = await delays(backoff({ backoffCoefficient: 2 }));
        expect(r.delays).toEqual([1000, 2000, 4000, 8000]);
        expect(r.ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(r.last.outcome).toMatchObject({ status: 'failed', error: expect.stringContaining('failure 4') });
    });

    it('defaults the coefficient to 1 and caps the delay at maxRetryInterval', async () => {
        expect((await delays(backoff({}))).delays).toEqual([1000, 1000, 1000, 1000]);
        expect((await delays(backoff({ backoffCoefficient: 2, maxRetryIntervalInMilliseconds: 3000 }))).delays).toEqual(
            [1000, 2000, 3000, 3000],
        );
    });

    it('retries the fixture and completes with the attempt that succeeded', async () => {
        const input = { key: 'k', failTimes: 1 };
        const i = new Instance(retrySuccess, O.retrySuccess, input);
        expect((await i.start()).work).toEqual([{ kind: 'activity', taskId: 0, name: A.flaky, input }]);
        expect((await i.episode(1, [failed(0, 'flaky failure 1 of 1')])).work).toEqual([
            { kind: 'timer', taskId: 1, fireAt: new Date(at(1).getTime() + 50) },
        ]);
        expect((await i.episode(2, [fired(1, 2)])).work).toEqual([
            { kind: 'activity', taskId: 2, name: A.flaky, input },
        ]);
        expect((await i.episode(3, [completed(2, 'ok after 2 attempts')])).outcome).toEqual({
            status: 'completed',
            output: 'ok after 2 attempts',
        });
    });
});

describe('non-determinism check', () => {
    it('fails when the replayed code schedules a different activity under a recorded task id', async () => {
        const i = new Instance(sequence, O.sequence, [1]);
        await i.start(); // recorded: TaskScheduled #0 fx_hello
        const r = await i.use(fanOut).episode(1, [completed(0, 'Hello 1!')]); // the code now schedules fx_double first
        expect(r.outcome).toMatchObject({ status: 'failed', nonDeterministic: true });
        const error = (r.outcome as { error: string }).error;
        expect(error).toMatch(/^Non-deterministic workflow detected: /);
        expect(error).toContain(`'${A.hello}'`);
        expect(error).toContain(`'${A.double}'`);
        expect(r.work).toEqual([]);
        expect(r.appended.at(-1)).toMatchObject({
            EventType: EventType.ExecutionCompleted,
            OrchestrationStatus: 'Failed',
            Result: toJson(error),
        });
    });

    it('fails when history has a scheduled task the code no longer schedules', async () => {
        const i = new Instance(sequence, O.sequence, ['x']);
        await i.start(); // recorded: TaskScheduled #0 fx_hello
        const r = await i.use(waitForGo).episode(1, [raised('Unrelated', null)]);
        expect(r.outcome).toMatchObject({ status: 'failed', nonDeterministic: true });
        expect((r.outcome as { error: string }).error).toContain(
            `TaskScheduled #0 (${A.hello}) but the replayed code did not schedule it`,
        );
    });

    it('fails when a recorded timer is now an activity', async () => {
        const i = new Instance(approval, O.approval, { timeoutMs: 1000 });
        await i.start();
        await i.episode(1, [completed(0, 'Hello approver!')]); // recorded: #0 fx_hello, #1 TimerCreated
        const twoGreetings = function* (ctx: OrchestrationContext) {
            yield ctx.df.callActivity(A.hello, 'approver');
            yield ctx.df.callActivity(A.hello, 'again');
        };
        const r = await i.use(twoGreetings).episode(2, [fired(1, 2)]); // #1 is now fx_hello
        expect(r.outcome).toMatchObject({ status: 'failed', nonDeterministic: true });
        expect((r.outcome as { error: string }).error).toContain(
            `task #1 was TimerCreated '' in history but the replayed code scheduled TaskScheduled '${A.hello}'`,
        );
    });

    it('accepts the same code replaying its own history (control)', async () => {
        const i = new Instance(sequence, O.sequence, ['x', 'y']);
        await i.start();
        const r = await i.episode(1, [completed(0, 'Hello x!')]);
        expect(r.outcome).toEqual({ status: 'running' });
    });
});

describe('outcomes', () => {
    it('reports an orchestrator that throws as failed, naming the orchestrator', async () => {
        const boom = function* (ctx: OrchestrationContext) {
            yield ctx.df.callActivity(A.hello, 'x');
            ctx.df.setCustomStatus({ stage: 'exploding' });
            throw new Error('orchestrator blew up');
        };
        const i = new Instance(boom, 'fx_boom', null);
        await i.start();
        const r = await i.episode(1, [completed(0, 'Hello x!')]);
        expect(r.outcome).toMatchObject({
            status: 'failed',
            error: "Orchestrator function 'fx_boom' failed: orchestrator blew up",
        });
        expect(r.customStatus).toEqual({ stage: 'exploding' });
        expect(r.work).toEqual([]);
        expect(types(r).slice(-2)).toEqual(['OrchestratorCompleted', 'ExecutionCompleted']);
        expect(r.appended.at(-1)).toMatchObject({
            OrchestrationStatus: 'Failed',
            Result: toJson("Orchestrator function 'fx_boom' failed: orchestrator blew up"),
        });
    });

    it('fails the orchestrator when retries are exhausted and the error is not caught', async () => {
        const i = new Instance(retryUncaught, O.retryUncaught, null);
        await i.start();
        await i.episode(1, [failed(0, "Activity function 'fx_alwaysFails' failed: this activity always fails")]);
        await i.episode(2, [fired(1, 2)]);
        await i.episode(3, [failed(2, "Activity function 'fx_alwaysFails' failed: this activity always fails")]);
        const r = await i.episode(4, [fired(3, 4)]);
        expect(r.outcome).toMatchObject({
            status: 'failed',
            error: expect.stringMatching(
                /^Orchestrator function 'fx_retryUncaught' failed: Activity function 'fx_alwaysFails' failed: this activity always fails/,
            ),
        });
    });

    it('continues as new with the next input', async () => {
        const i = new Instance(loop, O.loop, { n: 0, max: 2 });
        expect((await i.start()).work).toEqual([{ kind: 'activity', taskId: 0, name: A.double, input: 0 }]);
        const r = await i.episode(1, [completed(0, 0)]);
        expect(r.outcome).toEqual({ status: 'continuedAsNew', input: { n: 1, max: 2 } });
        expect(r.appended.at(-1)).toMatchObject({ EventType: EventType.ContinueAsNew, Input: '{"n":1,"max":2}' });
    });

    it('decodes a string continueAsNew input once', async () => {
        const again = function* (ctx: OrchestrationContext) {
            yield ctx.df.callActivity(A.hello, 'x');
            ctx.df.continueAsNew('next round');
        };
        const i = new Instance(again, 'again', null);
        await i.start();
        expect((await i.episode(1, [completed(0, 'Hello x!')])).outcome).toEqual({
            status: 'continuedAsNew',
            input: 'next round',
        });
    });

    it('completes with an undefined output stored as null', async () => {
        const nothing = function* (ctx: OrchestrationContext) {
            yield ctx.df.callActivity(A.hello, 'x');
        };
        const i = new Instance(nothing, 'nothing', null);
        await i.start();
        const r = await i.episode(1, [completed(0, 'Hello x!')]);
        expect(r.outcome).toEqual({ status: 'completed', output: undefined });
        expect(r.appended.at(-1)).toMatchObject({ OrchestrationStatus: 'Completed', Result: 'null' });
    });

    it('reports the timer an event beat as cancelled', async () => {
        const i = new Instance(approval, O.approval, { timeoutMs: 60_000 });
        await i.start();
        await i.episode(1, [completed(0, 'Hello approver!')]);
        const r = await i.episode(30, [raised(Fixture.events.approval, 'approved')]);
        expect(r.outcome).toEqual({
            status: 'completed',
            output: { greeting: 'Hello approver!', decision: 'approved' },
        });
        expect(r.cancelledTimers).toEqual([1]);
    });

    it('reports no cancelled timer when the timer wins', async () => {
        const i = new Instance(approval, O.approval, { timeoutMs: 60_000 });
        await i.start();
        await i.episode(1, [completed(0, 'Hello approver!')]);
        const r = await i.episode(61, [fired(1, 61)]);
        expect(r.outcome).toEqual({
            status: 'completed',
            output: { greeting: 'Hello approver!', decision: 'timeout' },
        });
        expect(r.cancelledTimers).toEqual([]);
    });

    it('passes the custom status through', async () => {
        const i = new Instance(approval, O.approval, { timeoutMs: 60_000 });
        expect((await i.start()).customStatus).toBeUndefined();
        expect((await i.episode(1, [completed(0, 'Hello approver!')])).customStatus).toEqual({
            waitingFor: Fixture.events.approval,
        });

        const c = new Instance(chain, O.chain, { steps: 0, approval: true, stepDelayMs: 0 });
        expect((await c.start()).customStatus).toBe('awaiting approval');
    });

    it('fails an orchestrator that uses a feature the host does not support', async () => {
        const http = function* (ctx: OrchestrationContext) {
            yield ctx.df.callHttp({ method: 'GET', url: 'https://example.invalid/' });
        };
        const r = await new Instance(http, 'fx_http', null).start();
        expect(r.outcome).toMatchObject({ status: 'failed', error: expect.stringContaining('callHttp') });
    });
});
