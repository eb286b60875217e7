/**
 * One orchestration episode, exactly as the Durable Task extension runs one for an out-of-process SDK:
 * the recorded history (replayed), a new OrchestratorStarted, the new events, then the handler's decision.
 * Pure apart from calling the user's (deterministic) orchestrator: it returns the events to append and the
 * work to schedule, and leaves persistence to the engine.
 */
import { InvocationContext } from '@azure/functions';

import { event, EventType, HistoryEvent, SCHEDULING_EVENTS, toJson } from './history';
import {
    executorOf,
    installTaskTracking,
    isNoOpTask,
    isRetryableTask,
    SdkAction,
    SdkTask,
    TaskState,
} from './sdkInternals';

installTaskTracking();

/** The orchestration trigger binding, with the settings the current extension sends (replay schema V4). */
export interface OrchestrationBinding {
    history: HistoryEvent[];
    input: unknown;
    instanceId: string;
    parentInstanceId: string | null;
    isReplaying: boolean;
    upperSchemaVersion: number;
    upperSchemaVersionNew: number;
    maximumShortTimerDuration: string;
    longRunningTimerIntervalDuration: string;
    defaultHttpAsyncRequestSleepTimeMillseconds: number;
}

export type OrchestrationHandler = (binding: OrchestrationBinding, ctx: InvocationContext) => Promise<unknown>;

export type Work =
    | { kind: 'activity'; taskId: number; name: string; input: unknown }
    | { kind: 'timer'; taskId: number; fireAt: Date }
    | { kind: 'subOrchestration'; taskId: number; name: string; instanceId: string; input: unknown; version?: string }
    | { kind: 'entityCall'; taskId: number; entityId: string; operation: string; input: unknown; requestId: string }
    | { kind: 'entitySignal'; entityId: string; operation: string; input: unknown; requestId: string };

export type EpisodeOutcome =
    | { status: 'running' }
    | { status: 'completed'; output: unknown }
    | { status: 'failed'; error: string; nonDeterministic?: boolean }
    | { status: 'continuedAsNew'; input: unknown };

export interface EpisodeResult {
    outcome: EpisodeOutcome;
    /** Events to append to the history, in order (OrchestratorStarted … OrchestratorCompleted). */
    appended: HistoryEvent[];
    work: Work[];
    /** Timer task ids the orchestrator cancelled whose fire messages can be dropped. */
    cancelledTimers: number[];
    customStatus: unknown;
}

export interface EpisodeRequest {
    name: string;
    instanceId: string;
    parentInstanceId: string | null;
    input: unknown;
    /** Events of earlier episodes of this execution. */
    past: readonly HistoryEvent[];
    /** New events delivered to this episode (completions, timers, raised events, ExecutionStarted). */
    incoming: readonly HistoryEvent[];
    now: Date;
    /** Generates ids for entity requests (random in production, seeded in tests). */
    newRequestId: () => string;
    log?: (level: string, message: string) => void;
}

export const BINDING_DEFAULTS = {
    upperSchemaVersion: 2,
    upperSchemaVersionNew: 3,
    maximumShortTimerDuration: '6.00:00:00',
    longRunningTimerIntervalDuration: '3.00:00:00',
    defaultHttpAsyncRequestSleepTimeMillseconds: 30_000,
};

const OUT_OF_PROC_MARKER = '$OutOfProcData$:';

