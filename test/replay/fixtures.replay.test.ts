/**
 * Replay scenarios for the fixture orchestrators (test/fixtures/durableApp), run through durable-functions' real
 * executor. Every scenario checks the output or the next scheduled work, that the code re-schedules what the
 * history recorded (STYLE.md §9) and that two replays agree. Importing the fixtures also calls
 * `df.app.orchestration`, which only warns in test mode.
 */
import { OrchestrationHandler } from 'durable-functions';

import { ChainInput, expectedChainOutput, Fixture } from '../fixtures/durableApp/contract';
import {
    approval,
    chain,
    entityCounter,
    fanOut,
    loop,
    nonDeterministic,
    parent,
    retryExhausted,
    retrySuccess,
    sequence,
} from '../fixtures/durableApp/fixtureOrchestrators.orchestrator';
import { assertSchedulePrefix, expectDeterministic, h, replay, ReplayOptions, T0 } from '../support/durable';

type History = Parameters<typeof replay>[2];

const A = Fixture.activities;
const O = Fixture.orchestrators;
const E = Fixture.events;

/** Every scenario: replayed twice (deterministic) and checked against the recorded schedule. */
async function run(fn: OrchestrationHandler, input: unknown, history: History, opts?: ReplayOptions) {
    const r = await expectDeterministic(fn, input, history, opts);
    assertSchedulePrefix(r, history);
    return r;
}

const seconds = (s: number) => new Date(T0.getTime() + s * 1000);

describe('sequence', () => {
    const names = ['Tokyo', 'Seattle'];
    const episode1 = [...h.started(names, 0, O.sequence), h.scheduled(0, A.hello, 'Tokyo'), h.ended(0)];
    const episode2 = [
        ...episode1,
        h.episode(1),
        h.completed(0, 'Hello Tokyo!', 1),
        h.scheduled(1, A.hello, 'Seattle'),
        h.ended(1),
    ];
    const complete = [...episode2, h.episode(2), h.completed(1, 'Hello Seattle!', 2)];

    it('schedules the first greeting and waits', async () => {
        const r = await run(sequence, names, h.started(names, 0, O.sequence));
        expect(r.done).toBe(false);
        expect(r.next).toEqual([A.hello]);
        // The SDK JSON-encodes a string activity input once.
        expect(r.actions).toEqual([{ functionName: A.hello, actionType: 0, input: '"Tokyo"' }]);
    });

    it('schedules the next greeting once the first completes', async () => {
        const r = await run(sequence, names, episode1.concat(h.episode(1), h.completed(0, 'Hello Tokyo!', 1)));
        expect(r.done).toBe(false);
        expect(r.next).toEqual([A.hello]);
        expect(r.actions[1]).toEqual({ functionName: A.hello, actionType: 0, input: '"Seattle"' });
        expect(r.schedule).toEqual([
            { id: 0, name: A.hello },
            { id: 1, name: A.hello },
        ]);
    });

    it('returns every greeting in order', async () => {
        const r = await run(sequence, names, complete);
        expect(r).toMatchObject({ done: true, output: ['Hello Tokyo!', 'Hello Seattle!'], next: [] });
        expect(r.error).toBeUndefined();
    });

    it('greets the default cities when started without input', async () => {
        const r = await run(sequence, '', h.started('', 0, O.sequence));
        expect(r.actions).toEqual([{ functionName: A.hello, actionType: 0, input: '"Tokyo"' }]);
    });
});

describe('fanOut', () => {
    const numbers = [1, 2, 3];
    const scheduled = [
        ...h.started(numbers, 0, O.fanOut),
        ...numbers.map((n, i) => h.scheduled(i, A.double, n)),
        h.ended(0),
    ];

    it('schedules every activity in the first episode (Task.all)', async () => {
        const r = await run(fanOut, numbers, h.started(numbers, 0, O.fanOut));
        expect(r.done).toBe(false);
        expect(r.next).toEqual([A.double, A.double, A.double]);
        expect(r.actions.map((a) => a.input)).toEqual([1, 2, 3]);
    });

    it('keeps waiting until the last result arrives', async () => {
        const r = await run(fanOut, numbers, [...scheduled, h.episode(1), h.completed(0, 2, 1), h.completed(1, 4, 1)]);
        expect(r).toMatchObject({ done: false, next: [] });
    });

    it('completes with the sum, whatever order results arrive in', async () => {
        const inOrder = await run(fanOut, numbers, [
            ...scheduled,
            h.episode(1),
            h.completed(0, 2),
            h.completed(1, 4),
            h.completed(2, 6),
        ]);
        const reversed = await run(fanOut, numbers, [
            ...scheduled,
            h.episode(1),
            h.completed(2, 6),
            h.completed(1, 4),
            h.completed(0, 2),
        ]);
        expect(inOrder).toMatchObject({ done: true, output: 12 });
        expect(reversed.output).toBe(12);
    });
});

