/**
 * meshPipeline: runs one workflow through generation → filtering → creativity → taste → improvement (looping
 * back from improvement while the engine asks and `maxIterations` allows), stopping at each HITL checkpoint
 * the policy placed on the run. Awaits `Decision` events raced against the checkpoint deadline (a durable
 * timer) and `Control` events (pause and resume at the next safe point, abort at once). Every state change is
 * one `record` activity: an audit record plus the projection the status API reads.
 */
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import * as df from 'durable-functions';

import type { EventType } from '../../domain/audit';
import { type RunStatus, type Stage, STAGES } from '../../domain/pipeline';
import type { CheckpointSpec } from '../../domain/policy';
import { applyDecision, emptyQuorum } from '../../domain/quorum';
import { checkpointIdOf, type NextAction } from '../../domain/run';
import {
    type ControlEvent,
    type DecisionEvent,
    MeshPipeline,
    type PipelineInput,
    type PipelineOutcome,
    type ProjectionChange,
    type RecordInput,
    type RunStageInput,
    type RunStageResult,
} from './contract';

/** Engine calls: exponential back-off, bounded attempts (each attempt has the engine client's own timeout). */
const stageRetry = retryOptions(2_000, 4, 2, 30_000);
/** Store writes: quick retries for transient storage errors. */
const recordRetry = retryOptions(500, 5, 2, 10_000);

type Step<T> = Generator<Task, T, unknown>;
type Stop = { stopped: PipelineOutcome };
/** What a passed deadline leads to: the run stops, goes on (auto-approval), or waits again (escalated). */
type Expiry = { stop: Stop } | { continue: true } | { deadline: Date; requiredRoles: CheckpointSpec['requiredRoles']; escalated: boolean };

export const meshPipeline: OrchestrationHandler = function* (ctx: OrchestrationContext): Step<PipelineOutcome> {
    return yield* new Conductor(ctx, ctx.df.getInput<PipelineInput>()).run();
};

class Conductor {
    private events = 0;
    private status: RunStatus = 'Queued';
    private iteration = 1;
    private pauseRequest: ControlEvent | undefined;

    constructor(
        private readonly ctx: OrchestrationContext,
        private readonly input: PipelineInput,
    ) {}

    *run(): Step<PipelineOutcome> {
        yield* this.record('pipeline.started', 'system', { status: 'Running', iteration: 1 });
        let outputKey = '';
        for (;;) {
            let another = false;
            for (const stage of STAGES) {
                const before = yield* this.checkpoints(stage, 'before');
                if (before) return before.stopped;
                const safe = yield* this.safePoint();
                if (safe) return safe.stopped;
                const result = yield* this.stage(stage);
                if ('stopped' in result) return result.stopped;
                outputKey = result.outputKey;
                if (stage === 'improvement') another = result.continue;
                const after = yield* this.checkpoints(stage, 'after');
                if (after) return after.stopped;
            }
            // improvement may send the run round again while the engine asks and maxIterations allows.
            if (!another || this.iteration >= this.input.maxIterations) break;
            this.iteration++;
        }
        yield* this.record('pipeline.completed', 'system', { status: 'Completed', currentStage: null, nextAction: null, outputKey });
        return { status: 'Completed' };
    }

    // ---- stages ----

    private *stage(stage: Stage): Step<RunStageResult & { ok: true } | Stop> {
        const ctx = this.ctx;
        const request: RunStageInput = { runId: this.input.runId, stage, iteration: this.iteration, correlationID: this.input.correlationID, traceparent: this.input.traceparent };
        const work = ctx.df.callActivityWithRetry(MeshPipeline.activities.runStage, stageRetry, request);
        const control = ctx.df.waitForExternalEvent(MeshPipeline.events.control);
        const first = yield ctx.df.Task.any([work, control]);
        if (first === control) {
            const c = control.result as ControlEvent;
            if (c.action === 'abort') return yield* this.abort(c, stage);
            if (c.action === 'pause') this.pauseRequest ??= c; // takes effect when this stage has finished
            // Keep waiting for the engine alone: re-wrapping a scheduled task in a new Task.any would make the
            // Durable extension schedule it twice. Later control events wait (buffered) for the next safe point.
            yield work;
        }
        if (work.isFaulted) {
            const message = work.result instanceof Error ? firstLine(work.result.message) : 'the engine call failed';
            return yield* this.fail(stage, 'ENGINE_FAILED', `The ${stage} engine kept failing: ${message}`);
        }
        const result = work.result as RunStageResult;
        if (!result.ok) return yield* this.fail(stage, 'ENGINE_FAILED', `The ${stage} engine refused the request: ${result.code}: ${result.message}`);
        return result;
    }

    private *fail(stage: Stage, code: string, message: string): Step<Stop> {
        yield* this.record('stage.failed', 'system', { stage: { name: stage, status: 'Failed' } }, { stage, reason: message });
        yield* this.record('pipeline.failed', 'system', { status: 'Failed', nextAction: null, error: { code, message } }, { stage, reason: message });
        return { stopped: { status: 'Failed', stage } };
    }

