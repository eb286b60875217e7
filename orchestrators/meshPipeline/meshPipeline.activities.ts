/** meshPipeline's activities: thin wrappers over the idempotent steps in domain/steps.ts. */
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { contextOf, inSpan, tracingEnabled } from '../../adapters/telemetry/tracing';
import { recordStateChange, runStage, type StepPorts } from '../../domain/steps';
import { MeshPipeline, type RecordInput, type RecordResult, type RunStageInput, type RunStageResult } from './contract';

/**
 * Each activity invocation is a span in its run's trace (never in the orchestrator: a replay would repeat it).
 * `runStage` carries the run's traceparent in its input; `record` does not (its input is in histories already
 * written), so when spans are exported its parent is read from the run as stored.
 */
export const makeRecord =
    (ports: StepPorts) =>
    async (input: RecordInput, ctx: InvocationContext): Promise<RecordResult> => {
        const traceparent = tracingEnabled() ? (await ports.runs.get(input.runId))?.traceparent : undefined;
        return inSpan(
            `activity ${MeshPipeline.activities.record}`,
            {
                parent: contextOf(traceparent),
                attributes: { 'mesh.run_id': input.runId, 'mesh.audit_type': input.type },
            },
            async (span) => {
                const result = await recordStateChange(ports, input);
                if (result) {
                    span.setAttribute('mesh.refused', true);
                    ctx.warn(`run ${input.runId}: a decision on ${input.checkpointId} was refused: ${result.refused}`);
                }
                return result;
            },
        );
    };

export const makeRunStage =
    (ports: StepPorts) =>
    async (input: RunStageInput, ctx: InvocationContext): Promise<RunStageResult> =>
        inSpan(
            `activity ${MeshPipeline.activities.runStage}`,
            {
                parent: contextOf(input.traceparent),
                attributes: {
                    'mesh.run_id': input.runId,
                    'mesh.stage': input.stage,
                    'mesh.iteration': input.iteration,
                },
            },
            async (span) => {
                const result = await runStage(ports, input);
                if (!result.ok) {
                    span.setAttribute('mesh.outcome', result.code);
                    ctx.warn(`${input.stage} engine refused run ${input.runId}: ${result.code}`);
                }
                return result;
            },
        );

df.app.activity(MeshPipeline.activities.record, {
    handler: (i: RecordInput, c: InvocationContext) => makeRecord(deps().steps)(i, c),
});
df.app.activity(MeshPipeline.activities.runStage, {
    handler: (i: RunStageInput, c: InvocationContext) => makeRunStage(deps().steps)(i, c),
});
