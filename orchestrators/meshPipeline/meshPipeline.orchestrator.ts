/**
 * meshPipeline: runs one workflow through generation → filtering → creativity → taste → improvement (looping
 * back from improvement while the engine asks and `maxIterations` allows), stopping at each HITL checkpoint
 * the policy placed on the run at submission. A checkpoint awaits `Decision:<checkpointId>` events raced
 * against its deadline (a durable timer), counting one vote per person; escalation widens the roles once and
 * sets a new deadline. Pause is state the stage activity reads at each safe point (the workflow then awaits a
 * `Resume` event); abort terminates the instance. Every state change is one `record` activity.
 *
 * No event waiter is ever abandoned in a race it may lose and waited for again under the same name, and no
 * scheduled task is wrapped into a second Task.any: the Durable extension replays out-of-process actions
 * with .NET semantics (FIFO event waiters, every compound child scheduled again), and either would make
 * the two sides disagree.
 */
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import * as df from 'durable-functions';

import type { AuditType } from '../../domain/audit';
import { type Stage, STAGES } from '../../domain/pipeline';
import type { CheckpointSpec } from '../../domain/policy';
import { applyDecision, DECISIONS, emptyQuorum } from '../../domain/quorum';
import { checkpointIdOf, type NextAction } from '../../domain/run';
import {
    type DecisionEvent,
    decisionEvent,
    MeshPipeline,
    type PipelineInput,
    type PipelineOutcome,
    type ProjectionChange,
    type RecordInput,
    type RecordResult,
    type ResumeEvent,
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
type Expiry = { stop: Stop } | { continue: true } | { deadline: Date; requiredRoles: CheckpointSpec['requiredRoles'] };

export const meshPipeline: OrchestrationHandler = function* (ctx: OrchestrationContext): Step<PipelineOutcome> {
    return yield* new Conductor(ctx, ctx.df.getInput<PipelineInput>()).run();
};

class Conductor {
    private events = 0;
    private iteration = 1;

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
        yield* this.record('pipeline.completed', 'system', {
            status: 'Completed',
            currentStage: null,
            nextAction: null,
            outputKey,
        });
        return { status: 'Completed' };
    }

    // ---- stages ----

    /** One stage; the activity itself is the safe point: a held run answers PAUSED and the stage runs on resume. */
    private *stage(stage: Stage): Step<(RunStageResult & { ok: true }) | Stop> {
        const ctx = this.ctx;
        const request: RunStageInput = {
            runId: this.input.runId,
            stage,
            iteration: this.iteration,
            correlationID: this.input.correlationID,
            traceparent: this.input.traceparent,
        };
        for (;;) {
            let result: RunStageResult;
            try {
                result = (yield ctx.df.callActivityWithRetry(
                    MeshPipeline.activities.runStage,
                    stageRetry,
                    request,
                )) as RunStageResult;
            } catch (e: unknown) {
                const message = e instanceof Error ? firstLine(e.message) : 'the engine call failed';
                return yield* this.fail(stage, 'ENGINE_FAILED', `The ${stage} engine kept failing: ${message}`);
            }
            if (result.ok) return result;
            if (result.code === 'PAUSED' && 'pauseId' in result) {
                yield* this.awaitResume(result.pauseId);
                continue;
            }
            if (result.code === 'FINISHED' && 'status' in result)
                return { stopped: { status: result.status as PipelineOutcome['status'], stage } };
            return yield* this.fail(
                stage,
                'ENGINE_FAILED',
                `The ${stage} engine refused the request: ${result.code}: ${result.message}`,
            );
        }
    }

    /** Parked until the resume for this pause arrives (a stale resume of an earlier pause is consumed and ignored). */
    private *awaitResume(pauseId: string): Step<void> {
        for (;;) {
            const resume = (yield this.ctx.df.waitForExternalEvent(MeshPipeline.events.resume)) as ResumeEvent;
            if (resume.pauseId === pauseId) return;
        }
    }

    private *fail(stage: Stage, code: string, message: string): Step<Stop> {
        yield* this.record(
            'stage.failed',
            'system',
            { stage: { name: stage, status: 'Failed' } },
            { stage, reason: message },
        );
        yield* this.record(
            'pipeline.failed',
            'system',
            { status: 'Failed', nextAction: null, error: { code, message } },
            { stage, reason: message },
        );
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
        const seen = new Set<string>();
        const base = {
            checkpointId,
            key: spec.key,
            iteration: this.iteration,
            stage: spec.stage,
            position: spec.position,
        };
        const nextAction = (): NextAction => ({
            type: 'approval',
            checkpointId,
            stage: spec.stage,
            position: spec.position,
            requiredRoles,
            deadline: deadline.toISOString(),
        });
        yield* this.record(
            'checkpoint.opened',
            'system',
            {
                status: 'AwaitingApproval',
                currentStage: spec.stage,
                nextAction: nextAction(),
                checkpoint: {
                    ...base,
                    status: 'Open',
                    openedAt: this.now(),
                    deadline: deadline.toISOString(),
                    requiredRoles,
                },
            },
            {
                checkpointId,
                stage: spec.stage,
                details: {
                    requiredRoles,
                    approvals: spec.approvals,
                    deadline: deadline.toISOString(),
                    channels: spec.channels,
                    rule: spec.rule,
                },
            },
        );
        // The waiter that lost to the first deadline when the checkpoint escalated. It is never waited for again,
        // but a decision raised on the old name just as the checkpoint escalated still lands in it: it is read
        // at every wake-up, so that decision is counted, not lost.
        let stale: Task | undefined;
        for (;;) {
            let d: DecisionEvent;
            if (stale?.isCompleted) {
                d = stale.result as DecisionEvent;
                stale = undefined;
            } else {
                // A decision that wins is consumed, so the next round's waiter is the only one under this name.
                const timer = ctx.df.createTimer(deadline);
                const decision = ctx.df.waitForExternalEvent(decisionEvent(checkpointId, escalated));
                const winner = yield ctx.df.Task.any([decision, timer]);
                if (winner === timer) {
                    if (stale?.isCompleted) continue; // count the late-landed decision before judging the deadline
                    const r: Expiry = yield* this.expire(spec, base, escalated, requiredRoles, deadline);
                    if ('stop' in r) return r.stop;
                    if ('continue' in r) return undefined;
                    ({ deadline, requiredRoles } = r);
                    escalated = true;
                    stale = decision;
                    yield* this.record(
                        'checkpoint.escalated',
                        'system',
                        {
                            status: 'AwaitingApproval',
                            nextAction: nextAction(),
                            checkpoint: {
                                ...base,
                                status: 'Escalated',
                                escalated: true,
                                deadline: deadline.toISOString(),
                                requiredRoles,
                            },
                        },
                        {
                            checkpointId,
                            stage: spec.stage,
                            details: { escalateTo: spec.escalateTo, deadline: deadline.toISOString() },
                        },
                    );
                    continue;
                }
                timer.cancel();
                d = decision.result as DecisionEvent;
            }

            if (!isDecisionEvent(d)) {
                // Not a decision at all (raised by hand): refused and audited, never allowed to fail the workflow.
                yield* this.refuse(spec, checkpointId, d);
                continue;
            }
            if (seen.has(d.decisionId)) continue; // a retried raise of a decision already counted
            seen.add(d.decisionId);
            const applied = applyDecision(quorum, { actorId: d.actorId, decision: d.decision }, spec.approvals);
            if (!applied.counted) continue; // one person counts once toward a quorum
            const next = applied.state;
            const closed = next.outcome !== 'open';
            const status =
                next.outcome === 'approved'
                    ? 'Approved'
                    : next.outcome === 'rejected'
                      ? 'Rejected'
                      : escalated
                        ? 'Escalated'
                        : 'Open';
            // The record activity checks the decision (attestation, four-eyes, role, team, open checkpoint) before
            // it counts; a refused one is audited as such and the checkpoint waits on, its quorum unchanged.
            const result = yield* this.record(
                'checkpoint.decided',
                d.actorId,
                {
                    ...(closed ? { nextAction: null } : {}),
                    ...(next.outcome === 'approved' ? { status: 'Running' as const } : {}),
                    checkpoint: {
                        ...base,
                        status,
                        decision: {
                            actorId: d.actorId,
                            actorName: d.actorName,
                            decision: d.decision,
                            comment: d.comment,
                            channel: d.channel,
                            at: this.now(),
                        },
                    },
                },
                {
                    checkpointId,
                    stage: spec.stage,
                    correlationID: d.correlationID,
                    reason: d.comment,
                    details: {
                        decision: d.decision,
                        channel: d.channel,
                        approvals: next.approvers.length,
                        required: spec.approvals,
                    },
                    decision: {
                        decisionId: d.decisionId,
                        decision: d.decision,
                        actorId: d.actorId,
                        channel: d.channel,
                        ...(d.comment !== undefined ? { comment: d.comment } : {}),
                        ...(d.attestation !== undefined ? { attestation: d.attestation } : {}),
                    },
                },
            );
            if (isRefused(result)) {
                seen.delete(d.decisionId); // a genuine decision under the same id may still come
                continue;
            }
            quorum = next;
            if (quorum.outcome === 'rejected') {
                yield* this.record(
                    'pipeline.rejected',
                    d.actorId,
                    { status: 'Rejected', nextAction: null },
                    { checkpointId, stage: spec.stage, correlationID: d.correlationID, reason: d.comment },
                );
                return { stopped: { status: 'Rejected', stage: spec.stage, checkpointId } };
            }
            if (quorum.outcome === 'approved') return undefined;
        }
    }

    /** The deadline passed: approve, reject (the run times out) or escalate once (wider roles, a new deadline). */
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
            return { deadline: new Date(deadline.getTime() + spec.timeoutMs), requiredRoles: roles };
        }
        const approve = spec.onTimeout === 'approve';
        yield* this.record(
            'checkpoint.expired',
            'system',
            {
                nextAction: null,
                ...(approve ? { status: 'Running' as const } : {}),
                checkpoint: { ...base, status: approve ? 'Approved' : 'Expired' },
            },
            {
                checkpointId,
                stage: spec.stage,
                reason: `no decision by ${deadline.toISOString()}`,
                details: { onTimeout: spec.onTimeout, escalated },
            },
        );
        if (approve) return { continue: true };
        yield* this.record(
            'pipeline.timedout',
            'system',
            { status: 'TimedOut', nextAction: null },
            { checkpointId, stage: spec.stage, reason: 'checkpoint deadline passed' },
        );
        return { stop: { stopped: { status: 'TimedOut', stage: spec.stage, checkpointId } } };
    }

    // ---- recording ----

    private *record(
        type: AuditType,
        actor: string,
        projection: ProjectionChange,
        extra: {
            stage?: Stage;
            checkpointId?: string;
            reason?: string;
            details?: Record<string, unknown>;
            correlationID?: string;
            decision?: RecordInput['decision'];
        } = {},
    ): Step<RecordResult> {
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
            ...(extra.decision ? { decision: extra.decision } : {}),
        };
        const result = (yield ctx.df.callActivityWithRetry(
            MeshPipeline.activities.record,
            recordRetry,
            input,
        )) as RecordResult;
        if (isRefused(result)) return result;
        ctx.df.setCustomStatus({ event: type, iteration: this.iteration, nextAction: projection.nextAction ?? null });
        return undefined;
    }

    /** A decision event that is no decision: one `checkpoint.refused` record, nothing else. */
    private *refuse(spec: CheckpointSpec, checkpointId: string, raised: unknown): Step<void> {
        const claimed = (raised as { actorId?: unknown } | null)?.actorId;
        yield* this.record(
            'checkpoint.refused',
            typeof claimed === 'string' && claimed !== '' ? claimed.slice(0, 256) : 'unknown',
            {},
            { checkpointId, stage: spec.stage, reason: 'decision refused: the event is not a well-formed decision' },
        );
    }

    private now(): string {
        return this.ctx.df.currentUtcDateTime.toISOString();
    }
}

/** Whether `record` refused a decision (older histories answered null for every record). */
function isRefused(result: unknown): result is { refused: string } {
    return (
        typeof result === 'object' && result !== null && typeof (result as { refused?: unknown }).refused === 'string'
    );
}

/** The fields the workflow relies on, so a hand-raised event of any other shape cannot make it fail. */
function isDecisionEvent(d: unknown): d is DecisionEvent {
    if (typeof d !== 'object' || d === null) return false;
    const e = d as Record<string, unknown>;
    return (
        typeof e.decisionId === 'string' &&
        typeof e.actorId === 'string' &&
        (DECISIONS as readonly unknown[]).includes(e.decision) &&
        (e.channel === 'api' || e.channel === 'link') &&
        typeof e.correlationID === 'string' &&
        (e.comment === undefined || typeof e.comment === 'string') &&
        (e.actorName === undefined || typeof e.actorName === 'string')
    );
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
