/**
 * meshPipeline's durable names and payloads. Names are durable: never rename or reorder a shipped step;
 * register meshPipelineV2 instead and keep the old replay fixtures green.
 */
import type { RunStatus, Stage } from '../../domain/pipeline';
import type { CheckpointSpec } from '../../domain/policy';
import type { ProjectionChange } from '../../domain/projection';
import type { Decision } from '../../domain/quorum';
import type { RecordInput, RunStageInput, RunStageResult } from '../../domain/steps';

export type { ProjectionChange, RecordInput, RunStageInput, RunStageResult };

export const MeshPipeline = {
    name: 'meshPipeline',
    activities: {
        record: 'meshPipeline_record',
        runStage: 'meshPipeline_runStage',
    },
    events: {
        decision: 'Decision',
        control: 'Control',
    },
} as const;

export interface PipelineInput {
    runId: string;
    checkpoints: CheckpointSpec[];
    maxIterations: number;
    correlationID: string;
    traceparent: string;
}

export type PipelineOutcome = { status: Extract<RunStatus, 'Completed' | 'Failed' | 'Aborted' | 'Rejected' | 'TimedOut'>; stage?: Stage; checkpointId?: string };

/** Raised by the decision endpoint (and signed links) after RBAC and four-eyes checks. */
export interface DecisionEvent {
    checkpointId: string;
    decision: Decision;
    actorId: string;
    actorName?: string;
    comment?: string;
    channel: 'api' | 'link';
    correlationID: string;
}

/** Raised by /pipeline/stop and /pipeline/resume. */
export interface ControlEvent {
    action: 'pause' | 'resume' | 'abort';
    actorId: string;
    reason: string;
    correlationID: string;
}

