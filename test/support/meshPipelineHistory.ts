/**
 * A scenario builder for meshPipeline replay tests. It plays the Durable extension's part one episode at a time:
 * replay the history so far (twice, through `expectDeterministic`, and checked with `assertSchedulePrefix`), read
 * what the code newly scheduled (activities from `schedule`, timers from `timers`), append their TaskScheduled /
 * TimerCreated events, and let the test decide what arrives next (a completion, a failure, a raised event, a fired
 * timer). Tests never count task ids: they name the pending work and the builder looks the ids up.
 *
 * Time is in seconds after T0, as in `h`. Every episode starts at the builder's clock, which moves forward by one
 * second per episode unless the test sets it (`at`), so OrchestratorStarted timestamps are the only clock the
 * orchestrator sees.
 */
import type { OrchestrationHandler } from 'durable-functions';

import type { HistoryEvent } from '../../local/durable/history';
import { EventType } from '../../local/durable/history';
import {
    MeshPipeline,
    type PipelineInput,
    type RecordInput,
    type RunStageInput,
    type RunStageResult,
} from '../../orchestrators/meshPipeline/contract';
import { meshPipeline } from '../../orchestrators/meshPipeline/meshPipeline.orchestrator';
import { assertSchedulePrefix, expectDeterministic, h, type ReplayAction, type ReplayResult, T0 } from './durable';

const A = MeshPipeline.activities;

/** An activity attempt that is scheduled and has no result in the history yet. */
export interface PendingActivity {
    id: number;
    name: string;
    input: unknown;
    /** 1 for the first attempt, 2… for retries of the same call. */
    attempt: number;
    maxAttempts: number;
    firstRetryMs: number;
}

/** A timer that is created and has not fired in the history yet (cancelled ones are dropped, as the host does). */
export interface PendingTimer {
    id: number;
    /** Seconds after T0. */
    fireAt: number;
    backOff: boolean;
    /** For a back-off timer: the attempt it follows. */
    after?: PendingActivity;
}

/** What the builder answers a runStage call with when the test does not say: success, no further iteration. */
export function okStage(input: RunStageInput, more = false): RunStageResult {
    return { ok: true, continue: more, outputKey: `${input.iteration}.${input.stage}` };
}

export interface DriveOptions {
    /** The engine's answer per stage call (default `okStage`). */
    stage?: (input: RunStageInput) => RunStageResult;
    /** Stop (leave the call pending) before answering the first runStage call this matches. */
    stopAt?: (input: RunStageInput) => boolean;
    /** Stop (leave the call pending) before answering the first record call this matches. */
    stopAtRecord?: (input: RecordInput) => boolean;
}

export class PipelineHistory {
    readonly history: HistoryEvent[];
    /** The latest replay of the full history. */
    last!: ReplayResult;
    private clock = 0;
    private pendingActivities: PendingActivity[] = [];
    private pendingTimers: PendingTimer[] = [];
    private activityActionsSeen = 0;
    /** Failed attempts whose back-off timer the next replay creates. */
    private expectedBackOffs: PendingActivity[] = [];
    /** Failed attempts whose back-off timer fired: the next replay schedules their retry, if attempts remain. */
    private firedBackOffs: PendingActivity[] = [];

    private constructor(
        readonly input: PipelineInput,
        private readonly fn: OrchestrationHandler = meshPipeline,
    ) {
        this.history = h.started(input, 0, MeshPipeline.name);
    }

    /** The first episode: ExecutionStarted, then whatever the code schedules. */
    static async start(input: PipelineInput): Promise<PipelineHistory> {
        const b = new PipelineHistory(input);
        await b.replayAndSchedule();
        return b;
    }

    // ---- what the orchestrator did ----------------------------------------------------------------------------

    get done(): boolean {
        return this.last.done;
    }

    get output(): unknown {
        return this.last.output;
    }

    /** Seconds after T0 of the latest episode. */
    get now(): number {
        return this.clock;
    }

    /** Every record call so far (the inputs the orchestrator passed), in order. */
    records(): RecordInput[] {
        return this.activityActions()
            .filter((a) => a.functionName === A.record)
            .map((a) => a.input as RecordInput);
    }

    /** The audit event types recorded so far, with runStage calls shown as `runStage:<stage>#<iteration>`. */
    trail(): string[] {
        return this.activityActions().map((a) => {
            if (a.functionName === A.record) return (a.input as RecordInput).type;
            const s = a.input as RunStageInput;
            return `runStage:${s.stage}#${s.iteration}`;
        });
    }

