/**
 * Deciding a checkpoint, whichever way the decision arrives (the API, or a signed link): who may, whether the
 * checkpoint takes decisions now, and the event that carries the decision to the workflow. Nothing here changes
 * state; the caller raises the event (and a link consumes itself first).
 */
import { randomUUID } from 'node:crypto';

import { type DecisionEvent, decisionEvent } from '../orchestrators/meshPipeline/contract';
import { claimsFor } from './attestation';
import { ConflictError } from './errors';
import type { DecisionSeals, RunStore } from './ports';
import type { Principal } from './principal';
import type { Decision } from './quorum';
import { assertCanDecide, visibleCheckpoint } from './rbac';
import { type CheckpointState, type RunDoc, runIdOfCheckpoint } from './run';

export interface DecisionRequest {
    decision: Decision;
    comment?: string;
}

/** Where a decision came from; recorded with it and shown in the audit trail. */
export type DecisionChannel = DecisionEvent['channel'];

export interface DecisionOutcome {
    /** Who decides (the caller, or a link's approver). */
    principal: Principal;
    run: RunDoc;
    checkpoint: CheckpointState;
    event: DecisionEvent;
    /** The external event name the workflow waits on for this checkpoint (see `decisionEvent`). */
    eventName: string;
}

/**
 * The checks of a decision against a run already read: the caller must see the run (else NOT_FOUND, as for a run
 * that does not exist), the checkpoint must exist, the caller must be allowed to decide it (required role, team,
 * never the submitter), it must be open while the run awaits approval, and one person approves once.
 */
export function assertDecidable(
    p: Principal,
    run: RunDoc | undefined,
    checkpointId: string,
    decision: Decision,
): { run: RunDoc; checkpoint: CheckpointState } {
    const { run: visible, checkpoint } = visibleCheckpoint(p, run, checkpointId);
    assertCanDecide(p, visible, checkpoint);
    if (checkpoint.status !== 'Open' && checkpoint.status !== 'Escalated')
        throw new ConflictError(`The checkpoint is ${checkpoint.status}, not open for decisions.`);
    if (visible.status !== 'AwaitingApproval')
        throw new ConflictError(`The run is ${visible.status}; decisions are taken while it awaits approval.`);
    if (decision === 'approve' && checkpoint.decisions.some((d) => d.actorId === p.id && d.decision === 'approve'))
        throw new ConflictError('You have already approved this checkpoint; one person counts once toward the quorum.');
    return { run: visible, checkpoint };
}

/**
 * Reads the checkpoint's run, checks the decision (`assertDecidable`) and builds the event that delivers it. The
 * caller raises `event` on `eventName` for `run.id`; a retried raise of the same event counts once (decisionId).
 */
export async function decideCheckpoint(
    ports: { runs: Pick<RunStore, 'get'> },
    principal: Principal,
    checkpointId: string,
    request: DecisionRequest,
    channel: DecisionChannel,
    correlationID: string,
): Promise<DecisionOutcome> {
    const runId = runIdOfCheckpoint(checkpointId);
    const stored = runId === undefined ? undefined : await ports.runs.get(runId);
    const { run, checkpoint } = assertDecidable(principal, stored, checkpointId, request.decision);
    return decisionOutcome(principal, run, checkpoint, request, channel, correlationID);
}

/** The event delivering a decision that passed `assertDecidable`, and the name to raise it on. */
export function decisionOutcome(
    principal: Principal,
    run: RunDoc,
    checkpoint: CheckpointState,
    request: DecisionRequest,
    channel: DecisionChannel,
    correlationID: string,
): DecisionOutcome {
    const event: DecisionEvent = {
        decisionId: randomUUID(),
        checkpointId: checkpoint.checkpointId,
        decision: request.decision,
        actorId: principal.id,
        ...(principal.name ? { actorName: principal.name } : {}),
        ...(request.comment ? { comment: request.comment } : {}),
        channel,
        correlationID,
    };
    return {
        principal,
        run,
        checkpoint,
        event,
        eventName: decisionEvent(checkpoint.checkpointId, checkpoint.escalated),
    };
}

/**
 * The event as it is raised into the durable history: its comment sealed (bound to the run and checkpoint) and an
 * attestation of who decided attached (domain/attestation.ts), which the workflow verifies before the decision counts.
 */
export async function attestedEvent(seals: DecisionSeals, outcome: DecisionOutcome, at: Date): Promise<DecisionEvent> {
    const e = outcome.event;
    const runId = outcome.run.id;
    const comment = e.comment === undefined ? undefined : await seals.sealComment(runId, e.checkpointId, e.comment);
    const claims = claimsFor(
        outcome.principal,
        runId,
        e.checkpointId,
        {
            decisionId: e.decisionId,
            decision: e.decision,
            channel: e.channel,
            ...(comment !== undefined ? { comment } : {}),
        },
        at.toISOString(),
    );
    return { ...e, ...(comment !== undefined ? { comment } : {}), attestation: await seals.attest(claims) };
}