export async function runEpisode(handler: OrchestrationHandler, req: EpisodeRequest): Promise<EpisodeResult> {
    const started = event(EventType.OrchestratorStarted, req.now);
    // Fresh shallow copies: the SDK turns each event's Timestamp string into a Date in place.
    const history = [
        ...req.past.map((e) => ({ ...e, IsPlayed: true })),
        { ...started },
        ...req.incoming.map((e) => ({ ...e, IsPlayed: false })),
    ];
    const binding: OrchestrationBinding = {
        history,
        input: req.input,
        instanceId: req.instanceId,
        parentInstanceId: req.parentInstanceId,
        isReplaying: req.past.length > 0,
        ...BINDING_DEFAULTS,
    };
    const ctx = new InvocationContext({
        functionName: req.name,
        invocationId: `${req.instanceId}:${req.now.getTime()}`,
        logHandler: (level, ...args) => req.log?.(level, args.map(String).join(' ')),
        options: { trigger: { type: 'orchestrationTrigger', name: 'context' }, extraInputs: [], extraOutputs: [] },
    });

    const appended: HistoryEvent[] = [started, ...req.incoming];
    let state: OrchestratorState;
    try {
        state = (await handler(binding, ctx)) as OrchestratorState;
    } catch (e: unknown) {
        const failed = parseFailure(e, req.name);
        return failedEpisode(appended, req.now, failed.error, failed.customStatus);
    }

    const tracked = executorOf(ctx)?.meshTracked ?? new Map<number, SdkTask>();
    const mismatch = checkDeterminism(req.past, tracked);
    if (mismatch) {
        return failedEpisode(
            appended,
            req.now,
            `Non-deterministic workflow detected: ${mismatch}`,
            state.customStatus,
            true,
        );
    }

    const scheduled = new Set(req.past.filter((e) => SCHEDULING_EVENTS.has(e.EventType)).map((e) => e.EventId));
    const work: Work[] = [];
    const cancelledTimers: number[] = [];
    for (const [id, task] of [...tracked.entries()].sort((a, b) => a[0] - b[0])) {
        const kind = classify(task);
        if (scheduled.has(id)) {
            if (kind.kind === 'timer' && kind.cancelled && task.state === TaskState.Running) cancelledTimers.push(id);
            continue;
        }
        if (task.state !== TaskState.Running) continue;
        const scheduling = schedule(id, kind, req);
        if ('error' in scheduling) {
            appended.push(event(EventType.OrchestratorCompleted, req.now));
            return {
                outcome: { status: 'failed', error: scheduling.error },
                appended,
                work: [],
                cancelledTimers: [],
                customStatus: state.customStatus,
            };
        }
        appended.push(scheduling.event);
        if (scheduling.work) work.push(scheduling.work);
    }

    // Signals are fire-and-forget actions with no task id: the ones already sent are recorded in history, in
    // order, and the replayed code must send the same ones first.
    const sent = req.past.filter((e) => e.EventType === EventType.EventSent && e.Signal);
    const signals = topLevelActions(state).filter((a) => a.actionType === ActionType.SignalEntity);
    const diverged = sent.findIndex(
        (e, i) => signals[i]?.instanceId !== e.InstanceId || signals[i]?.operation !== e.Name,
    );
    if (diverged >= 0) {
        const e = sent[diverged]!;
        const error = `Non-deterministic workflow detected: signal #${diverged} was '${e.Name ?? ''}' to ${e.InstanceId ?? ''} in history but the replayed code sent ${signals[diverged] ? `'${signals[diverged].operation ?? ''}' to ${signals[diverged].instanceId ?? ''}` : 'nothing'}.`;
        return failedEpisode(appended, req.now, error, state.customStatus, true);
    }
    for (const signal of signals.slice(sent.length)) {
        const requestId = req.newRequestId();
        const entityId = signal.instanceId ?? '';
        appended.push(
            event(EventType.EventSent, req.now, {
                Signal: true,
                InstanceId: entityId,
                Name: signal.operation ?? '',
                Input: JSON.stringify({ id: requestId, op: signal.operation, signal: true }),
            }),
        );
        work.push({
            kind: 'entitySignal',
            entityId,
            operation: signal.operation ?? '',
            input: signal.input,
            requestId,
        });
    }

    appended.push(event(EventType.OrchestratorCompleted, req.now));
    if (!state.isDone)
        return { outcome: { status: 'running' }, appended, work, cancelledTimers, customStatus: state.customStatus };

    const continueAsNew = topLevelActions(state).find((a) => a.actionType === ActionType.ContinueAsNew);
    if (continueAsNew) {
        appended.push(
            event(EventType.ContinueAsNew, req.now, { Input: toJson(decodeProcessedInput(continueAsNew.input)) }),
        );
        return {
            outcome: { status: 'continuedAsNew', input: decodeProcessedInput(continueAsNew.input) },
            appended,
            work,
            cancelledTimers,
            customStatus: state.customStatus,
        };
    }
    appended.push(
        event(EventType.ExecutionCompleted, req.now, {
            OrchestrationStatus: 'Completed',
            Result: toJson(state.output),
        }),
    );
    return {
        outcome: { status: 'completed', output: state.output },
        appended,
        work,
        cancelledTimers,
        customStatus: state.customStatus,
    };
}

interface OrchestratorState {
    isDone: boolean;
    actions: SdkAction[][];
    output?: unknown;
    error?: string;
    customStatus?: unknown;
}

/** The SDK's action type numbers (the extension's AsyncActionType). */
const ActionType = {
    CallActivity: 0,
    CallActivityWithRetry: 1,
    CallSubOrchestrator: 2,
    CallSubOrchestratorWithRetry: 3,
    ContinueAsNew: 4,
    CreateTimer: 5,
    CallEntity: 7,
    CallHttp: 8,
    SignalEntity: 9,
    LockEntities: 13,
} as const;

