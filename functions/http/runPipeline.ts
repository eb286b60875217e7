import { randomUUID } from 'node:crypto';

import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { durableClient, orchestrationOf, principalOf, traceparentOf, urlFor } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { ValidationError } from '../../domain/errors';
import { checkpointSpecsOf, type SubmitRequest, submitRun } from '../../domain/submit';
import { MeshPipeline, type PipelineInput } from '../../orchestrators/meshPipeline/contract';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** POST /pipeline/run: starts a workflow. An Idempotency-Key makes retries return the same run. */
export async function runPipeline(req: HttpRequest, ctx: InvocationContext, call: CallInfo): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const body = await parseBody<SubmitRequest>(req, 'run-request');
    const key = req.headers.get('idempotency-key') ?? undefined;
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
        throw new ValidationError([
            { path: '/headers/Idempotency-Key', message: 'must be 1–128 visible ASCII characters' },
        ]);
    const d = deps();
    const { run, created } = await submitRun(d, principal, body, {
        runId: `run-${randomUUID()}`,
        correlationID: call.correlationID,
        traceparent: traceparentOf(req),
        idempotencyKey: key,
        at: d.now().toISOString(),
    });
    // A retry after a crash between creating the run and starting its workflow starts it now.
    if (created || !(await orchestrationOf(ctx, run.id))) {
        const input: PipelineInput = {
            runId: run.id,
            checkpoints: checkpointSpecsOf(run),
            maxIterations: run.maxIterations,
            correlationID: run.correlationID,
            traceparent: run.traceparent,
        };
        await durableClient(ctx).startNew(MeshPipeline.name, { instanceId: run.id, input });
    }
    const statusUrl = urlFor(req, `/pipeline/status/${run.id}`);
    return {
        status: 202,
        headers: { location: statusUrl },
        data: {
            orchestrationID: run.id,
            status: run.status,
            statusUrl,
            logsUrl: urlFor(req, `/pipeline/logs/${run.id}`),
        },
        message: created ? 'accepted' : 'accepted (idempotent replay)',
    };
}

app.http('runPipeline', {
    route: 'pipeline/run',
    methods: ['POST'],
    extraInputs: [df.input.durableClient()],
    handler: enveloped(runPipeline),
});
