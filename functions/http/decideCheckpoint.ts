import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { assertInstanceLive } from '../../adapters/http/instances';
import { durableClient, principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { decisionSpan } from '../../adapters/telemetry/tracing';
import { attestedEvent, decideCheckpoint as decide, type DecisionRequest } from '../../domain/decide';
import { ValidationError } from '../../domain/errors';
import { CHECKPOINT_ID } from '../../domain/run';

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
    const d = deps();
    const outcome = await decide(d, principal, checkpointId, body, 'api', call.correlationID);
    const { run, eventName } = outcome;
    await decisionSpan(run, body.decision, 'api', async () => {
        // A workflow terminated or purged behind the API's back would never read the decision: CONFLICT, run reconciled.
        await assertInstanceLive(ctx, d.steps, run, call.correlationID, 'decide');
        await durableClient(ctx).raiseEvent(run.id, eventName, await attestedEvent(d.decisionSeals, outcome, d.now()));
    });
    return {
        status: 202,
        data: { checkpointId, orchestrationID: run.id, decision: body.decision },
        message: 'decision recorded',
    };
}

app.http('decideCheckpoint', {
    route: 'pipeline/checkpoints/{checkpointId}/decision',
    extraInputs: [df.input.durableClient()],
    ...corsRoute(['POST'], enveloped(decideCheckpoint)),
});
