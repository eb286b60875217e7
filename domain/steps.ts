/**
 * The pipeline's side-effecting steps, written against ports so the activities that run them stay thin and
 * tests can drive them with fakes. Both are idempotent: a retried or re-executed activity changes nothing twice.
 */
import { type DecisionProof, refusalOf } from './attestation';
import type { AuditType, NewAuditEvent } from './audit';
import { NotFoundError } from './errors';
import { isTerminal, type RunStatus, type Stage, STAGES } from './pipeline';
import type { AuditLog, DecisionSeals, EngineClient, RunStore } from './ports';
import { applyProjection, type ProjectionChange } from './projection';
import type { RunDoc } from './run';

/** One state change: an audit record plus the projection change, applied idempotently by `eventId`. */
export interface RecordInput {
    runId: string;
    eventId: string;
    type: AuditType;
    at: string;
    actor: string;
    correlationID: string;
    stage?: Stage;
    checkpointId?: string;
    reason?: string;
    details?: Record<string, unknown>;
    projection: ProjectionChange;
    /** With `checkpoint.decided`: the decision as it arrived, checked before it counts (domain/attestation.ts). */
    decision?: DecisionProof;
}

/**
 * What `record` answers: nothing when the change was recorded; for a decision that failed its checks, why it was
 * refused (an audit record of the refusal was written instead, the projection left as it was).
 */
export type RecordResult = { refused: string } | undefined;

export interface RunStageInput {
    runId: string;
    stage: Stage;
    iteration: number;
    correlationID: string;
    traceparent: string;
}

export type RunStageResult =
    | { ok: true; continue: boolean; outputKey: string }
    /** An operator holds the run: park until resumed with this pauseId, then run the stage. */
    | { ok: false; code: 'PAUSED'; pauseId: string; message: string }
    /** The run ended outside the workflow (aborted): stop quietly. */
    | { ok: false; code: 'FINISHED'; status: RunStatus; message: string }
    | { ok: false; code: string; message: string };

/** Where a stage's output is stored. */
export function outputKey(iteration: number, stage: Stage): string {
    return `${iteration}.${stage}`;
}

interface StoredOutput {
    output: unknown;
    continue: boolean;
}

export interface StepPorts {
    runs: RunStore;
    audit: AuditLog;
    engine: EngineClient;
    now: () => Date;
    /** Decision attestations and sealed comments: without them no decision counts. */
    seals?: DecisionSeals;
    /** Called after a state change is durable (event publishing hooks in here). */
    onRecorded?: (input: RecordInput) => Promise<void>;
}

/**
 * Appends the audit record (once per eventId) and applies the projection change (idempotent by nature).
 * A run that already ended (aborted from outside the workflow) takes no further records.
 *
 * A decision (`checkpoint.decided`) is checked first, however it reached the workflow: its attestation must verify
 * and still satisfy the checkpoint as stored (domain/attestation.ts `refusalOf`). A refused one appends a
 * `checkpoint.refused` record under the same eventId instead (actor: who it claims to be; reason: why) and changes
 * nothing else. A decision's comment arrives sealed for the durable history: it is opened here and the stores seal it
 * under their own contexts.
 */
export async function recordStateChange(
    p: Pick<StepPorts, 'runs' | 'audit' | 'onRecorded' | 'seals'>,
    recorded: RecordInput,
): Promise<RecordResult> {
    const current = await p.runs.get(recorded.runId);
    if (!current) return undefined;
    if (recorded.type === 'checkpoint.decided') {
        const why = await refusal(p, recorded, current);
        if (why !== undefined) {
            if (!isTerminal(current.status)) await p.audit.append(refusalRecord(recorded, why));
            return { refused: why };
        }
    }
    if (isTerminal(current.status)) return undefined;
    if (recorded.type === 'checkpoint.refused') {
        // A refusal changes nothing but the audit trail.
        const { projection: _none, decision: _proof, ...refused } = recorded;
        await p.audit.append(refused);
        return undefined;
    }
    const input = await openedComments(p, recorded);
    const { projection, decision: _proof, ...event } = input;
    const output = projection.outputKey
        ? ((await p.runs.getOutput(input.runId, projection.outputKey)) as StoredOutput | undefined)?.output
        : undefined;
    // Issued together: the embedded store commits both in one transaction; elsewhere each is idempotent.
    await Promise.all([
        p.audit.append(event),
        p.runs.update(input.runId, (run) => applyProjection(run, projection, input.at, output)),
    ]);
    await p.onRecorded?.(input);
    return undefined;
}

/** Why a decision must not count (undefined: it counts). */
async function refusal(p: Pick<StepPorts, 'seals'>, input: RecordInput, run: RunDoc): Promise<string | undefined> {
    const proof = input.decision;
    if (!proof || input.checkpointId === undefined) return 'the decision carries no attestation';
    if (!p.seals) return 'this host cannot verify decisions';
    const verified = await p.seals.verify(proof.attestation);
    return refusalOf(verified, proof, input.runId, input.checkpointId, run, input.at);
}

