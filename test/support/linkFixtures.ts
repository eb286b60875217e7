/** A run waiting at an open checkpoint, and an in-memory LinkUses: fixtures of the decision and link tests. */
import type { LinkUses } from '../../domain/ports';
import type { CheckpointState, RunDoc } from '../../domain/run';
import { makeRun } from './domainFakes';

/** The open checkpoint of `waitingRun()`. */
export const CP = 'run-1.1.taste.before.0';

export function openCheckpoint(over: Partial<CheckpointState> = {}): CheckpointState {
    return {
        checkpointId: CP,
        key: 'taste.before.0',
        iteration: 1,
        stage: 'taste',
        position: 'before',
        requiredRoles: ['Mesh.Approver'],
        approvals: 1,
        timeoutMs: 86_400_000,
        onTimeout: 'reject',
        escalateTo: [],
        channels: ['email'],
        rule: 'default-high',
        status: 'Open',
        openedAt: '2025-06-01T12:00:00.000Z',
        deadline: '2025-06-02T12:00:00.000Z',
        escalated: false,
        decisions: [],
        ...over,
    };
}

export function waitingRun(over: Partial<RunDoc> = {}, cp: Partial<CheckpointState> = {}): RunDoc {
    return makeRun({
        status: 'AwaitingApproval',
        metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [], title: 'Onboarding' },
        createdBy: 'dana',
        checkpoints: [
            openCheckpoint(cp),
            openCheckpoint({
                checkpointId: 'run-1.1.improvement.after.1',
                key: 'improvement.after.1',
                stage: 'improvement',
                position: 'after',
                status: 'Pending',
                openedAt: null,
                deadline: null,
            }),
        ],
        ...over,
    });
}

/** LinkUses in memory, with the same contract as the stores': the first use of a jti wins. */
export class MemoryLinkUses implements LinkUses {
    readonly uses = new Map<string, string>();

    use(jti: string, at: string): Promise<boolean> {
        if (this.uses.has(jti)) return Promise.resolve(false);
        this.uses.set(jti, at);
        return Promise.resolve(true);
    }

    used(jti: string): Promise<boolean> {
        return Promise.resolve(this.uses.has(jti));
    }
}
