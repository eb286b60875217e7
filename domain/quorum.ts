/**
 * Counting a checkpoint's decisions: one person counts once, any rejection closes it, request_info keeps it
 * open. Pure, so the orchestrator replays it deterministically.
 */
export const DECISIONS = ['approve', 'reject', 'request_info'] as const;
export type Decision = (typeof DECISIONS)[number];

export interface CastDecision {
    actorId: string;
    decision: Decision;
}

export type QuorumOutcome = 'approved' | 'rejected' | 'open';

export interface QuorumState {
    approvers: string[];
    outcome: QuorumOutcome;
}

export function emptyQuorum(): QuorumState {
    return { approvers: [], outcome: 'open' };
}

/** Applies one decision; `counted` is false when it changes nothing (a repeat approval, or after closing). */
export function applyDecision(
    state: QuorumState,
    d: CastDecision,
    required: number,
): { state: QuorumState; counted: boolean } {
    if (state.outcome !== 'open') return { state, counted: false };
    switch (d.decision) {
        case 'reject':
            return { state: { ...state, outcome: 'rejected' }, counted: true };
        case 'request_info':
            return { state, counted: true };
        case 'approve': {
            if (state.approvers.includes(d.actorId)) return { state, counted: false };
            const approvers = [...state.approvers, d.actorId];
            return { state: { approvers, outcome: approvers.length >= required ? 'approved' : 'open' }, counted: true };
        }
    }
}