/** The audit record of a refused decision: who it claimed to be, why it was refused, nothing it claimed to say. */
function refusalRecord(input: RecordInput, reason: string): NewAuditEvent {
    const proof = input.decision;
    const claimed = typeof proof?.actorId === 'string' && proof.actorId !== '' ? proof.actorId : input.actor;
    return {
        eventId: input.eventId,
        runId: input.runId,
        type: 'checkpoint.refused',
        at: input.at,
        actor: String(claimed || 'unknown').slice(0, 256),
        correlationID: input.correlationID,
        ...(input.stage ? { stage: input.stage } : {}),
        ...(input.checkpointId ? { checkpointId: input.checkpointId } : {}),
        reason: `decision refused: ${reason}`,
        details: {
            ...(typeof proof?.decisionId === 'string' ? { decisionId: proof.decisionId.slice(0, 256) } : {}),
            ...(typeof proof?.decision === 'string' ? { decision: proof.decision.slice(0, 32) } : {}),
            ...(typeof proof?.channel === 'string' ? { channel: proof.channel.slice(0, 32) } : {}),
        },
    };
}

/** A decision's comment (the audit reason, the projection's decision) opened from its sealed form in the event. */
async function openedComments(p: Pick<StepPorts, 'seals'>, input: RecordInput): Promise<RecordInput> {
    const seals = p.seals;
    const cp = input.checkpointId;
    if (!seals || cp === undefined) return input;
    const open = (text: string) => seals.openComment(input.runId, cp, text);
    let next = input;
    if (typeof input.reason === 'string' && (input.type === 'checkpoint.decided' || input.type === 'pipeline.rejected'))
        next = { ...next, reason: await open(input.reason) };
    const d = input.projection.checkpoint?.decision;
    if (d && typeof d.comment === 'string') {
        const comment = await open(d.comment);
        next = {
            ...next,
            projection: {
                ...next.projection,
                checkpoint: { ...next.projection.checkpoint!, decision: { ...d, comment } },
            },
        };
    }
    if (next.decision?.comment !== undefined) {
        const { comment: _sealed, ...proof } = next.decision;
        next = { ...next, decision: proof };
    }
    return next;
}

/**
 * Runs one stage: records stage.started, calls the engine with the run's trace context and an idempotency
 * key, stores the output beside the run, records stage.completed. A stage whose output is already stored
 * (the activity ran before a crash) answers from the store without calling the engine again.
 */
export async function runStage(p: StepPorts, i: RunStageInput): Promise<RunStageResult> {
    const key = outputKey(i.iteration, i.stage);
    const done = (await p.runs.getOutput(i.runId, key)) as StoredOutput | undefined;
    if (done) {
        // Ran before a crash: the output is kept; make sure its completion is recorded too (idempotent by eventId).
        await recordCompleted(p, i, key, done.continue);
        return { ok: true, continue: done.continue, outputKey: key };
    }
    const run = await p.runs.get(i.runId);
    if (!run) throw new NotFoundError(`Run ${i.runId} does not exist.`);
    // An aborted run calls no more engines, even if this activity was already queued; a held one waits.
    if (isTerminal(run.status))
        return { ok: false, code: 'FINISHED', status: run.status, message: `the run is ${run.status}` };
    if (run.pause)
        return { ok: false, code: 'PAUSED', pauseId: run.pause.pauseId, message: `paused by ${run.pause.actor}` };

    const startedAt = p.now().toISOString();
    await recordStateChange(p, {
        runId: i.runId,
        eventId: `${i.runId}/${key}/started`,
        type: 'stage.started',
        at: startedAt,
        actor: 'system',
        correlationID: i.correlationID,
        stage: i.stage,
        details: { iteration: i.iteration },
        projection: {
            status: 'Running',
            stage: { name: i.stage, status: 'Running', startedAt, attempt: true },
            iteration: i.iteration,
        },
    });

    const result = await p.engine.invoke({
        runId: i.runId,
        stage: i.stage,
        iteration: i.iteration,
        input: await stageInput(p.runs, i, run.input),
        metadata: {
            team: run.metadata.team,
            riskLevel: run.metadata.riskLevel,
            complianceTags: run.metadata.complianceTags,
        },
        correlationID: i.correlationID,
        traceparent: i.traceparent,
        idempotencyKey: `${i.runId}:${i.stage}:${i.iteration}`,
    });
    if (!result.ok) return result;

    await p.runs.putOutput(i.runId, key, { output: result.output, continue: result.continue } satisfies StoredOutput);
    await recordCompleted(p, i, key, result.continue);
    return { ok: true, continue: result.continue, outputKey: key };
}

async function recordCompleted(p: StepPorts, i: RunStageInput, key: string, more: boolean): Promise<void> {
    const endedAt = p.now().toISOString();
    await recordStateChange(p, {
        runId: i.runId,
        eventId: `${i.runId}/${key}/completed`,
        type: 'stage.completed',
        at: endedAt,
        actor: 'system',
        correlationID: i.correlationID,
        stage: i.stage,
        details: { iteration: i.iteration, ...(i.stage === 'improvement' ? { continue: more } : {}) },
        projection: { stage: { name: i.stage, status: 'Completed', endedAt } },
    });
}

/** A stage's input: the previous stage's output, or the run's input for the first generation. */
async function stageInput(runs: RunStore, i: RunStageInput, runInput: unknown): Promise<unknown> {
    const index = STAGES.indexOf(i.stage);
    if (index === 0 && i.iteration === 1) return runInput;
    const previous =
        index === 0 ? outputKey(i.iteration - 1, 'improvement') : outputKey(i.iteration, STAGES[index - 1]!);
    const stored = (await runs.getOutput(i.runId, previous)) as StoredOutput | undefined;
    return stored?.output ?? runInput;
}
