import { randomUUID } from 'node:crypto';

import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { orchestrationOf, principalOf, traceparentOf, urlFor } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { ValidationError } from '../../domain/errors';
import { type SubmitRequest, submitRun } from '../../domain/submit';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/**
 * POST /pipeline/run: submits a workflow. The run is stored `Queued` and put on the admission queue, so a burst is
 * answered at once and nothing is dropped. An Idempotency-Key makes retries return the same run.
 */
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
    // The admitter starts the workflow once a slot is free (functions/serviceBus/admitRun.ts). A retry after a crash
    // between creating the run and enqueueing it enqueues it now (the admitter ignores a second message).
    if (created || (run.status === 'Queued' && !(await orchestrationOf(ctx, run.id))))
        await d.admission.enqueue({ runId: run.id, correlationID: run.correlationID });
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