type TaskKind =
    | { kind: 'activity'; name: string; input: unknown }
    | { kind: 'subOrchestration'; name: string; instanceId?: string; input: unknown; version?: string }
    | { kind: 'timer'; fireAt: Date; cancelled: boolean }
    | { kind: 'retryTimer'; delayMs: number }
    | { kind: 'entityCall'; entityId: string; operation: string; input: unknown }
    | { kind: 'unsupported'; what: string };

/** What a tracked task asks the host to do, from its action (or, for retry steps, its parent's). */
function classify(task: SdkTask): TaskKind {
    if (isNoOpTask(task) && task.parent && isRetryableTask(task.parent)) {
        const parent = task.parent;
        const index = parent.children?.indexOf(task) ?? -1;
        // RetryableTask children: [first attempt, back-off timer, attempt, back-off timer, …].
        if (index % 2 === 1)
            return { kind: 'retryTimer', delayMs: retryDelay(parent.actionObj as SdkAction, (index + 1) / 2) };
        return classifyAction(parent.actionObj as SdkAction);
    }
    if (task.actionObj === 'noOp') return { kind: 'unsupported', what: 'a no-op task' };
    const kind = classifyAction(task.actionObj);
    // A long timer runs as a chain of sub-timers; cancelling it marks only the parent's action.
    const parentAction = task.parent?.actionObj;
    if (
        kind.kind === 'timer' &&
        parentAction &&
        parentAction !== 'noOp' &&
        parentAction.actionType === ActionType.CreateTimer &&
        parentAction.isCanceled
    ) {
        return { ...kind, cancelled: true };
    }
    return kind;
}

function classifyAction(action: SdkAction): TaskKind {
    switch (action.actionType) {
        case ActionType.CallActivity:
        case ActionType.CallActivityWithRetry:
            return { kind: 'activity', name: action.functionName ?? '', input: decodeProcessedInput(action.input) };
        case ActionType.CallSubOrchestrator:
        case ActionType.CallSubOrchestratorWithRetry:
            return {
                kind: 'subOrchestration',
                name: action.functionName ?? '',
                instanceId: action.instanceId,
                input: action.input,
                version: action.version,
            };
        case ActionType.CreateTimer:
            return { kind: 'timer', fireAt: new Date(action.fireAt ?? 0), cancelled: action.isCanceled === true };
        case ActionType.CallEntity:
            return {
                kind: 'entityCall',
                entityId: action.instanceId ?? '',
                operation: action.operation ?? '',
                input: action.input,
            };
        case ActionType.CallHttp:
            return { kind: 'unsupported', what: 'callHttp (durable HTTP) is not supported by the embedded host' };
        case ActionType.LockEntities:
            return {
                kind: 'unsupported',
                what: 'entity locks (context.df.lock) are not supported by the embedded host',
            };
        default:
            return { kind: 'unsupported', what: `action type ${action.actionType}` };
    }
}

/** DTFx's back-off: first interval × coefficient^(retry-1), capped by the maximum interval. */
function retryDelay(action: SdkAction, retry: number): number {
    const o = action.retryOptions;
    if (!o) return 0;
    const delay = o.firstRetryIntervalInMilliseconds * Math.pow(o.backoffCoefficient ?? 1, retry - 1);
    return Math.min(
        delay,
        o.maxRetryIntervalInMilliseconds && o.maxRetryIntervalInMilliseconds > 0
            ? o.maxRetryIntervalInMilliseconds
            : delay,
    );
}

