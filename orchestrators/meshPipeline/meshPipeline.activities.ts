/** meshPipeline's activities: thin wrappers over the idempotent steps in domain/steps.ts. */
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { recordStateChange, runStage, type StepPorts } from '../../domain/steps';
import { MeshPipeline, type RecordInput, type RecordResult, type RunStageInput, type RunStageResult } from './contract';

export const makeRecord =
    (ports: StepPorts) =>
    async (input: RecordInput, ctx: InvocationContext): Promise<RecordResult> => {
        const result = await recordStateChange(ports, input);
        if (result) ctx.warn(`run ${input.runId}: a decision on ${input.checkpointId} was refused: ${result.refused}`);
        return result;
    };

export const makeRunStage =
    (ports: StepPorts) =>
    async (input: RunStageInput, ctx: InvocationContext): Promise<RunStageResult> => {
        const result = await runStage(ports, input);
        if (!result.ok) ctx.warn(`${input.stage} engine refused run ${input.runId}: ${result.code}`);
        return result;
    };

df.app.activity(MeshPipeline.activities.record, {
    handler: (i: RecordInput, c: InvocationContext) => makeRecord(deps().steps)(i, c),
});
df.app.activity(MeshPipeline.activities.runStage, {
    handler: (i: RunStageInput, c: InvocationContext) => makeRunStage(deps().steps)(i, c),
});