    // ---- checkpoints ----

    private *checkpoints(stage: Stage, position: 'before' | 'after'): Step<Stop | undefined> {
        for (const spec of this.input.checkpoints.filter((c) => c.stage === stage && c.position === position)) {
            const stop = yield* this.checkpoint(spec);
            if (stop) return stop;
        }
        return undefined;
    }

    private *checkpoint(spec: CheckpointSpec): Step<Stop | undefined> {
        const ctx = this.ctx;
        const checkpointId = checkpointIdOf(this.input.runId, this.iteration, spec);
        let deadline = new Date(ctx.df.currentUtcDateTime.getTime() + spec.timeoutMs);
        let requiredRoles = spec.requiredRoles;
        let escalated = false;
        let quorum = emptyQuorum();
        const base = { checkpointId, key: spec.key, iteration: this.iteration, stage: spec.stage, position: spec.position };
        const nextAction = (): NextAction => ({ type: 'approval', checkpointId, stage: spec.stage, position: spec.position, requiredRoles, deadline: deadline.toISOString() });
        yield* this.record(
            'checkpoint.opened',
            'system',
            { status: 'AwaitingApproval', currentStage: spec.stage, nextAction: nextAction(), checkpoint: { ...base, status: 'Open', openedAt: this.now(), deadline: deadline.toISOString(), requiredRoles } },
            { checkpointId, stage: spec.stage, details: { requiredRoles, approvals: spec.approvals, deadline: deadline.toISOString(), channels: spec.channels, rule: spec.rule } },
        );
        for (;;) {
            // Fresh tasks every round: a task already yielded inside another Task.any is never re-wrapped.
            const timer = ctx.df.createTimer(deadline);
            const decision = ctx.df.waitForExternalEvent(MeshPipeline.events.decision);
            const control = ctx.df.waitForExternalEvent(MeshPipeline.events.control);
            const winner = yield ctx.df.Task.any([decision, timer, control]);
            if (winner !== timer) timer.cancel();

            let expired = winner === timer;
            if (winner === control) {
                const c = control.result as ControlEvent;
                if (c.action === 'abort') return yield* this.abort(c, spec.stage, checkpointId);
                if (c.action !== 'pause') continue; // resume while not paused: nothing to do
                const outcome = yield* this.paused(c, deadline, spec.stage, checkpointId);
                if (typeof outcome === 'object') return outcome;
                expired = outcome === 'expired';
                if (!expired) continue;
            }

            if (expired) {
                const r: Expiry = yield* this.expire(spec, base, escalated, requiredRoles, deadline);
                if ('stop' in r) return r.stop;
                if ('continue' in r) return undefined;
                ({ deadline, requiredRoles, escalated } = r);
                yield* this.record(
                    'checkpoint.escalated',
                    'system',
                    { status: 'AwaitingApproval', nextAction: nextAction(), checkpoint: { ...base, status: 'Escalated', escalated: true, deadline: deadline.toISOString(), requiredRoles } },
                    { checkpointId, stage: spec.stage, details: { escalateTo: spec.escalateTo, deadline: deadline.toISOString() } },
                );
                continue;
            }

            const d = decision.result as DecisionEvent;
            if (d.checkpointId !== checkpointId) continue; // a late decision for a checkpoint that has closed
            const applied = applyDecision(quorum, { actorId: d.actorId, decision: d.decision }, spec.approvals);
            if (!applied.counted) continue; // one person counts once toward a quorum
            quorum = applied.state;
            const closed = quorum.outcome !== 'open';
            const status = quorum.outcome === 'approved' ? 'Approved' : quorum.outcome === 'rejected' ? 'Rejected' : 'Open';
            yield* this.record(
                'checkpoint.decided',
                d.actorId,
                {
                    ...(closed ? { nextAction: null } : {}),
                    ...(quorum.outcome === 'approved' ? { status: 'Running' as const } : {}),
                    checkpoint: { ...base, status, decision: { actorId: d.actorId, actorName: d.actorName, decision: d.decision, comment: d.comment, channel: d.channel, at: this.now() } },
                },
                { checkpointId, stage: spec.stage, correlationID: d.correlationID, reason: d.comment, details: { decision: d.decision, channel: d.channel, approvals: quorum.approvers.length, required: spec.approvals } },
            );
            if (quorum.outcome === 'rejected') {
                yield* this.record('pipeline.rejected', d.actorId, { status: 'Rejected', nextAction: null }, { checkpointId, stage: spec.stage, correlationID: d.correlationID, reason: d.comment });
                return { stopped: { status: 'Rejected', stage: spec.stage, checkpointId } };
            }
            if (quorum.outcome === 'approved') return undefined;
        }
    }

