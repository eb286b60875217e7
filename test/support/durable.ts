/**
 * The one replay helper (STYLE.md §9). It runs an orchestrator generator through durable-functions' own executor
 * (`createOrchestrator` from the SDK's testingUtils, the handler `df.app.orchestration` registers) against a
 * recorded or hand-built history, exactly as the Durable extension calls it, and reports what the code did:
 * its output or error, every action, and the activities/sub-orchestrations it newly scheduled.
 *
 * Histories are built with `h`, in the PascalCase wire shape of local/durable/history.ts. Times are seconds
 * after `T0`, the start of every history, so a test reads like a timeline.
 */
import { InvocationContext } from '@azure/functions';
import { OrchestrationHandler } from 'durable-functions';
import { TaskOrchestrationExecutor } from 'durable-functions/lib/src/orchestrations/TaskOrchestrationExecutor';
import { NoOpTask, RetryableTask, TaskBase, TaskState } from 'durable-functions/lib/src/task';
import { createOrchestrator } from 'durable-functions/lib/src/util/testingUtils';

import { event, EventType, HistoryEvent, toJson } from '../../local/durable/history';

/** The start of every hand-built history. */
export const T0 = new Date('2024-01-01T00:00:00.000Z');

/** A point in a history: a Date, or seconds after T0. */
export type At = Date | number;

const at = (t: At): Date => (typeof t === 'number' ? new Date(T0.getTime() + t * 1000) : t);

/** History builders. Payloads are JS values; they are stored as JSON strings, as on the wire. */
export const h = {
    /** The first episode: OrchestratorStarted then ExecutionStarted carrying the input. */
    started: (input: unknown, t: At = 0, name = 'orchestrator'): HistoryEvent[] => [
        event(EventType.OrchestratorStarted, at(t)),
        event(EventType.ExecutionStarted, at(t), { Name: name, Input: toJson(input) }),
    ],
    /** OrchestratorStarted: opens a new episode and sets `currentUtcDateTime`. */
    episode: (t: At): HistoryEvent => event(EventType.OrchestratorStarted, at(t)),
    /** OrchestratorCompleted: closes an episode (the SDK ignores it; recorded histories have it). */
    ended: (t: At = 0): HistoryEvent => event(EventType.OrchestratorCompleted, at(t)),
    scheduled: (id: number, name: string, input?: unknown): HistoryEvent =>
        event(EventType.TaskScheduled, T0, { EventId: id, Name: name, Input: toJson(input) }),
    completed: (id: number, result: unknown, t: At = 0): HistoryEvent =>
        event(EventType.TaskCompleted, at(t), { TaskScheduledId: id, Result: toJson(result) }),
    failed: (id: number, reason: string, details = '', t: At = 0): HistoryEvent =>
        event(EventType.TaskFailed, at(t), { TaskScheduledId: id, Reason: reason, Details: details }),
    timerCreated: (id: number, fireAt: At): HistoryEvent =>
        event(EventType.TimerCreated, T0, { EventId: id, FireAt: at(fireAt).toISOString() }),
    fired: (id: number, t: At): HistoryEvent =>
        event(EventType.TimerFired, at(t), { TimerId: id, FireAt: at(t).toISOString() }),
    raised: (name: string, data: unknown, t: At = 0): HistoryEvent =>
        event(EventType.EventRaised, at(t), { Name: name, Input: toJson(data) }),
    subCreated: (id: number, name: string, instanceId: string, input?: unknown): HistoryEvent =>
        event(EventType.SubOrchestrationInstanceCreated, T0, {
            EventId: id,
            Name: name,
            InstanceId: instanceId,
            Input: toJson(input),
        }),
    subCompleted: (id: number, result: unknown, t: At = 0): HistoryEvent =>
        event(EventType.SubOrchestrationInstanceCompleted, at(t), { TaskScheduledId: id, Result: toJson(result) }),
    subFailed: (id: number, reason: string, details = '', t: At = 0): HistoryEvent =>
        event(EventType.SubOrchestrationInstanceFailed, at(t), {
            TaskScheduledId: id,
            Reason: reason,
            Details: details,
        }),
    /** EventSent for `callEntity`: re-keys the open task to the request id the entity answers with. */
    eventSent: (id: number, entityId: string, op: string, requestId: string): HistoryEvent =>
        event(EventType.EventSent, T0, {
            EventId: id,
            InstanceId: entityId,
            Name: op,
            Input: JSON.stringify({ id: requestId, op, signal: false }),
        }),
    /** An entity's answer to a call: EventRaised named by the request id, the result JSON inside the message. */
    entityResponse: (requestId: string, result: unknown, t: At = 0): HistoryEvent =>
        event(EventType.EventRaised, at(t), { Name: requestId, Input: JSON.stringify({ result: toJson(result) }) }),
};