    /** Every runStage call so far. */
    stageCalls(): RunStageInput[] {
        return this.activityActions()
            .filter((a) => a.functionName === A.runStage)
            .map((a) => a.input as RunStageInput);
    }

    pending(): readonly PendingActivity[] {
        return this.pendingActivities;
    }

    timers(): readonly PendingTimer[] {
        return this.pendingTimers;
    }

    /** The one pending activity (throws when there is none or more than one). */
    only(name?: string): PendingActivity {
        const list = this.pendingActivities.filter((a) => name === undefined || a.name === name);
        if (list.length !== 1) {
            throw new Error(
                `expected one pending ${name ?? 'activity'}, found [${list.map((a) => `#${a.id} ${a.name}`).join(', ')}]`,
            );
        }
        return list[0]!;
    }

    /** The one pending non-back-off timer (the checkpoint deadline). */
    deadlineTimer(): PendingTimer {
        const list = this.pendingTimers.filter((t) => !t.backOff);
        if (list.length !== 1) throw new Error(`expected one pending deadline timer, found ${list.length}`);
        return list[0]!;
    }

    // ---- what arrives next ------------------------------------------------------------------------------------

    /** Sets the time (seconds after T0) of the next episode; it never moves backwards. */
    at(seconds: number): this {
        if (seconds < this.clock) throw new Error(`time runs forwards: ${seconds} < ${this.clock}`);
        this.clock = seconds - 1; // the next episode adds one second
        return this;
    }

    /** A TaskCompleted for the pending activity (default: the only one). */
    completion(result: unknown, activity: PendingActivity = this.only()): (t: number) => HistoryEvent {
        this.settle(activity);
        return (t) => h.completed(activity.id, result, t);
    }

    /** A TaskFailed for the pending activity; with retries left, the code then waits on a back-off timer. */
    failure(reason: string, activity: PendingActivity = this.only()): (t: number) => HistoryEvent {
        this.settle(activity);
        this.expectedBackOffs.push(activity);
        return (t) => h.failed(activity.id, reason, `Error: ${reason}`, t);
    }

    /** An EventRaised, e.g. a decision under `decisionEvent(checkpointId, escalated)`, or `MeshPipeline.events.resume`. */
    raised(name: string, data: unknown): (t: number) => HistoryEvent {
        return (t) => h.raised(name, data, t);
    }

    /**
     * A TimerFired for a pending timer (default: the deadline timer), to deliver in one episode with other events
     * (`fire` is the same alone). The episode is no earlier than the timer's fire time.
     */
    firing(timer: PendingTimer = this.deadlineTimer()): (t: number) => HistoryEvent {
        this.pendingTimers = this.pendingTimers.filter((t) => t !== timer);
        if (timer.after && timer.after.attempt < timer.after.maxAttempts) this.firedBackOffs.push(timer.after);
        if (timer.fireAt - 1 > this.clock) this.clock = timer.fireAt - 1;
        return (t) => h.fired(timer.id, t);
    }

    /** One episode delivering these events (built by `completion`, `failure`, `raised`). */
    async deliver(...events: ((t: number) => HistoryEvent)[]): Promise<ReplayResult> {
        this.clock += 1;
        this.history.push(h.episode(this.clock), ...events.map((e) => e(this.clock)));
        return this.replayAndSchedule();
    }

    /** Completes the one pending activity (records answer null). */
    async complete(result: unknown = null): Promise<ReplayResult> {
        return this.deliver(this.completion(result));
    }

    async raise(name: string, data: unknown): Promise<ReplayResult> {
        return this.deliver(this.raised(name, data));
    }

    /** Fires a pending timer (default: the deadline timer) in an episode at its fire time. */
    async fire(timer: PendingTimer = this.deadlineTimer()): Promise<ReplayResult> {
        return this.deliver(this.firing(timer));
    }

    /**
     * Answers pending activities one episode at a time (records with null, runStage with `opts.stage`) until the
     * code waits for something else (an event or a timer), finishes, or reaches the `stopAt` stage call.
     */
    async drive(opts: DriveOptions = {}): Promise<ReplayResult> {
        for (;;) {
            if (this.done || this.pendingActivities.length !== 1) return this.last;
            const next = this.pendingActivities[0]!;
            if (next.name === A.record) {
                if (opts.stopAtRecord?.(next.input as RecordInput)) return this.last;
                await this.complete(null);
                continue;
            }
            const input = next.input as RunStageInput;
            if (opts.stopAt?.(input)) return this.last;
            await this.complete((opts.stage ?? okStage)(input));
        }
    }

