/**
 * The info loop (issue 11): an approver's `request_info` decision opens an info request on the checkpoint (the
 * projection keeps it, domain/projection.ts); the run's submitter, or a member of its team who submits work, answers
 * it here. The answer is a state change of its own (`checkpoint.info_provided`: audit record, projection, lifecycle
 * event, which notifies the approvers again). The workflow is not involved: the checkpoint keeps waiting for a decision.
 */
import { randomUUID } from 'node:crypto';

import { ConflictError } from './errors';
import type { Principal } from './principal';
import { applyProjection } from './projection';
import { assertCanAnswer, visibleCheckpoint } from './rbac';
import { type CheckpointState, type RunDoc, runIdOfCheckpoint } from './run';
import { type RecordInput, recordStateChange, type StepPorts } from './steps';

export type InfoPorts = Pick<StepPorts, 'runs' | 'audit' | 'onRecorded' | 'now'>;

export interface InfoAnswerOutcome {
    run: RunDoc;
    checkpoint: CheckpointState;
    eventId: string;
}

/**
 * The checks of an answer against a run already read: NOT_FOUND for a run the caller cannot see (as for one that does
 * not exist) or an unknown checkpoint; FORBIDDEN for those who see it but may not answer (`assertCanAnswer`);
 * CONFLICT unless the run awaits approval at this checkpoint, the checkpoint is open and an info request is open on it.
 */
export function assertAnswerable(
    p: Principal,
    run: RunDoc | undefined,
    checkpointId: string,
): { run: RunDoc; checkpoint: CheckpointState } {
    const { run: visible, checkpoint } = visibleCheckpoint(p, run, checkpointId);
    assertCanAnswer(p, visible);
    if (checkpoint.status !== 'Open' && checkpoint.status !== 'Escalated')
        throw new ConflictError(
            `The checkpoint is ${checkpoint.status}; only an open checkpoint's questions are answered.`,
        );
    if (visible.status !== 'AwaitingApproval')
        throw new ConflictError(`The run is ${visible.status}; info requests are answered while it awaits approval.`);
    if (!checkpoint.infoRequest)
        throw new ConflictError('No request for information is open on this checkpoint (it may have been answered).');
    return { run: visible, checkpoint };
}

/**
 * Records the answer: `checkpoint.info_provided` with the answerer as actor and their words as the reason (the audit
 * store seals it), and the projection's `infoAnswers` (sealed at rest too), closing the info request.
 */
export async function answerInfoRequest(
    ports: InfoPorts,
    principal: Principal,
    checkpointId: string,
    comment: string,
    correlationID: string,
): Promise<InfoAnswerOutcome> {
    const runId = runIdOfCheckpoint(checkpointId);
    const stored = runId === undefined ? undefined : await ports.runs.get(runId);
    const read = assertAnswerable(principal, stored, checkpointId);
    const at = ports.now().toISOString();
    let input = infoProvided(read.run, read.checkpoint, principal, comment, at, correlationID);
    let checkpoint = read.checkpoint;
    // Claimed in the run store's own read-modify-write first, so of two answers racing for one request, one wins and
    // the other is CONFLICT; recordStateChange then audits it (applying the same answer again changes nothing).
    const run = await ports.runs.update(read.run.id, (current) => {
        checkpoint = assertAnswerable(principal, current, checkpointId).checkpoint;
        input = { ...input, details: requestOf(checkpoint) };
        return applyProjection(current, input.projection, at);
    });
    await recordStateChange(ports, input);
    return { run, checkpoint, eventId: input.eventId };
}

/** The state change of an answer; its eventId is unique per answer. */
export function infoProvided(
    run: Pick<RunDoc, 'id'>,
    checkpoint: Pick<CheckpointState, 'checkpointId' | 'stage' | 'infoRequest'>,
    principal: Pick<Principal, 'id'>,
    comment: string,
    at: string,
    correlationID: string,
): RecordInput {
    return {
        runId: run.id,
        eventId: `${run.id}/info/${randomUUID()}`,
        type: 'checkpoint.info_provided',
        at,
        actor: principal.id,
        correlationID,
        stage: checkpoint.stage,
        checkpointId: checkpoint.checkpointId,
        reason: comment,
        details: requestOf(checkpoint),
        projection: { infoAnswer: { checkpointId: checkpoint.checkpointId, by: principal.id, at, comment } },
    };
}

/** The audit details of an answer: the request it answers. */
function requestOf(checkpoint: Pick<CheckpointState, 'infoRequest'>): Record<string, unknown> {
    const r = checkpoint.infoRequest;
    return r ? { requestedBy: r.by, requestedAt: r.at } : {};
}
