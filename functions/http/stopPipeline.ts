import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { durableClient, principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { ConflictError } from '../../domain/errors';
import { isTerminal } from '../../domain/pipeline';
import { assertCanStop, visibleRun } from '../../domain/rbac';
import { type ControlEvent, MeshPipeline } from '../../orchestrators/meshPipeline/contract';

interface StopRequest {
    orchestrationID: string;
    action: 'pause' | 'abort';
    reason: string;
}

/** POST /pipeline/stop: pause (at the next safe point) or abort (at once), with the actor's reason. */
export async function stopPipeline(req: HttpRequest, ctx: InvocationContext, call: CallInfo): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const body = await parseBody<StopRequest>(req, 'stop-request');
    const run = visibleRun(principal, await deps().runs.get(body.orchestrationID), body.orchestrationID);
    assertCanStop(principal, run, body.action);
    if (isTerminal(run.status)) throw new ConflictError(`The run is ${run.status}; nothing changes a finished run.`);
    if (body.action === 'pause' && run.status === 'Paused') throw new ConflictError('The run is already paused.');
    const event: ControlEvent = { action: body.action, actorId: principal.id, reason: body.reason.trim(), correlationID: call.correlationID };
    await durableClient(ctx).raiseEvent(run.id, MeshPipeline.events.control, event);
    return { status: 202, data: { orchestrationID: run.id, action: body.action, status: run.status }, message: `${body.action} requested` };
}

app.http('stopPipeline', { route: 'pipeline/stop', methods: ['POST'], extraInputs: [df.input.durableClient()], handler: enveloped(stopPipeline) });
