/**
 * What the embedded host (local/) and the replay helper (test/support/durable.ts) rely on inside durable-functions
 * and @azure/functions. None of it is public API, so both packages are pinned exactly; after an upgrade this suite
 * says precisely which assumption moved (see docs in local/durable/sdkInternals.ts and the durable host notes).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { ActionType } from 'durable-functions/lib/src/actions/ActionType';
import { HistoryEventType } from 'durable-functions/lib/src/history/HistoryEventType';
import { TaskOrchestrationExecutor } from 'durable-functions/lib/src/orchestrations/TaskOrchestrationExecutor';
import * as sdkTask from 'durable-functions/lib/src/task';
import { createOrchestrator } from 'durable-functions/lib/src/util/testingUtils';

import { event, EventType, HistoryEvent, toJson } from '../../local/durable/history';
import { BINDING_DEFAULTS } from '../../local/durable/replay';
import { executorOf, isNoOpTask, isRetryableTask, SdkAction, TaskState } from '../../local/durable/sdkInternals';

const ROOT = resolve(__dirname, '..', '..');
const PINNED = ['durable-functions', '@azure/functions'] as const;
const T0 = new Date('2024-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

interface Df {
    taskOrchestratorExecutor: { openTasks: Record<string, sdkTask.TaskBase>; deferredTasks: Record<string, unknown[]> };
}

/** Calls the SDK's handler once, with the binding the host sends; returns the state (or the thrown error). */
async function call(fn: OrchestrationHandler, history: HistoryEvent[], input: unknown = null) {
    const context = new InvocationContext({ functionName: 'contract', logHandler: () => undefined });
    const binding = {
        history: structuredClone(history),
        input,
        instanceId: 'contract-1',
        isReplaying: false,
        parentInstanceId: null,
        ...BINDING_DEFAULTS,
    };
    try {
        const state = (await createOrchestrator(fn)(binding, context)) as {
            isDone: boolean;
            actions: SdkAction[][];
            output?: unknown;
        };
        return { state, context, df: (context as unknown as { df: Df }).df };
    } catch (error: unknown) {
        return { error, context, df: (context as unknown as { df: Df }).df };
    }
}

const started = (input: unknown = null): HistoryEvent[] => [
    event(EventType.OrchestratorStarted, T0),
    event(EventType.ExecutionStarted, T0, { Name: 'contract', Input: toJson(input) }),
];

describe('versions', () => {
    const pkg = readJson(join(ROOT, 'package.json')) as { dependencies: Record<string, string> };
    const lock = readJson(join(ROOT, 'package-lock.json')) as { packages: Record<string, { version: string }> };

    it.each(PINNED)('package.json pins %s exactly, and the installed copy matches the pin and the lockfile', (name) => {
        const pin = pkg.dependencies[name];
        expect(pin).toMatch(/^\d+\.\d+\.\d+$/); // no ^, ~, ranges or tags
        expect((readJson(join(ROOT, 'node_modules', name, 'package.json')) as { version: string }).version).toBe(pin);
        expect(lock.packages[`node_modules/${name}`]?.version).toBe(pin);
    });

    it('durable-functions uses the app’s own copy of @azure/functions (one InvocationContext, one registration path)', () => {
        const fromDurable = require.resolve('@azure/functions', {
            paths: [dirname(require.resolve('durable-functions'))],
        });
        expect(fromDurable).toBe(require.resolve('@azure/functions'));
    });
});