describe('approval', () => {
    const input = { timeoutMs: 60_000 };
    const greeted = [
        ...h.started(input, 0, O.approval),
        h.scheduled(0, A.hello, 'approver'),
        h.ended(0),
        h.episode(1),
        h.completed(0, 'Hello approver!', 1),
    ];
    const waiting = [...greeted, h.timerCreated(1, 61), h.ended(1)];

    it('greets the approver first', async () => {
        const r = await run(approval, input, h.started(input, 0, O.approval));
        expect(r.next).toEqual([A.hello]);
    });

    it('then races the Approval event against a timer at now + timeout', async () => {
        const r = await run(approval, input, greeted);
        expect(r.done).toBe(false);
        expect(r.next).toEqual([]);
        expect(r.customStatus).toEqual({ waitingFor: E.approval });
        expect(r.actions.slice(1)).toEqual([
            { externalEventName: E.approval, reason: 'ExternalEvent', actionType: 6 },
            { fireAt: seconds(61), isCanceled: false, actionType: 5 },
        ]);
    });

    it('event wins: cancels the timer and returns the decision', async () => {
        const r = await run(approval, input, [...waiting, h.episode(30), h.raised(E.approval, 'approved', 30)]);
        expect(r).toMatchObject({ done: true, output: { greeting: 'Hello approver!', decision: 'approved' } });
        expect(r.actions.find((a) => a.actionType === 5)?.isCanceled).toBe(true);
    });

    it('reports the deadline timer by task id, and marks it cancelled once the event wins', async () => {
        const waitingResult = await run(approval, input, greeted);
        expect(waitingResult.timers).toEqual([{ id: 1, fireAt: seconds(61), backOff: false, canceled: false }]);
        const won = await run(approval, input, [...waiting, h.episode(30), h.raised(E.approval, 'approved', 30)]);
        expect(won.timers).toEqual([{ id: 1, fireAt: seconds(61), backOff: false, canceled: true }]);
    });

    it('timer wins: returns timeout', async () => {
        const r = await run(approval, input, [...waiting, h.episode(61), h.fired(1, 61)]);
        expect(r).toMatchObject({ done: true, output: { greeting: 'Hello approver!', decision: 'timeout' } });
        expect(r.actions.find((a) => a.actionType === 5)?.isCanceled).toBe(false);
    });

    it('an event that arrives before the wait is buffered and still wins', async () => {
        const early = [...h.started(input, 0, O.approval), h.scheduled(0, A.hello, 'approver'), h.ended(0)];
        const r = await run(approval, input, [
            ...early,
            h.episode(1),
            h.raised(E.approval, 'early', 1),
            h.completed(0, 'Hello approver!', 1),
        ]);
        expect(r.output).toEqual({ greeting: 'Hello approver!', decision: 'early' });
    });
});