    /** Fails the pending runStage call through every attempt of its RetryOptions (back-off timers included). */
    async failStageThroughRetries(reason: string): Promise<ReplayResult> {
        const first = this.only(A.runStage);
        for (let attempt = 1; attempt <= first.maxAttempts; attempt++) {
            await this.deliver(this.failure(reason, this.only(A.runStage)));
            await this.fire(this.backOffTimer());
        }
        return this.last;
    }

    backOffTimer(): PendingTimer {
        const list = this.pendingTimers.filter((t) => t.backOff);
        if (list.length !== 1) throw new Error(`expected one pending back-off timer, found ${list.length}`);
        return list[0]!;
    }

    // ---- the episode machinery --------------------------------------------------------------------------------

    private settle(activity: PendingActivity): void {
        if (!this.pendingActivities.includes(activity))
            throw new Error(`#${activity.id} ${activity.name} is not pending`);
        this.pendingActivities = this.pendingActivities.filter((a) => a !== activity);
    }

    private activityActions(): ReplayAction[] {
        return this.last.actions.filter((a) => a.actionType <= 3 && a.functionName !== undefined);
    }

    /** Replays the history (twice), then records what the code newly scheduled, as the extension would. */
    private async replayAndSchedule(): Promise<ReplayResult> {
        const r = await expectDeterministic(this.fn, this.input, this.history, { functionName: MeshPipeline.name });
        assertSchedulePrefix(r, this.history);
        this.last = r;

        const known = new Set(
            this.history
                .filter((e) => e.EventType === EventType.TaskScheduled || e.EventType === EventType.TimerCreated)
                .map((e) => e.EventId),
        );
        const actions = this.activityActions();
        const freshActions = actions.slice(this.activityActionsSeen);
        this.activityActionsSeen = actions.length;
        const scheduling: HistoryEvent[] = [];

        for (const t of r.timers) {
            if (known.has(t.id)) {
                // A lost race: the code cancelled it; the host drops its fire message, so the test never fires it.
                if (t.canceled) this.pendingTimers = this.pendingTimers.filter((p) => p.id !== t.id);
                continue;
            }
            const after = t.backOff ? this.expectedBackOffs.shift() : undefined;
            const fireAt = t.fireAt ? (t.fireAt.getTime() - T0.getTime()) / 1000 : this.clock + backOffMs(after) / 1000;
            if (!t.canceled)
                this.pendingTimers.push({ id: t.id, fireAt, backOff: t.backOff, ...(after ? { after } : {}) });
            scheduling.push(h.timerCreated(t.id, fireAt));
        }
        for (const task of r.schedule) {
            if (known.has(task.id)) continue;
            const retried = this.retryFor(task.name);
            const action = retried ? undefined : freshActions.shift();
            if (!retried && action?.functionName !== task.name) {
                throw new Error(`cannot tell which call task #${task.id} ${task.name} is`);
            }
            const retry = action?.retryOptions as
                { maxNumberOfAttempts?: number; firstRetryIntervalInMilliseconds?: number } | undefined;
            const activity: PendingActivity = retried
                ? { ...retried, id: task.id, attempt: retried.attempt + 1 }
                : {
                      id: task.id,
                      name: task.name,
                      input: action!.input,
                      attempt: 1,
                      maxAttempts: retry?.maxNumberOfAttempts ?? 1,
                      firstRetryMs: retry?.firstRetryIntervalInMilliseconds ?? 0,
                  };
            this.pendingActivities.push(activity);
            scheduling.push(h.scheduled(task.id, task.name, activity.input));
        }
        scheduling.sort((a, b) => a.EventId - b.EventId);
        this.history.push(...scheduling, h.ended(this.clock));
        return r;
    }

    /** A retry attempt is scheduled once its back-off timer fired and attempts remain. */
    private retryFor(name: string): PendingActivity | undefined {
        const fired = this.firedBackOffs.find((a) => a.name === name);
        if (fired) this.firedBackOffs = this.firedBackOffs.filter((a) => a !== fired);
        return fired;
    }
}

/** Roughly the extension's back-off; only for readable histories (the SDK never reads a TimerCreated's FireAt). */
function backOffMs(after: PendingActivity | undefined): number {
    return after ? Math.max(1_000, after.firstRetryMs * 2 ** (after.attempt - 1)) : 1_000;
}