describe('orchestration executor internals', () => {
    it('TaskOrchestrationExecutor.prototype.trackOpenTask is an own method that numbers unnumbered tasks', () => {
        const descriptor = Object.getOwnPropertyDescriptor(TaskOrchestrationExecutor.prototype, 'trackOpenTask');
        expect(typeof descriptor?.value).toBe('function');

        const executor = new TaskOrchestrationExecutor() as TaskOrchestrationExecutor & { sequenceNumber: number };
        const task = new sdkTask.NoOpTask();
        expect(task.id).toBe(false);
        executor.trackOpenTask(task);
        expect(task.id).toBe(0);
        expect(executor.openTasks[0]).toBe(task);
        expect(executor.sequenceNumber).toBe(1);
    });

    it('a handler call leaves context.df.taskOrchestratorExecutor with openTasks and deferredTasks', async () => {
        const waiting = function* (ctx: OrchestrationContext) {
            yield ctx.df.callActivity('a', 1);
        };
        // An event nobody waits for yet is deferred under its name.
        const {
            state,
            df: ctxDf,
            context,
        } = await call(waiting, [...started(), event(EventType.EventRaised, T0, { Name: 'Early', Input: '1' })]);
        expect(state?.isDone).toBe(false);
        const executor = ctxDf.taskOrchestratorExecutor;
        expect(executor).toBeInstanceOf(TaskOrchestrationExecutor);
        expect(Object.keys(executor.openTasks)).toEqual(['0']);
        expect(executor.openTasks[0]!.state).toBe(TaskState.Running);
        expect(executor.deferredTasks.Early).toHaveLength(1);
        expect(executorOf(context)).toBe(executor); // the host's accessor sees the same object
    });

    it('the host’s task tracking records every numbered task, completed ones included', async () => {
        const two = function* (ctx: OrchestrationContext) {
            yield ctx.df.callActivity('a', 1);
            yield ctx.df.callActivity('b', 2);
        };
        const history = [
            ...started(),
            event(EventType.OrchestratorStarted, at(1)),
            event(EventType.TaskCompleted, at(1), { TaskScheduledId: 0, Result: '1' }),
        ];
        const { context } = await call(two, history);
        const tracked = executorOf(context)?.meshTracked;
        expect([...(tracked?.keys() ?? [])]).toEqual([0, 1]);
        expect(tracked?.get(0)?.state).toBe(TaskState.Completed);
        expect(tracked?.get(1)?.state).toBe(TaskState.Running);
    });

    it('TaskState keeps the values local/durable/sdkInternals.ts uses', () => {
        expect({ ...sdkTask.TaskState }).toMatchObject({
            Running: TaskState.Running,
            Failed: TaskState.Failed,
            Completed: TaskState.Completed,
        });
    });

    it('a RetryableTask waiting on back-off exposes children, isWaitingOnTimer and attemptNumber', async () => {
        const retrying = function* (ctx: OrchestrationContext) {
            return (yield ctx.df.callActivityWithRetry('flaky', new df.RetryOptions(1000, 3), 'x')) as unknown;
        };
        const history = [
            ...started(),
            event(EventType.TaskScheduled, T0, { EventId: 0, Name: 'flaky' }),
            event(EventType.OrchestratorStarted, at(1)),
            event(EventType.TaskFailed, at(1), { TaskScheduledId: 0, Reason: 'boom', Details: 'Error: boom' }),
        ];
        const { df: ctxDf } = await call(retrying, history);
        const timer = ctxDf.taskOrchestratorExecutor.openTasks[1] as sdkTask.NoOpTask;
        expect(isNoOpTask(timer as never)).toBe(true);
        expect(timer.actionObj).toBe('noOp');
        const retry = timer.parent as sdkTask.RetryableTask;
        expect(isRetryableTask(retry)).toBe(true);
        expect(retry.children).toHaveLength(2); // [first attempt, back-off timer]
        expect(retry.children[1]).toBe(timer);
        expect(retry.isWaitingOnTimer).toBe(true);
        expect(retry.attemptNumber).toBe(2);
        expect((retry.actionObj as SdkAction).retryOptions).toEqual({
            firstRetryIntervalInMilliseconds: 1000,
            maxNumberOfAttempts: 3,
        });
    });
});