describe('retrySuccess', () => {
    const input = { key: 'k1', failTimes: 2 };
    const failure = (n: number) => `Activity function '${A.flaky}' failed: flaky failure ${n} of 2`;
    // DTFx retry layout: TaskScheduled, TaskFailed, back-off TimerCreated/TimerFired, next TaskScheduled, …
    const firstFailed = [
        ...h.started(input, 0, O.retrySuccess),
        h.scheduled(0, A.flaky, input),
        h.ended(0),
        h.episode(1),
        h.failed(0, failure(1), 'Error: flaky failure 1 of 2', 1),
        h.timerCreated(1, 1.05),
        h.ended(1),
    ];
    const retried = [...firstFailed, h.episode(2), h.fired(1, 2), h.scheduled(2, A.flaky, input), h.ended(2)];
    const secondFailed = [
        ...retried,
        h.episode(3),
        h.failed(2, failure(2), 'Error: flaky failure 2 of 2', 3),
        h.timerCreated(3, 3.05),
        h.ended(3),
    ];
    const succeeded = [
        ...secondFailed,
        h.episode(4),
        h.fired(3, 4),
        h.scheduled(4, A.flaky, input),
        h.ended(4),
        h.episode(5),
        h.completed(4, 'ok after 3 attempts', 5),
    ];

    it('schedules one attempt with the retry options', async () => {
        const r = await run(retrySuccess, input, h.started(input, 0, O.retrySuccess));
        expect(r.next).toEqual([A.flaky]);
        expect(r.actions).toEqual([
            {
                functionName: A.flaky,
                actionType: 1,
                input,
                retryOptions: { firstRetryIntervalInMilliseconds: 50, maxNumberOfAttempts: 4 },
            },
        ]);
    });

    it('waits on the back-off timer after a failure', async () => {
        const r = await run(retrySuccess, input, firstFailed);
        expect(r).toMatchObject({ done: false, next: [] });
    });

    it('schedules the next attempt (task #2) when the back-off timer fires', async () => {
        const r = await run(retrySuccess, input, [...firstFailed, h.episode(2), h.fired(1, 2)]);
        expect(r.next).toEqual([A.flaky]);
        expect(r.schedule).toEqual([
            { id: 0, name: A.flaky },
            { id: 2, name: A.flaky },
        ]);
    });

    it('returns the result of the attempt that succeeded', async () => {
        const r = await run(retrySuccess, input, succeeded);
        expect(r).toMatchObject({ done: true, output: 'ok after 3 attempts', next: [] });
        expect(r.schedule.map((t) => t.id)).toEqual([0, 2, 4]);
        expect(r.timers).toEqual([
            { id: 1, backOff: true, canceled: false },
            { id: 3, backOff: true, canceled: false },
        ]);
    });

    it('retryExhausted: catches the last failure once the attempts are used up', async () => {
        const reason = `Activity function '${A.alwaysFails}' failed: this activity always fails`;
        const history = [...h.started(null, 0, O.retryExhausted)];
        for (let attempt = 0; attempt < 3; attempt++) {
            const id = attempt * 2;
            history.push(
                ...(attempt > 0 ? [h.episode(id), h.fired(id - 1, id)] : []),
                h.scheduled(id, A.alwaysFails, null),
                h.ended(id),
                h.episode(id + 1),
                h.failed(id, reason, 'Error: this activity always fails', id + 1),
                h.timerCreated(id + 1, id + 1.02),
                h.ended(id + 1),
            );
        }
        const r = await run(retryExhausted, null, [...history, h.episode(7), h.fired(5, 7)]);
        expect(r).toMatchObject({ done: true, output: `caught: ${reason}` });
        expect(r.schedule.map((t) => t.id)).toEqual([0, 2, 4]);
    });
});

describe('parent', () => {
    const input = ['Oslo'];
    const childId = 'replay-instance:0000';
    const created = [...h.started(input, 0, O.parent), h.subCreated(0, O.sequence, childId, input), h.ended(0)];
    const childDone = [...created, h.episode(1), h.subCompleted(0, ['Hello Oslo!'], 1)];

    it('starts the sequence as a sub-orchestration', async () => {
        const r = await run(parent, input, h.started(input, 0, O.parent));
        expect(r.next).toEqual([O.sequence]);
        expect(r.actions).toEqual([{ functionName: O.sequence, actionType: 2, input, instanceId: undefined }]);
    });

    it('doubles the length of the child output', async () => {
        const r = await run(parent, input, childDone);
        expect(r.next).toEqual([A.double]);
        expect(r.actions[1]).toEqual({ functionName: A.double, actionType: 0, input: 1 });
    });

    it('returns the child output and the doubled count', async () => {
        const r = await run(parent, input, [
            ...childDone,
            h.scheduled(1, A.double, 1),
            h.ended(1),
            h.episode(2),
            h.completed(1, 2, 2),
        ]);
        expect(r).toMatchObject({ done: true, output: { child: ['Hello Oslo!'], doubled: 2 } });
    });

    it('fails when the child fails', async () => {
        const r = await run(parent, input, [
            ...created,
            h.episode(1),
            h.subFailed(0, 'child exploded', 'Error: child exploded', 1),
        ]);
        expect(r.done).toBe(false);
        expect(r.error).toContain('child exploded');
    });
});

