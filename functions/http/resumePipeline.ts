import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { durableClient, principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { ConflictError } from '../../domain/errors';
import { assertCanResume, visibleRun } from '../../domain/rbac';
import { type ControlEvent, MeshPipeline } from '../../orchestrators/meshPipeline/contract';

interface ResumeRequest {
    orchestrationID: string;
    reason: string;
}

/** POST /pipeline/resume: a paused run continues where it stopped. */
export async function resumePipeline(req: HttpRequest, ctx: InvocationContext, call: CallInfo): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const body = await parseBody<ResumeRequest>(req, 'resume-request');
    const run = visibleRun(principal, await deps().runs.get(body.orchestrationID), body.orchestrationID);
    assertCanResume(principal);
    if (run.status !== 'Paused') throw new ConflictError(`Only a paused run can be resumed; this one is ${run.status}.`);
    const event: ControlEvent = { action: 'resume', actorId: principal.id, reason: body.reason.trim(), correlationID: call.correlationID };
    await durableClient(ctx).raiseEvent(run.id, MeshPipeline.events.control, event);
    return { status: 202, data: { orchestrationID: run.id, action: 'resume', status: run.status }, message: 'resume requested' };
}

app.http('resumePipeline', { route: 'pipeline/resume', methods: ['POST'], extraInputs: [df.input.durableClient()], handler: enveloped(resumePipeline) });
