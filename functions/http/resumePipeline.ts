import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { assertInstanceLive } from '../../adapters/http/instances';
import { durableClient, principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { resumeRun } from '../../domain/control';
import { ConflictError } from '../../domain/errors';
import { assertCanResume, visibleRun } from '../../domain/rbac';
import { MeshPipeline, type ResumeEvent } from '../../orchestrators/meshPipeline/contract';

interface ResumeRequest {
    orchestrationID: string;
    reason: string;
}

/** POST /pipeline/resume: a paused run continues where it stopped. */
export async function resumePipeline(
    req: HttpRequest,
    ctx: InvocationContext,
    call: CallInfo,
): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const body = await parseBody<ResumeRequest>(req, 'resume-request');
    const d = deps();
    const run = visibleRun(principal, await d.runs.get(body.orchestrationID), body.orchestrationID);
    assertCanResume(principal);
    if (run.status !== 'Paused' || !run.pause)
        throw new ConflictError(`Only a paused run can be resumed; this one is ${run.status}.`);
    await assertInstanceLive(ctx, d.steps, run, call.correlationID, 'resume');
    // Wake first, then release: if the release fails, the woken workflow finds the run still held and parks
    // again under the same pauseId, and a retried resume wakes it. The other order could strand it parked.
    const event: ResumeEvent = { pauseId: run.pause.pauseId, actorId: principal.id, correlationID: call.correlationID };
    await durableClient(ctx).raiseEvent(run.id, MeshPipeline.events.resume, event);
    const { run: resumed } = await resumeRun(d, {
        principal,
        runId: run.id,
        reason: body.reason.trim(),
        correlationID: call.correlationID,
    });
    return {
        status: 202,
        data: { orchestrationID: run.id, action: 'resume', status: resumed.status },
        message: 'run resumed',
    };
}

app.http('resumePipeline', {
    route: 'pipeline/resume',
    extraInputs: [df.input.durableClient()],
    ...corsRoute(['POST'], enveloped(resumePipeline)),
});
