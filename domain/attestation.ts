/**
 * Who decided a checkpoint, as the decision paths (API, signed link) vouch for it: the attestation a decision event
 * carries, signed with a host key kept outside every store (adapters/crypto/decisionSeals.ts). The workflow hands each
 * decision to the `record` activity, which checks it here before it counts: the attestation must be genuine and made
 * for this very decision (run, checkpoint, decision id, decision, actor, channel, comment), and the decider must still
 * satisfy the checkpoint as the run stores it (four-eyes, role, team, checkpoint open, one approval per person). What
 * fails is refused: an audit record of the refusal, nothing counted. Pure; the key work happens behind the port.
 */
import { createHash } from 'node:crypto';

import { DomainError } from './errors';
import { isTerminal } from './pipeline';
import type { Principal, Role } from './principal';
import type { Decision } from './quorum';
import { assertCanDecide } from './rbac';
import type { RunDoc } from './run';

/** What an attestation vouches for. Short names: it travels in every decision event. */
export interface DecisionClaims {
    v: 1;
    /** Run and checkpoint decided. */
    run: string;
    cp: string;
    /** The decision event's id, decision and channel. */
    did: string;
    d: Decision;
    ch: 'api' | 'link';
    /** The decider and the roles and teams they held when they decided. */
    sub: string;
    roles: Role[];
    teams: string[];
    /** Digest of the comment as the event carries it (sealed), when there is one. */
    cmt?: string;
    /** When it was made (ISO time). */
    iat: string;
}

/** The decision as the workflow hands it to `record` (the event's fields the attestation is about). */
export interface DecisionProof {
    decisionId: string;
    decision: Decision;
    actorId: string;
    channel: 'api' | 'link';
    /** As carried: sealed when encryption is on. */
    comment?: string;
    attestation?: string;
}

/** The claims that vouch for `proof` in `runId`'s `checkpointId`. */
export function claimsFor(
    principal: Pick<Principal, 'id' | 'roles' | 'teams'>,
    runId: string,
    checkpointId: string,
    proof: Omit<DecisionProof, 'attestation' | 'actorId'>,
    iat: string,
): DecisionClaims {
    return {
        v: 1,
        run: runId,
        cp: checkpointId,
        did: proof.decisionId,
        d: proof.decision,
        ch: proof.channel,
        sub: principal.id,
        roles: [...principal.roles],
        teams: [...principal.teams],
        ...(proof.comment !== undefined ? { cmt: commentDigest(proof.comment) } : {}),
        iat,
    };
}

/** SHA-256 of the comment as carried (base64url). */
export function commentDigest(comment: string): string {
    return createHash('sha256').update(comment, 'utf8').digest('base64url');
}

/**
 * Why a decision must not count, or undefined when it may. `claims` are the verified attestation's (undefined with
 * `invalid` when there was none or it did not verify); `run` is the run as stored, before this decision is recorded;
 * `at` is the time the workflow records the decision at (a retried record of the same decision is recognised by it).
 */
export function refusalOf(
    verified: { claims: DecisionClaims } | { invalid: string },
    proof: DecisionProof,
    runId: string,
    checkpointId: string,
    run: RunDoc,
    at: string,
): string | undefined {
    if ('invalid' in verified) return verified.invalid;
    const c = verified.claims;
    if (c.run !== runId || c.cp !== checkpointId)
        return 'the attestation was made for another checkpoint (a captured decision raised again)';
    if (
        c.did !== proof.decisionId ||
        c.d !== proof.decision ||
        c.sub !== proof.actorId ||
        c.ch !== proof.channel ||
        c.cmt !== (proof.comment !== undefined ? commentDigest(proof.comment) : undefined)
    )
        return 'the decision does not match its attestation';
    const checkpoint = run.checkpoints.find((x) => x.checkpointId === checkpointId);
    if (!checkpoint) return 'the run has no such checkpoint';
    // A retried record of this very decision (recorded before a crash) is the same decision, not a second one.
    if (checkpoint.decisions.some((x) => x.actorId === c.sub && x.at === at && x.decision === c.d)) return undefined;
    if (isTerminal(run.status)) return `the run is ${run.status}`;
    if (checkpoint.status !== 'Open' && checkpoint.status !== 'Escalated')
        return `the checkpoint is ${checkpoint.status}, not open for decisions`;
    try {
        assertCanDecide({ id: c.sub, roles: c.roles, teams: c.teams }, run, checkpoint);
    } catch (e: unknown) {
        if (e instanceof DomainError) return e.message;
        throw e;
    }
    if (c.d === 'approve' && checkpoint.decisions.some((x) => x.actorId === c.sub && x.decision === 'approve'))
        return 'this person has already approved this checkpoint; one person counts once toward the quorum';
    return undefined;
}