describe('loop', () => {
    it('doubles, then continues as new with the next input', async () => {
        const input = { n: 0, max: 2 };
        const history = [
            ...h.started(input, 0, O.loop),
            h.scheduled(0, A.double, 0),
            h.ended(0),
            h.episode(1),
            h.completed(0, 0, 1),
        ];
        const r = await run(loop, input, history);
        expect(r.done).toBe(true);
        expect(r.output).toBeUndefined();
        expect(r.actions).toEqual([
            { functionName: A.double, actionType: 0, input: 0 },
            { actionType: 4, input: { n: 1, max: 2 } },
        ]);
    });

    it('stops at max without scheduling anything', async () => {
        const r = await run(loop, { n: 2, max: 2 }, h.started({ n: 2, max: 2 }, 0, O.loop));
        expect(r).toMatchObject({ done: true, output: 'looped 2 times', actions: [], next: [] });
    });
});

describe('entityCounter', () => {
    const entity = `@${Fixture.entities.counter}@k1`;
    // signalEntity consumes task id 0, so the two calls are #1 and #2.
    const added = [
        ...h.started('k1', 0, O.entityCounter),
        h.eventSent(1, entity, 'add', 'req-1'),
        h.ended(0),
        h.episode(1),
        h.entityResponse('req-1', 15, 1),
    ];

    it('signals add(5), then calls add(10)', async () => {
        const r = await run(entityCounter, 'k1', h.started('k1', 0, O.entityCounter));
        expect(r.done).toBe(false);
        expect(r.actions).toEqual([
            { operation: 'add', actionType: 9, input: 5, instanceId: entity },
            { operation: 'add', actionType: 7, input: 10, instanceId: entity },
        ]);
        expect(r.next).toEqual([]); // entity operations are not activities
    });

    it('calls get once add answers', async () => {
        const r = await run(entityCounter, 'k1', added);
        expect(r.actions[2]).toEqual({ operation: 'get', actionType: 7, input: undefined, instanceId: entity });
    });

    it('returns the value get answers with', async () => {
        const r = await run(entityCounter, 'k1', [
            ...added,
            h.eventSent(2, entity, 'get', 'req-2'),
            h.ended(1),
            h.episode(2),
            h.entityResponse('req-2', 15, 2),
        ]);
        expect(r).toMatchObject({ done: true, output: 15 });
    });
});

describe('chain', () => {
    const opts = { instanceId: 'chain-1' };
    const input: ChainInput = { steps: 2, approval: true, stepDelayMs: 0 };
    const step = (s: string) => ({ id: 'chain-1', step: s, delayMs: 0 });
    const stepsDone = [
        ...h.started(input, 0, O.chain),
        h.scheduled(0, A.step, step('step0')),
        h.ended(0),
        h.episode(1),
        h.completed(0, 'chain-1:step0', 1),
        h.scheduled(1, A.step, step('step1')),
        h.ended(1),
        h.episode(2),
        h.completed(1, 'chain-1:step1', 2),
    ];
    const approved = [...stepsDone, h.ended(2), h.episode(3), h.raised(E.approval, 'yes', 3)];

    it('runs its steps, then waits for approval', async () => {
        const r = await run(chain, input, stepsDone, opts);
        expect(r).toMatchObject({ done: false, next: [], customStatus: 'awaiting approval' });
        expect(r.actions[2]).toEqual({ externalEventName: E.approval, reason: 'ExternalEvent', actionType: 6 });
    });

    it('schedules the final step after the approval', async () => {
        const r = await run(chain, input, approved, opts);
        expect(r.next).toEqual([A.step]);
        expect(r.actions[3]).toEqual({ functionName: A.step, actionType: 0, input: step('final') });
    });

    it('returns the expected chain output', async () => {
        const r = await run(
            chain,
            input,
            [
                ...approved,
                h.scheduled(2, A.step, step('final')),
                h.ended(3),
                h.episode(4),
                h.completed(2, 'chain-1:final', 4),
            ],
            opts,
        );
        expect(r).toMatchObject({ done: true, output: expectedChainOutput('chain-1', input, 'yes') });
    });

    it('waits on a durable timer between the steps and the final step', async () => {
        const timed: ChainInput = { steps: 1, approval: false, stepDelayMs: 0, timerMs: 5_000 };
        const history = [
            ...h.started(timed, 0, O.chain),
            h.scheduled(0, A.step, step('step0')),
            h.ended(0),
            h.episode(1),
            h.completed(0, 'chain-1:step0', 1),
        ];
        const waiting = await run(chain, timed, history, opts);
        expect(waiting.actions[1]).toEqual({ fireAt: seconds(6), isCanceled: false, actionType: 5 });
        expect(waiting.next).toEqual([]);
        const fired = await run(
            chain,
            timed,
            [...history, h.timerCreated(1, 6), h.ended(1), h.episode(6), h.fired(1, 6)],
            opts,
        );
        expect(fired.next).toEqual([A.step]);
        expect(fired.schedule).toEqual([
            { id: 0, name: A.step },
            { id: 2, name: A.step },
        ]);
    });
});

