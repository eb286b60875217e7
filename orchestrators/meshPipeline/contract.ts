/**
 * meshPipeline's durable names and payloads. Names are durable: never rename or reorder a shipped step;
 * register meshPipelineV2 instead and keep the old replay fixtures green.
 */
import type { RunStatus, Stage } from '../../domain/pipeline';
import type { CheckpointSpec } from '../../domain/policy';
import type { ProjectionChange } from '../../domain/projection';
import type { Decision } from '../../domain/quorum';
import type { RecordInput, RecordResult, RunStageInput, RunStageResult } from '../../domain/steps';

export type { ProjectionChange, RecordInput, RecordResult, RunStageInput, RunStageResult };

export const MeshPipeline = {
    name: 'meshPipeline',
    activities: {
        record: 'meshPipeline_record',
        runStage: 'meshPipeline_runStage',
    },
    events: {
        /** Per checkpoint (see decisionEvent): a waiter abandoned at a deadline never meets a later event. */
        decision: 'Decision',
        resume: 'Resume',
    },
} as const;

export interface PipelineInput {
    runId: string;
    checkpoints: CheckpointSpec[];
    maxIterations: number;
    correlationID: string;
    traceparent: string;
}

export type PipelineOutcome = {
    status: Extract<RunStatus, 'Completed' | 'Failed' | 'Aborted' | 'Rejected' | 'TimedOut'>;
    stage?: Stage;
    checkpointId?: string;
};

/** Raised by the decision endpoint (and signed links) after RBAC and four-eyes checks; the workflow checks again. */
export interface DecisionEvent {
    /** Unique per decision: a retried raise of the same decision counts once. */
    decisionId: string;
    checkpointId: string;
    decision: Decision;
    actorId: string;
    actorName?: string;
    /** Sealed (bound to the run and checkpoint) when encryption is on: never plaintext in the durable history. */
    comment?: string;
    channel: 'api' | 'link';
    correlationID: string;
    /**
     * Who decided, as the decision path vouches for it (domain/attestation.ts), signed with a host key kept outside
     * the stores. The workflow counts a decision only if this verifies and still satisfies the checkpoint.
     */
    attestation?: string;
}

/** Raised by /pipeline/resume to wake a workflow parked at a safe point. */
export interface ResumeEvent {
    pauseId: string;
    actorId: string;
    correlationID: string;
}

/**
 * The event name a checkpoint's decisions arrive on: one per checkpoint, and another once it escalated (the
 * decision endpoint raises on the name the run's projection shows; the workflow still reads a decision that
 * lands on the old name while it escalates).
 */
export function decisionEvent(checkpointId: string, escalated: boolean): string {
    return `${MeshPipeline.events.decision}:${checkpointId}${escalated ? ':escalated' : ''}`;
}
