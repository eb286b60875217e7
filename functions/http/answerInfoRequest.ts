import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { ValidationError } from '../../domain/errors';
import { answerInfoRequest as answer } from '../../domain/info';
import { CHECKPOINT_ID } from '../../domain/run';

interface InfoRequestBody {
    comment: string;
}

/**
 * POST /pipeline/checkpoints/{checkpointId}/info: the run's submitter (or a member of its team) answers an approver's
 * request for information. Recorded as `checkpoint.info_provided`; the workflow is not involved (the checkpoint keeps
 * waiting for a decision), and the lifecycle event notifies the approvers again.
 */
export async function answerInfoRequest(
    req: HttpRequest,
    _ctx: InvocationContext,
    call: CallInfo,
): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const checkpointId = req.params.checkpointId ?? '';
    if (!CHECKPOINT_ID.test(checkpointId))
        throw new ValidationError([{ path: '/checkpointId', message: 'is not a checkpoint id' }]);
    const body = await parseBody<InfoRequestBody>(req, 'info-request');
    const comment = body.comment.trim();
    if (!comment) throw new ValidationError([{ path: '/comment', message: 'must not be blank' }]);
    const d = deps();
    const { run } = await answer(d.steps, principal, checkpointId, comment, call.correlationID);
    return {
        status: 202,
        data: { checkpointId, orchestrationID: run.id },
        message: 'answer recorded; the approvers are notified',
    };
}

app.http('answerInfoRequest', {
    route: 'pipeline/checkpoints/{checkpointId}/info',
    ...corsRoute(['POST'], enveloped(answerInfoRequest)),
});