describe('action objects', () => {
    const entity = new df.EntityId('counter', 'k1');

    it('have the actionType numbers and fields SdkAction describes', async () => {
        const everything = function* (ctx: OrchestrationContext) {
            const retry = new df.RetryOptions(500, 2);
            retry.backoffCoefficient = 2;
            ctx.df.signalEntity(entity, 'add', 1);
            yield ctx.df.Task.all([
                ctx.df.callActivity('act', 'text'),
                ctx.df.callActivityWithRetry('actRetry', retry, { n: 1 }),
                ctx.df.callSubOrchestrator('sub', 'raw', 'child-1'),
                ctx.df.createTimer(at(60)),
                ctx.df.waitForExternalEvent('Approval'),
                ctx.df.callEntity(entity, 'get'),
            ]);
        };
        const { state } = await call(everything, started());
        const [signal, all] = state!.actions.flat() as [SdkAction, SdkAction];
        expect(signal).toEqual({ actionType: 9, operation: 'add', input: 1, instanceId: '@counter@k1' });
        expect(all.actionType).toBe(12); // WhenAll, with its children in compoundActions
        expect(all.compoundActions).toEqual([
            { actionType: 0, functionName: 'act', input: '"text"' }, // string inputs JSON-encoded once
            {
                actionType: 1,
                functionName: 'actRetry',
                input: { n: 1 },
                retryOptions: { firstRetryIntervalInMilliseconds: 500, maxNumberOfAttempts: 2, backoffCoefficient: 2 },
            },
            { actionType: 2, functionName: 'sub', input: 'raw', instanceId: 'child-1', version: undefined }, // raw input
            { actionType: 5, fireAt: at(60), isCanceled: false },
            { actionType: 6, externalEventName: 'Approval', reason: 'ExternalEvent' },
            { actionType: 7, operation: 'get', input: undefined, instanceId: '@counter@k1' },
        ]);
        expect(all.compoundActions![3]!.fireAt).toBeInstanceOf(Date);
    });

    it('continueAsNew is actionType 4 with a JSON-encoded string input', async () => {
        // continueAsNew is fire-and-forget: nothing to yield.
        const again = function* (ctx: OrchestrationContext) {
            ctx.df.continueAsNew('next');
        };
        const { state } = await call(again, started());
        expect(state).toMatchObject({ isDone: true, actions: [[{ actionType: 4, input: '"next"' }]] });
    });

    it('a cancelled timer flips isCanceled on its action', async () => {
        const race = function* (ctx: OrchestrationContext) {
            const timer = ctx.df.createTimer(at(60));
            yield ctx.df.Task.any([ctx.df.waitForExternalEvent('Go'), timer]);
            timer.cancel();
            return 'cancelled';
        };
        const { state } = await call(race, [
            ...started(),
            event(EventType.EventRaised, T0, { Name: 'Go', Input: 'true' }),
        ]);
        expect(state?.output).toBe('cancelled');
        expect(state!.actions.flat()[0]!.compoundActions![1]).toMatchObject({ actionType: 5, isCanceled: true });
    });

    it('the SDK ActionType enum has the numbers the host switches on', () => {
        expect({ ...ActionType }).toMatchObject({
            CallActivity: 0,
            CallActivityWithRetry: 1,
            CallSubOrchestrator: 2,
            CallSubOrchestratorWithRetry: 3,
            ContinueAsNew: 4,
            CreateTimer: 5,
            WaitForExternalEvent: 6,
            CallEntity: 7,
            CallHttp: 8,
            SignalEntity: 9,
            WhenAny: 11,
            WhenAll: 12,
            LockEntities: 13,
        });
    });
});