/** One SDK action (the V4 JSON shape), e.g. `{ actionType: 0, functionName, input }`. */
export interface ReplayAction {
    actionType: number;
    functionName?: string;
    input?: unknown;
    instanceId?: string;
    operation?: string;
    fireAt?: Date;
    isCanceled?: boolean;
    externalEventName?: string;
    retryOptions?: Record<string, unknown>;
    compoundActions?: ReplayAction[];
}

/** An activity or sub-orchestration the code scheduled, keyed by its task id (the history's EventId). */
export interface ScheduledTask {
    id: number;
    name: string;
}

/** A durable timer the code created, keyed by its task id (the history's TimerCreated EventId). */
export interface ScheduledTimer {
    id: number;
    /** When `createTimer` asked it to fire; undefined for a retry back-off timer (the extension picks that time). */
    fireAt?: Date;
    /** A back-off timer between two attempts of a `call*WithRetry` task. */
    backOff: boolean;
    /** `cancel()` was called on it (a lost race); its TimerFired, if delivered, changes nothing. */
    canceled: boolean;
}

export interface ReplayResult {
    /** The SDK's `isDone`: the generator returned or called continueAsNew. False when it threw. */
    done: boolean;
    output: unknown;
    /** The orchestrator's error when it threw (the SDK's `state.error`, parsed from `$OutOfProcData$:`). */
    error?: string;
    /** Every action of this execution, flattened: WhenAll/WhenAny are replaced by their children, depth-first. */
    actions: ReplayAction[];
    /** Names of the activities/sub-orchestrations scheduled by this replay that history has not recorded yet. */
    next: string[];
    /** Every activity/sub-orchestration the code scheduled (retry attempts included), by task id. */
    schedule: ScheduledTask[];
    /** Every durable timer the code created (createTimer and retry back-off), by task id. */
    timers: ScheduledTimer[];
    customStatus: unknown;
}

export interface ReplayOptions {
    instanceId?: string;
    /** The orchestrator's registered name (the InvocationContext's functionName). */
    functionName?: string;
}

const OUT_OF_PROC_MARKER = '$OutOfProcData$:';

interface SdkState {
    isDone: boolean;
    actions: ReplayAction[][];
    output?: unknown;
    error?: string;
    customStatus?: unknown;
}

/**
 * Replays `fn` over `history` (which must open with `h.started(...)`) and reports what the code did. Events before
 * the last OrchestratorStarted count as already played, as in a host's replay.
 */
export async function replay(
    fn: OrchestrationHandler,
    input: unknown,
    history: readonly HistoryEvent[],
    opts: ReplayOptions = {},
): Promise<ReplayResult> {
    const functionName = opts.functionName ?? 'orchestrator';
    const lastStart = history.map((e) => e.EventType).lastIndexOf(EventType.OrchestratorStarted);
    // A deep copy: the SDK replaces every Timestamp string with a Date in place.
    const events = structuredClone(history).map((e, i) => ({ ...e, IsPlayed: i < lastStart }));
    const binding = {
        history: events,
        input,
        instanceId: opts.instanceId ?? 'replay-instance',
        isReplaying: lastStart > 0,
        parentInstanceId: null,
        upperSchemaVersion: 2,
        upperSchemaVersionNew: 3,
        maximumShortTimerDuration: '6.00:00:00',
        longRunningTimerIntervalDuration: '3.00:00:00',
        defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
    };
    const context = new InvocationContext({ functionName, invocationId: 'replay', logHandler: () => undefined });

    let state: SdkState;
    try {
        state = (await createOrchestrator(fn)(binding, context)) as SdkState;
    } catch (e: unknown) {
        state = parseFailure(e);
    }

    const tracked = trackedTasks(context);
    const recorded = new Set(history.filter((e) => isScheduling(e.EventType)).map((e) => e.EventId));
    const schedule: ScheduledTask[] = [];
    const next: string[] = [];
    const timers: ScheduledTimer[] = [];
    for (const [id, task] of [...tracked.entries()].sort((a, b) => a[0] - b[0])) {
        const timer = timerOf(task);
        if (timer) timers.push({ id, ...timer });
        const name = scheduledName(task);
        if (name === undefined) continue;
        schedule.push({ id, name });
        if (!recorded.has(id) && task.state === TaskState.Running) next.push(name);
    }
    return {
        done: state.isDone,
        output: state.output,
        ...(state.error !== undefined ? { error: state.error } : {}),
        actions: flatten(state.actions.flat()),
        next,
        schedule,
        timers,
        customStatus: state.customStatus,
    };
}

/**
 * STYLE.md §9: the code must schedule what the history recorded, in the same order and under the same task ids
 * (TaskScheduled and SubOrchestrationInstanceCreated events), before anything new.
 */