    /**
     * The deadline passed: approve, reject (the run times out) or escalate once (wider roles, a new deadline).
     * Returns the new wait state after an escalation.
     */
    private *expire(
        spec: CheckpointSpec,
        base: Omit<NonNullable<ProjectionChange['checkpoint']>, 'status'>,
        escalated: boolean,
        requiredRoles: CheckpointSpec['requiredRoles'],
        deadline: Date,
    ): Step<Expiry> {
        const checkpointId = base.checkpointId;
        if (spec.onTimeout === 'escalate' && !escalated) {
            const roles = [...new Set([...requiredRoles, ...spec.escalateTo])];
            return { deadline: new Date(deadline.getTime() + spec.timeoutMs), requiredRoles: roles, escalated: true };
        }
        const approve = spec.onTimeout === 'approve';
        yield* this.record(
            'checkpoint.expired',
            'system',
            { nextAction: null, ...(approve ? { status: 'Running' as const } : {}), checkpoint: { ...base, status: approve ? 'Approved' : 'Expired' } },
            { checkpointId, stage: spec.stage, reason: `no decision by ${deadline.toISOString()}`, details: { onTimeout: spec.onTimeout, escalated } },
        );
        if (approve) return { continue: true };
        yield* this.record('pipeline.timedout', 'system', { status: 'TimedOut', nextAction: null }, { checkpointId, stage: spec.stage, reason: 'checkpoint deadline passed' });
        return { stop: { stopped: { status: 'TimedOut', stage: spec.stage, checkpointId } } };
    }

    // ---- pause, resume, abort ----

    /** Between stages: a pause requested during the last stage takes effect here. */
    private *safePoint(): Step<Stop | undefined> {
        const request = this.pauseRequest;
        if (!request) return undefined;
        this.pauseRequest = undefined;
        const outcome = yield* this.paused(request, undefined, undefined, undefined);
        return typeof outcome === 'object' ? outcome : undefined;
    }

    /** Paused: waits for resume or abort (and, while a checkpoint is open, its deadline keeps running). */
    private *paused(c: ControlEvent, deadline: Date | undefined, stage: Stage | undefined, checkpointId: string | undefined): Step<'resumed' | 'expired' | Stop> {
        const ctx = this.ctx;
        const resumeTo: RunStatus = this.status === 'AwaitingApproval' ? 'AwaitingApproval' : 'Running';
        yield* this.record('pipeline.paused', c.actorId, { status: 'Paused' }, { correlationID: c.correlationID, reason: c.reason, stage, checkpointId });
        for (;;) {
            const control = ctx.df.waitForExternalEvent(MeshPipeline.events.control);
            const timer = deadline ? ctx.df.createTimer(deadline) : undefined;
            const winner = yield timer ? ctx.df.Task.any([control, timer]) : control;
            if (timer && winner !== timer) timer.cancel();
            if (timer && winner === timer) return 'expired';
            const next = control.result as ControlEvent;
            if (next.action === 'abort') return yield* this.abort(next, stage, checkpointId);
            if (next.action === 'resume') {
                yield* this.record('pipeline.resumed', next.actorId, { status: resumeTo }, { correlationID: next.correlationID, reason: next.reason, stage, checkpointId });
                return 'resumed';
            }
        }
    }

    private *abort(c: ControlEvent, stage?: Stage, checkpointId?: string): Step<Stop> {
        yield* this.record('pipeline.aborted', c.actorId, { status: 'Aborted', nextAction: null }, { correlationID: c.correlationID, reason: c.reason, stage, checkpointId });
        return { stopped: { status: 'Aborted', stage, checkpointId } };
    }

    // ---- recording ----

    private *record(
        type: EventType,
        actor: string,
        projection: ProjectionChange,
        extra: { stage?: Stage; checkpointId?: string; reason?: string; details?: Record<string, unknown>; correlationID?: string } = {},
    ): Step<void> {
        const ctx = this.ctx;
        const input: RecordInput = {
            runId: this.input.runId,
            // Deterministic: the n-th state change of this run, whatever replays or retries happen.
            eventId: `${this.input.runId}/${++this.events}`,
            type,
            at: this.now(),
            actor,
            correlationID: extra.correlationID ?? this.input.correlationID,
            ...(extra.stage ? { stage: extra.stage } : {}),
            ...(extra.checkpointId ? { checkpointId: extra.checkpointId } : {}),
            ...(extra.reason ? { reason: extra.reason } : {}),
            ...(extra.details ? { details: extra.details } : {}),
            projection,
        };
        yield ctx.df.callActivityWithRetry(MeshPipeline.activities.record, recordRetry, input);
        if (projection.status) this.status = projection.status;
        ctx.df.setCustomStatus({ status: this.status, iteration: this.iteration, nextAction: projection.nextAction ?? null });
    }

    private now(): string {
        return this.ctx.df.currentUtcDateTime.toISOString();
    }
}

function retryOptions(firstMs: number, attempts: number, backoff: number, maxMs: number): df.RetryOptions {
    const r = new df.RetryOptions(firstMs, attempts);
    r.backoffCoefficient = backoff;
    r.maxRetryIntervalInMilliseconds = maxMs;
    return r;
}

function firstLine(s: string): string {
    return s.split('\n')[0]!.trim().slice(0, 300);
}

df.app.orchestration(MeshPipeline.name, meshPipeline);