function schedule(
    id: number,
    kind: TaskKind,
    req: EpisodeRequest,
): { event: HistoryEvent; work?: Work } | { error: string } {
    switch (kind.kind) {
        case 'activity':
            return {
                event: event(EventType.TaskScheduled, req.now, {
                    EventId: id,
                    Name: kind.name,
                    Input: toJson(kind.input),
                }),
                work: { kind: 'activity', taskId: id, name: kind.name, input: kind.input },
            };
        case 'subOrchestration': {
            const instanceId = kind.instanceId ?? `${req.instanceId}:${id.toString(16).padStart(4, '0')}`;
            return {
                event: event(EventType.SubOrchestrationInstanceCreated, req.now, {
                    EventId: id,
                    Name: kind.name,
                    InstanceId: instanceId,
                    Input: toJson(kind.input),
                }),
                work: {
                    kind: 'subOrchestration',
                    taskId: id,
                    name: kind.name,
                    instanceId,
                    input: kind.input,
                    version: kind.version,
                },
            };
        }
        case 'timer':
            return {
                event: event(EventType.TimerCreated, req.now, { EventId: id, FireAt: kind.fireAt.toISOString() }),
                work: kind.cancelled ? undefined : { kind: 'timer', taskId: id, fireAt: kind.fireAt },
            };
        case 'retryTimer': {
            const fireAt = new Date(req.now.getTime() + kind.delayMs);
            return {
                event: event(EventType.TimerCreated, req.now, { EventId: id, FireAt: fireAt.toISOString() }),
                work: { kind: 'timer', taskId: id, fireAt },
            };
        }
        case 'entityCall': {
            const requestId = req.newRequestId();
            return {
                event: event(EventType.EventSent, req.now, {
                    EventId: id,
                    InstanceId: kind.entityId,
                    Name: kind.operation,
                    Input: JSON.stringify({ id: requestId, op: kind.operation, signal: false, parent: req.instanceId }),
                }),
                work: {
                    kind: 'entityCall',
                    taskId: id,
                    entityId: kind.entityId,
                    operation: kind.operation,
                    input: kind.input,
                    requestId,
                },
            };
        }
        case 'unsupported':
            return { error: `Orchestrator function '${req.name}' failed: ${kind.what}` };
    }
}

/**
 * Compares the replayed tasks with what the history says was scheduled, as DTFx does: a task id whose
 * recorded kind or name differs, or a recorded task the code no longer schedules, means the code changed
 * under a running instance.
 */
function checkDeterminism(past: readonly HistoryEvent[], tracked: Map<number, SdkTask>): string | undefined {
    for (const e of past) {
        if (!SCHEDULING_EVENTS.has(e.EventType) || e.EventId < 0) continue;
        const task = tracked.get(e.EventId);
        if (!task)
            return `history has ${EventType[e.EventType]} #${e.EventId} (${e.Name ?? e.FireAt ?? ''}) but the replayed code did not schedule it.`;
        const kind = classify(task);
        const expected = expectedEvent(kind);
        if (expected.type !== e.EventType || (expected.name !== undefined && expected.name !== e.Name)) {
            return `task #${e.EventId} was ${EventType[e.EventType]} '${e.Name ?? ''}' in history but the replayed code scheduled ${EventType[expected.type]} '${expected.name ?? ''}'.`;
        }
    }
    return undefined;
}

function expectedEvent(kind: TaskKind): { type: EventType; name?: string } {
    switch (kind.kind) {
        case 'activity':
            return { type: EventType.TaskScheduled, name: kind.name };
        case 'subOrchestration':
            return { type: EventType.SubOrchestrationInstanceCreated, name: kind.name };
        case 'timer':
        case 'retryTimer':
            return { type: EventType.TimerCreated };
        case 'entityCall':
            return { type: EventType.EventSent, name: kind.operation };
        case 'unsupported':
            return { type: EventType.ExecutionFailed };
    }
}

function topLevelActions(state: OrchestratorState): SdkAction[] {
    return state.actions.flat();
}

/** CallActivity and ContinueAsNew JSON-encode string inputs once (Utils.processInput); undo that. */
function decodeProcessedInput(input: unknown): unknown {
    if (typeof input !== 'string') return input;
    try {
        return JSON.parse(input) as unknown;
    } catch {
        return input;
    }
}

function parseFailure(e: unknown, name: string): { status: 'failed'; error: string; customStatus?: unknown } {
    const message = e instanceof Error ? e.message : String(e);
    const at = message.indexOf(OUT_OF_PROC_MARKER);
    if (at >= 0) {
        try {
            const state = JSON.parse(message.slice(at + OUT_OF_PROC_MARKER.length)) as OrchestratorState;
            return {
                status: 'failed',
                error: `Orchestrator function '${name}' failed: ${state.error ?? 'unknown error'}`,
                customStatus: state.customStatus,
            };
        } catch {
            // fall through: report the raw message
        }
    }
    return { status: 'failed', error: `Orchestrator function '${name}' failed: ${message}` };
}

/** An episode that ends the instance as Failed: the completion events appended, no work scheduled. */
function failedEpisode(
    appended: HistoryEvent[],
    now: Date,
    error: string,
    customStatus: unknown,
    nonDeterministic = false,
): EpisodeResult {
    appended.push(event(EventType.OrchestratorCompleted, now));
    appended.push(event(EventType.ExecutionCompleted, now, { OrchestrationStatus: 'Failed', Result: toJson(error) }));
    return {
        outcome: { status: 'failed', error, ...(nonDeterministic ? { nonDeterministic } : {}) },
        appended,
        work: [],
        cancelledTimers: [],
        customStatus,
    };
}
