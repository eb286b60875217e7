/**
 * A run as the API shows it: the projection every state change updates, so status and list reads never
 * replay history.
 */
import { ConflictError } from './errors';
import { Position, RiskLevel, RunStatus, Stage, StageState } from './pipeline';
import { Channel, CheckpointSpec, OnTimeout } from './policy';
import { Role } from './principal';
import { Decision } from './quorum';

export interface RunMetadata {
    team: string;
    riskLevel: RiskLevel;
    complianceTags: string[];
    title?: string;
}

export type CheckpointStatus = 'Pending' | 'Open' | 'Approved' | 'Rejected' | 'Expired' | 'Escalated' | 'Cancelled';

export interface CheckpointDecisionRecord {
    actorId: string;
    actorName?: string;
    decision: Decision;
    comment?: string;
    channel: 'api' | 'link';
    at: string;
}

/** A checkpoint of a run: its spec, and once opened, its live state. */
export interface CheckpointState {
    checkpointId: string;
    key: string;
    iteration: number;
    stage: Stage;
    position: Position;
    requiredRoles: Role[];
    approvals: number;
    timeoutMs: number;
    onTimeout: OnTimeout;
    escalateTo: Role[];
    channels: Channel[];
    /** The policy rule that placed it. */
    rule: string;
    status: CheckpointStatus;
    openedAt: string | null;
    deadline: string | null;
    escalated: boolean;
    decisions: CheckpointDecisionRecord[];
    /** While an approver's request for information is open (set by a `request_info` decision, cleared by an answer). */
    infoRequest?: { by: string; at: string; comment?: string };
}

export interface NextAction {
    type: 'approval';
    checkpointId: string;
    stage: Stage;
    position: Position;
    requiredRoles: Role[];
    deadline: string;
}

export interface RunDoc {
    id: string;
    status: RunStatus;
    metadata: RunMetadata;
    createdBy: string;
    createdByName?: string;
    createdByRoles: Role[];
    createdAt: string;
    updatedAt: string;
    maxIterations: number;
    iteration: number;
    currentStage: Stage | null;
    stages: StageState[];
    checkpoints: CheckpointState[];
    nextAction: NextAction | null;
    /** The run's input as submitted. */
    input: unknown;
    /** The last stage's output once the run completed. */
    output?: unknown;
    error?: { code: string; message: string };
    correlationID: string;
    traceparent: string;
    idempotencyKey?: string;
    /**
     * With `idempotencyKey`: SHA-256 (hex) of the RFC 8785 canonical JSON of the validated request body, so a reused
     * key with a different body is told apart from a retry. Runs created before it existed have none.
     */
    idempotencyFingerprint?: string;
    /** Set while an operator holds the run; the workflow parks at its next safe point until resumed. */
    pause?: PauseRequest;
    /** While paused: the status the run returns to on resume (kept current as the workflow moves on). */
    resumeStatus?: RunStatus;
}

export interface PauseRequest {
    pauseId: string;
    actor: string;
    reason: string;
    at: string;
    correlationID: string;
}

/** Checkpoint ids carry their run id, so a decision finds its run without an index: `<runId>.<iteration>.<key>`. */
export function checkpointIdOf(runId: string, iteration: number, spec: Pick<CheckpointSpec, 'key'>): string {
    return `${runId}.${iteration}.${spec.key}`;
}

export function runIdOfCheckpoint(checkpointId: string): string | undefined {
    const runId = checkpointId.split('.')[0];
    return runId && RUN_ID.test(runId) ? runId : undefined;
}

/** Run ids: what this service generates (and a safe charset for ids taken from paths). */
export const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const CHECKPOINT_ID =
    /^[A-Za-z0-9_-]{1,64}\.\d{1,4}\.(generation|filtering|creativity|taste|improvement)\.(before|after)\.\d{1,3}$/;

/**
 * For stores: a reused Idempotency-Key must come with the request it was first used for. Throws `ConflictError` when
 * both fingerprints are known and differ; a key stored without one (before fingerprints existed) replays as before.
 */
export function assertSameRequest(stored: string | undefined, given: string | undefined): void {
    if (stored !== undefined && given !== undefined && stored !== given)
        throw new ConflictError(
            'This Idempotency-Key was already used with a different request body; use a new key for a new request.',
        );
}