export function assertSchedulePrefix(result: ReplayResult, recordedHistory: readonly HistoryEvent[]): void {
    const recorded = recordedHistory
        .filter(
            (e) => e.EventType === EventType.TaskScheduled || e.EventType === EventType.SubOrchestrationInstanceCreated,
        )
        .map((e) => ({ id: e.EventId, name: e.Name ?? '' }))
        .sort((a, b) => a.id - b.id);
    const emitted = result.schedule.slice(0, recorded.length);
    const same =
        emitted.length === recorded.length &&
        recorded.every((r, i) => r.id === emitted[i]!.id && r.name === emitted[i]!.name);
    if (!same) {
        const show = (list: ScheduledTask[]) => `[${list.map((t) => `#${t.id} ${t.name}`).join(', ')}]`;
        throw new Error(
            `replayed schedule ${show(result.schedule)} does not start with the recorded ${show(recorded)}`,
        );
    }
}

/** Replays twice from fresh copies and requires identical results (STYLE.md §3), returning the first. */
export async function expectDeterministic(
    fn: OrchestrationHandler,
    input: unknown,
    history: readonly HistoryEvent[],
    opts: ReplayOptions = {},
): Promise<ReplayResult> {
    const first = await replay(fn, input, history, opts);
    const second = await replay(fn, input, history, opts);
    expect(second).toStrictEqual(first);
    return first;
}

function isScheduling(type: EventType): boolean {
    return (
        type === EventType.TaskScheduled ||
        type === EventType.SubOrchestrationInstanceCreated ||
        type === EventType.TimerCreated ||
        type === EventType.EventSent
    );
}

function flatten(actions: ReplayAction[]): ReplayAction[] {
    return actions.flatMap((a) => (a.compoundActions ? flatten(a.compoundActions) : [a]));
}

/** The activity or sub-orchestration a task runs, or undefined for timers, events and entity calls. */
function scheduledName(task: TaskBase): string | undefined {
    let action = task.actionObj as ReplayAction | 'noOp';
    if (task instanceof NoOpTask && task.parent instanceof RetryableTask) {
        // A RetryableTask's children: [first attempt, back-off timer, attempt, back-off timer, …].
        if (task.parent.children.indexOf(task) % 2 === 1) return undefined;
        action = task.parent.actionObj as ReplayAction;
    }
    if (action === 'noOp' || action.actionType > 3) return undefined; // 0-3: activities and sub-orchestrations (± retry)
    return action.functionName;
}

/** The timer a task is, or undefined for any other task. */
function timerOf(task: TaskBase): Omit<ScheduledTimer, 'id'> | undefined {
    if (task instanceof NoOpTask && task.parent instanceof RetryableTask) {
        return task.parent.children.indexOf(task) % 2 === 1 ? { backOff: true, canceled: false } : undefined;
    }
    const action = task.actionObj as ReplayAction | 'noOp';
    if (action === 'noOp' || action.actionType !== 5) return undefined; // 5: CreateTimer
    return {
        ...(action.fireAt ? { fireAt: action.fireAt } : {}),
        backOff: false,
        canceled: action.isCanceled === true,
    };
}

function parseFailure(e: unknown): SdkState {
    const message = e instanceof Error ? e.message : String(e);
    const marker = message.indexOf(OUT_OF_PROC_MARKER);
    // Without the marker the SDK rejected the call itself (a malformed history): that is a test bug, not an outcome.
    if (marker < 0) throw e;
    return JSON.parse(message.slice(marker + OUT_OF_PROC_MARKER.length)) as SdkState;
}

// ---- task ids ----------------------------------------------------------------------------------------------
// The executor numbers each task when it is first yielded (trackOpenTask) and forgets it once completed, so the
// helper records every numbered task per executor. Retry attempts and back-off timers get ids only during replay,
// which is why the schedule cannot be read off the action list alone.

const TRACKED = Symbol.for('mesh.replay.numberedTasks');
type Tracking = TaskOrchestrationExecutor & { [TRACKED]?: Map<number, TaskBase> };
const executorProto = TaskOrchestrationExecutor.prototype;

if (!(TRACKED in executorProto.trackOpenTask)) {
    const original = Object.getOwnPropertyDescriptor(executorProto, 'trackOpenTask')!.value as (
        this: Tracking,
        task: unknown,
    ) => void;
    const tracking = function (this: Tracking, task: TaskBase): void {
        const hadId = task.id !== false;
        original.call(this, task);
        if (!hadId && typeof task.id === 'number') (this[TRACKED] ??= new Map<number, TaskBase>()).set(task.id, task);
    };
    Object.defineProperty(tracking, TRACKED, { value: true });
    executorProto.trackOpenTask = tracking;
}

function trackedTasks(context: InvocationContext): Map<number, TaskBase> {
    const executor = (context as { df?: { taskOrchestratorExecutor?: Tracking } }).df?.taskOrchestratorExecutor;
    return executor?.[TRACKED] ?? new Map<number, TaskBase>();
}