describe('negative controls', () => {
    const names = ['Tokyo', 'Seattle'];
    const sequenceHistory = [
        ...h.started(names, 0, O.sequence),
        h.scheduled(0, A.hello, 'Tokyo'),
        h.ended(0),
        h.episode(1),
        h.completed(0, 'Hello Tokyo!', 1),
        h.scheduled(1, A.hello, 'Seattle'),
    ];

    it('a history recorded for one orchestrator fails the schedule check against another', async () => {
        assertSchedulePrefix(await replay(sequence, names, sequenceHistory), sequenceHistory); // the control itself
        const other = await replay(fanOut, names, sequenceHistory);
        expect(() => assertSchedulePrefix(other, sequenceHistory)).toThrow(
            'replayed schedule [#0 fx_double, #1 fx_double] does not start with the recorded [#0 fx_hello, #1 fx_hello]',
        );
        const parentHistory = [
            ...h.started(names, 0, O.parent),
            h.subCreated(0, O.sequence, 'replay-instance:0000', names),
        ];
        expect(() => assertSchedulePrefix(other, parentHistory)).toThrow(/recorded \[#0 fx_sequence\]/);
    });

    it('a step that moved to another task id fails the schedule check even though the names match', async () => {
        // Recorded before a durable timer was added in front of the final step: the step was task #0, now it is #1.
        const before: ChainInput = { steps: 0, approval: false, stepDelayMs: 0 };
        const final = { id: 'replay-instance', step: 'final', delayMs: 0 };
        const recorded = [
            ...h.started(before, 0, O.chain),
            h.scheduled(0, A.step, final),
            h.ended(0),
            h.episode(1),
            h.completed(0, 'replay-instance:final', 1),
        ];
        const r = await replay(chain, { ...before, timerMs: 1_000 }, recorded);
        expect(r.schedule).toEqual([{ id: 1, name: A.step }]);
        expect(() => assertSchedulePrefix(r, recorded)).toThrow(
            'replayed schedule [#1 fx_step] does not start with the recorded [#0 fx_step]',
        );
    });

    it('a TaskCompleted result of the wrong type changes the output (the schedule check cannot see it)', async () => {
        const numbers = [1, 2, 3];
        const asStrings = [
            ...h.started(numbers, 0, O.fanOut),
            ...numbers.map((n, i) => h.scheduled(i, A.double, n)),
            h.episode(1),
            ...numbers.map((n, i) => h.completed(i, String(n * 2), 1)),
        ];
        const r = await run(fanOut, numbers, asStrings);
        expect(r.output).not.toEqual(12);
        expect(r.output).toBe('0246');
    });

    it('a TaskCompleted result of the wrong shape sends different input to the next step', async () => {
        const input = ['Oslo'];
        const wrongShape = [
            ...h.started(input, 0, O.parent),
            h.subCreated(0, O.sequence, 'replay-instance:0000', input),
            h.episode(1),
            h.subCompleted(0, { greetings: ['Hello Oslo!'] }, 1),
        ];
        const r = await run(parent, input, wrongShape);
        expect(r.actions[1]).toEqual({ functionName: A.double, actionType: 0, input: undefined });
    });

    it('an orchestrator that reads mutable module state fails the determinism check', async () => {
        await expect(
            expectDeterministic(nonDeterministic, null, h.started(null, 0, O.nonDeterministic)),
        ).rejects.toThrow(/toStrictEqual/);
    });
});
