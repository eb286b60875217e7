import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { assertInstanceLive } from '../../adapters/http/instances';
import { durableClient, orchestrationOf, principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { abortRun, abortTerminateReason, pauseRun } from '../../domain/control';
import { assertCanStop, visibleRun } from '../../domain/rbac';

interface StopRequest {
    orchestrationID: string;
    action: 'pause' | 'abort';
    reason: string;
}

/**
 * POST /pipeline/stop: pause (at once while a checkpoint waits, else before the next stage) or abort (at once:
 * recorded with the actor's reason, then the workflow is terminated).
 */
export async function stopPipeline(req: HttpRequest, ctx: InvocationContext, call: CallInfo): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const body = await parseBody<StopRequest>(req, 'stop-request');
    const d = deps();
    const run = visibleRun(principal, await d.runs.get(body.orchestrationID), body.orchestrationID);
    assertCanStop(principal, run, body.action);
    await assertInstanceLive(ctx, d.steps, run, call.correlationID, body.action);
    const request = { principal, runId: run.id, reason: body.reason.trim(), correlationID: call.correlationID };
    if (body.action === 'pause') {
        const paused = await pauseRun(d, request);
        return {
            status: 202,
            data: { orchestrationID: run.id, action: 'pause', status: paused.status },
            message: 'pause recorded',
        };
    }
    const aborted = await abortRun(d, request);
    const instance = await orchestrationOf(ctx, run.id);
    if (instance && ['Running', 'Pending', 'Suspended'].includes(instance.runtimeStatus)) {
        // Durable history keeps the terminate reason in plaintext: it names the audit record (which holds the
        // actor and their sealed words), never the words themselves.
        await durableClient(ctx).terminate(run.id, abortTerminateReason(run.id));
    }
    return {
        status: 202,
        data: { orchestrationID: run.id, action: 'abort', status: aborted.status },
        message: 'run aborted',
    };
}

app.http('stopPipeline', {
    route: 'pipeline/stop',
    extraInputs: [df.input.durableClient()],
    ...corsRoute(['POST'], enveloped(stopPipeline)),
});