describe('history and failures', () => {
    it('HistoryEventType has the numbers of local/durable/history.ts EventType', () => {
        const ours = Object.entries(EventType).filter(([, v]) => typeof v === 'number');
        expect(ours.length).toBeGreaterThan(15);
        for (const [name, value] of ours) expect([name, HistoryEventType[name]]).toEqual([name, value]);
    });

    it('a failing orchestrator throws an error carrying its state after $OutOfProcData$:', async () => {
        const boom = function* (ctx: OrchestrationContext) {
            ctx.df.setCustomStatus('before');
            yield ctx.df.callActivity('a', 1);
            throw new Error('boom');
        };
        const history = [
            ...started(),
            event(EventType.OrchestratorStarted, at(1)),
            event(EventType.TaskCompleted, at(1), { TaskScheduledId: 0, Result: '1' }),
        ];
        const { error } = await call(boom, history);
        expect(error).toBeInstanceOf(Error);
        const message = (error as Error).message;
        const marker = message.indexOf('$OutOfProcData$:');
        expect(marker).toBeGreaterThanOrEqual(0);
        const state = JSON.parse(message.slice(marker + '$OutOfProcData$:'.length)) as Record<string, unknown>;
        expect(state).toMatchObject({ isDone: false, error: 'boom', customStatus: 'before', schemaVersion: 3 });
    });

    it('a TaskFailed without FailureDetails reaches the orchestrator as Error("<Reason> \\n <Details>")', async () => {
        const catching = function* (ctx: OrchestrationContext) {
            try {
                yield ctx.df.callActivity('a', 1);
                return 'no error';
            } catch (e: unknown) {
                return (e as Error).message;
            }
        };
        const history = [
            ...started(),
            event(EventType.OrchestratorStarted, at(1)),
            event(EventType.TaskFailed, at(1), { TaskScheduledId: 0, Reason: 'why', Details: 'how' }),
        ];
        expect((await call(catching, history)).state?.output).toBe('why \n how');
    });
});

describe('@azure/functions outside the Functions worker', () => {
    const run = (script: string) =>
        spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });

    it('requires @azure/functions-core lazily, so a Module._load hook installed after import receives registrations', () => {
        // A child process: jest's own module registry bypasses Module._load, so the hook must run under plain node.
        const script = `
            const Module = require('node:module');
            const { app } = require('@azure/functions');          // imported BEFORE the hook exists
            const df = require('durable-functions');
            const registered = [];
            const core = {
                registerFunction: (metadata, handler) => { registered.push({ name: metadata.name, bindings: metadata.bindings, handler: typeof handler }); return { dispose() {} }; },
                setProgrammingModel() {}, getProgrammingModel() {}, registerHook: () => ({ dispose() {} }), log() {},
            };
            const load = Module._load;
            Module._load = function (request, ...rest) { return request === '@azure/functions-core' ? core : load.call(this, request, ...rest); };
            app.http('hello', { route: 'hello/{name}', methods: ['GET'], handler: async () => ({ body: 'hi' }) });
            df.app.orchestration('orch', function* () { return 1; });
            process.stdout.write(JSON.stringify(registered));
        `;
        const child = run(script);
        expect(child.status).toBe(0);
        expect(child.stderr).not.toContain('test mode');
        const registered = JSON.parse(child.stdout) as {
            name: string;
            bindings: Record<string, { type: string; direction: string; route?: string }>;
            handler: string;
        }[];
        expect(registered.map((r) => [r.name, r.handler])).toEqual([
            ['hello', 'function'],
            ['orch', 'function'],
        ]);
        const http = Object.values(registered[0]!.bindings);
        expect(http).toEqual(
            expect.arrayContaining([
                expect.objectContaining({ type: 'httpTrigger', direction: 'in', route: 'hello/{name}' }),
                expect.objectContaining({ type: 'http', direction: 'out' }),
            ]),
        );
        expect(Object.values(registered[1]!.bindings)).toEqual([
            expect.objectContaining({ type: 'orchestrationTrigger', direction: 'in' }),
        ]);
    });

    it('without the module it falls back to test mode: a warning, no exception, nothing registered', () => {
        const child = run(
            `require('@azure/functions').app.http('hello', { handler: async () => ({}) }); process.stdout.write('ok');`,
        );
        expect(child.status).toBe(0);
        expect(child.stdout).toBe('ok');
        expect(child.stderr).toContain('test mode');
        expect(child.stderr).toContain('Skipping call to register function "hello"');
    });

    it('node resolves the packages from the project root for the child process', () => {
        expect(
            execFileSync(process.execPath, ['-p', "require.resolve('@azure/functions')"], {
                cwd: ROOT,
                encoding: 'utf8',
            }).trim(),
        ).toBe(require.resolve('@azure/functions'));
    });
});
