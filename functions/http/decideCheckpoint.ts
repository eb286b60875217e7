import { randomUUID } from 'node:crypto';

import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { durableClient, principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { ConflictError, NotFoundError, ValidationError } from '../../domain/errors';
import type { Decision } from '../../domain/quorum';
import { assertCanDecide, visibleRun } from '../../domain/rbac';
import { CHECKPOINT_ID, runIdOfCheckpoint } from '../../domain/run';
import { type DecisionEvent, decisionEvent } from '../../orchestrators/meshPipeline/contract';

interface DecisionRequest {
    decision: Decision;
    comment?: string;
}

/** POST /pipeline/checkpoints/{checkpointId}/decision: an approver decides an open checkpoint. */
export async function decideCheckpoint(
    req: HttpRequest,
    ctx: InvocationContext,
    call: CallInfo,
): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const checkpointId = req.params.checkpointId ?? '';
    if (!CHECKPOINT_ID.test(checkpointId))
        throw new ValidationError([{ path: '/checkpointId', message: 'is not a checkpoint id' }]);
    const body = await parseBody<DecisionRequest>(req, 'decision-request');
    const runId = runIdOfCheckpoint(checkpointId)!;
    const run = visibleRun(principal, await deps().runs.get(runId), runId);
    const checkpoint = run.checkpoints.find((c) => c.checkpointId === checkpointId);
    if (!checkpoint) throw new NotFoundError(`Checkpoint '${checkpointId}' was not found.`);
    assertCanDecide(principal, run, checkpoint);
    if (checkpoint.status !== 'Open' && checkpoint.status !== 'Escalated')
        throw new ConflictError(`The checkpoint is ${checkpoint.status}, not open for decisions.`);
    if (run.status !== 'AwaitingApproval')
        throw new ConflictError(`The run is ${run.status}; decisions are taken while it awaits approval.`);
    if (
        body.decision === 'approve' &&
        checkpoint.decisions.some((d) => d.actorId === principal.id && d.decision === 'approve')
    ) {
        throw new ConflictError('You have already approved this checkpoint; one person counts once toward the quorum.');
    }
    const event: DecisionEvent = {
        decisionId: randomUUID(),
        checkpointId,
        decision: body.decision,
        actorId: principal.id,
        ...(principal.name ? { actorName: principal.name } : {}),
        ...(body.comment ? { comment: body.comment } : {}),
        channel: 'api',
        correlationID: call.correlationID,
    };
    await durableClient(ctx).raiseEvent(run.id, decisionEvent(checkpointId, checkpoint.escalated), event);
    return {
        status: 202,
        data: { checkpointId, orchestrationID: run.id, decision: body.decision },
        message: 'decision recorded',
    };
}

app.http('decideCheckpoint', {
    route: 'pipeline/checkpoints/{checkpointId}/decision',
    methods: ['POST'],
    extraInputs: [df.input.durableClient()],
    handler: enveloped(decideCheckpoint),
});
